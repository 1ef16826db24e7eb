#!/bin/sh
# tlsdiag path test, for a shell. Over the server's HTTPS port (the real TLS
# path, full-size packets) it checks our certificate, transfers stepped sizes
# in both directions, then tries ClientHellos of stepped sizes (with openssl,
# when present); then it posts what it saw over plain HTTP, which gets through
# even a broken path, and prints the server's diagnosis. Needs curl.
#
#   curl -s __TLSDIAG_BASE__/check.sh | sh
#
# Environment: TLSDIAG_BASE (plain-HTTP address, for results),
# TLSDIAG_HTTPS_BASE (the HTTPS address the tests run against) and
# TLSDIAG_PROBE_BASE (a full-size plain-HTTP probe port, used only when HTTPS
# fails) override the addresses; TLSDIAG_CASE sets a support case label.
#
# Exit status: 0 results posted and answered; 1 the server refused the
# results; 2 cannot run here (no curl, bad address); 3 server unreachable.
#
# Everything runs inside main(), called on the last line, so a truncated
# download runs nothing and no command can read the rest of the script
# from a piped stdin.

main() {
    LC_ALL=C
    export LC_ALL

    BASE="${TLSDIAG_BASE:-__TLSDIAG_BASE__}"
    BASE=${BASE%/}
    TLS="${TLSDIAG_HTTPS_BASE:-__TLSDIAG_HTTPS_BASE__}"
    TLS=${TLS%/}
    # The server's optional full-size plain-HTTP probe port: the ladders run
    # there only when HTTPS fails outright.
    PROBE="${TLSDIAG_PROBE_BASE:-__TLSDIAG_PROBE_BASE__}"
    PROBE=${PROBE%/}
    case $PROBE in
        http://?*) ;;
        *) PROBE="" ;;
    esac
    # A stalled step is obvious within seconds (the server calls it after 3 s
    # without progress); large steps get time for slow links on top.
    STEP_BASE_TIMEOUT=5
    HELLO_TIMEOUT=6
    HOLD_MS=2500
    SIZES="512 1200 1300 1400 1460 1500 2000 4000 9000 16384 65536 1048576"
    HELLO_SIZES="512 1200 1400 1500 2000 4000"

    if ! command -v curl >/dev/null 2>&1; then
        echo "check.sh: curl is required but was not found in PATH." >&2
        return 2
    fi
    case $BASE in
        http://?*|https://?*) ;;
        *)
            echo "check.sh: no server address; set TLSDIAG_BASE=http://host:port" >&2
            return 2
            ;;
    esac
    case $TLS in
        https://?*) ;;
        *) TLS=$BASE ;;
    esac
    TLS_HOSTPORT=${TLS#https://}
    TLS_HOSTPORT=${TLS_HOSTPORT%%/*}
    case $TLS_HOSTPORT in
        *\]:*|[!\[]*:*) ;;
        *) TLS_HOSTPORT="$TLS_HOSTPORT:443" ;;
    esac
    TLS_NAME=${TLS_HOSTPORT%:*}
    TLS_NAME=${TLS_NAME#\[}
    TLS_NAME=${TLS_NAME%\]}

    RUN=$(od -An -N12 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n')
    case ${#RUN} in
        24) ;;
        *) RUN="sh$(date +%s)x$$" ;;
    esac
    # The run's start: the server places the certificate check on its own
    # clock from the run's length (a duration, so no clock offset in it).
    START_MS=$(now_ms)
    # A forwarding proxy this shell was told to use: curl goes through it,
    # the ClientHello ladder too (openssl -proxy), and the server is told.
    PROXY_URL=${https_proxy:-${HTTPS_PROXY:-${all_proxy:-${ALL_PROXY:-}}}}
    PROXY_HOSTPORT=${PROXY_URL#*://}
    PROXY_HOSTPORT=${PROXY_HOSTPORT%%/*}
    PROXY_HOSTPORT=${PROXY_HOSTPORT##*@}
    case $PROXY_HOSTPORT in
        *[!A-Za-z0-9.:_\[\]-]*|"") PROXY_HOSTPORT="" ;;
    esac
    TMP=$(mktemp -d 2>/dev/null || echo "/tmp/tlsdiag.$RUN")
    mkdir -p "$TMP" || return 2
    trap 'rm -rf "$TMP"' EXIT INT TERM

    echo "tlsdiag path test"
    echo "  server  $TLS (tests), $BASE (results)"
    echo "  run     $RUN"
    echo

    # 0. Tell the server this run starts: it forgets what its kernel learned
    #    about the path toward this computer (an earlier run's downloads can
    #    teach it a smaller path MTU), so this run's connections are asked
    #    for full-size packets again.
    run_starts "$TMP/start.json"

    # 1. Our certificate (and whether HTTPS works at all from here).
    tls_check "$TMP/tls"
    # shellcheck disable=SC1090,SC1091
    . "$TMP/tls"
    echo

    # 2. Transfers of stepped sizes over HTTPS, both directions at once, each
    #    on a connection of its own opened now, while nothing has taught either
    #    end a smaller packet size yet.
    : >"$TMP/down.json"
    : >"$TMP/up.json"
    : >"$TMP/hello.json"
    LADDER_BASE=$TLS
    if [ -n "$HTTPS_ERROR" ] && [ -n "$PROBE" ]; then
        echo "  HTTPS failed ($HTTPS_ERROR): the transfer ladders run on the plain-HTTP"
        echo "  probe port $PROBE instead (full-size packets, no TLS)."
        LADDER_BASE=$PROBE
        K=""
    fi
    if [ -z "$HTTPS_ERROR" ] || [ -n "$PROBE" ]; then
        ladder down &
        DOWN_PID=$!
        ladder up &
        UP_PID=$!
    else
        DOWN_PID=""
        echo "  HTTPS to $TLS failed ($HTTPS_ERROR): the transfer ladders cannot run."
        echo "  The server's own view of your HTTPS attempts decides the verdict."
    fi
    if [ -n "$DOWN_PID" ]; then
        wait "$DOWN_PID"
        wait "$UP_PID"
    fi
    echo
    # 3. ClientHellos of stepped sizes (new connections, all at once), last:
    #    the server may answer a stuck one with its own "fragmentation
    #    needed", which would teach this computer a smaller path MTU and make
    #    later transfers test nothing.
    if command -v openssl >/dev/null 2>&1; then
        # The transfers may have taught the server a smaller path MTU toward
        # us: ask it to forget again, and hear whether it could.
        run_starts "$TMP/ladder.json"
        hello_ladder
    else
        echo "  hello  openssl not found: the ClientHello size ladder is skipped"
    fi
    echo

    NOW_MS="$(date +%s)000"
    # The server substitutes the case label it validated (A-Za-z0-9._:-).
    LABEL="${TLSDIAG_CASE:-__TLSDIAG_LABEL__}"
    # (Split so the server's substitution leaves this comparison alone.)
    [ "$LABEL" = "__TLSDIAG_""LABEL__" ] && LABEL=""
    case $LABEL in
        *[!A-Za-z0-9._:-]*|"") LABEL_JSON="" ;;
        *) LABEL_JSON=",\"label\":\"$LABEL\"" ;;
    esac
    RUN_MS=$(($(now_ms) - START_MS))
    PROXY_JSON=""
    [ -n "$PROXY_HOSTPORT" ] && PROXY_JSON=",\"proxy\":\"$PROXY_HOSTPORT\""
    RESULTS=$(printf '{"run":"%s","agent":"check.sh","client_time_ms":%s,"run_ms":%s%s%s,"tls_check":%s,"hello":[%s],"down":[%s],"up":[%s]}' \
        "$RUN" "$NOW_MS" "$RUN_MS" "$LABEL_JSON" "$PROXY_JSON" "$TLS_JSON" \
        "$(paste -sd, "$TMP/hello.json")" "$(paste -sd, "$TMP/down.json")" \
        "$(paste -sd, "$TMP/up.json")")

    echo "Sending results..."
    ANSWER=$(curl -s --max-time 30 -H 'Accept: text/plain' \
        -H 'Content-Type: application/json' -H 'Expect:' \
        --data-binary "$RESULTS" -w '\n%{http_code}' \
        "$BASE/api/v1/probe/results")
    RC=$?
    CODE=$(printf '%s\n' "$ANSWER" | tail -n 1)
    TEXT=$(printf '%s\n' "$ANSWER" | sed '$d')
    echo

    if [ "$RC" -ne 0 ] || [ "$CODE" = 000 ]; then
        echo "Could not send the results to $BASE (curl error $RC)." >&2
        return 3
    fi
    if [ "$CODE" != 200 ]; then
        echo "The server refused the results (HTTP $CODE):" >&2
        [ -n "$TEXT" ] && printf '%s\n' "$TEXT" >&2
        return 1
    fi
    printf '%s\n' "$TEXT"
    return 0
}

# Announces the run (GET the probe configuration with its id) and sets
# SHRUNK_TO to the most data per packet the server's connections ask of us
# when it remembers a smaller path MTU toward us and could not forget it
# (then ClientHellos larger than that which pass prove nothing), or to "".
run_starts() {
    curl -s --max-time 5 -o "$1" "$BASE/api/v1/probe/config?run=$RUN" 2>/dev/null
    SHRUNK_TO=$(sed -n 's/.*"shrunk_mss":\([0-9][0-9]*\).*/\1/p' "$1" 2>/dev/null | head -n 1)
    if [ -n "$SHRUNK_TO" ]; then
        echo "  note   the server remembers a smaller path MTU toward you and could not forget it:"
        echo "         this run's connections carry at most $SHRUNK_TO bytes of data per packet."
    fi
}

# Writes shell assignments to the file $1: K (curl's -k when our certificate
# is not trusted here), TLS_JSON (the check, for the server) and HTTPS_ERROR.
tls_check() {
    SET=$1
    # Every request names the run (?run=): the server ties the connection
    # that carried it, and a verifying request that failed just before, to
    # this run and no other client at this address.
    MS=$(curl -s -o /dev/null -w '%{time_total}' --max-time 8 "$TLS/healthz?run=$RUN")
    RC=$?
    MS=$(awk -v s="${MS:-8}" 'BEGIN { printf "%.0f", s * 1000 }')
    case $RC in
        0)
            echo "  https  certificate verified"
            printf "K=''\nHTTPS_ERROR=''\n" >"$SET"
            printf "TLS_JSON='{\"verified\":true,\"ms\":%s}'\n" "$MS" >>"$SET"
            ;;
        60|51|77|83)
            # Not trusted here: the issuer curl was shown is evidence (ours,
            # or an intercepting proxy's). Continue without verification.
            ISSUER=$(curl -sv -k -o /dev/null --max-time 8 "$TLS/healthz?run=$RUN" 2>&1 |
                sed -n 's/^\*  *issuer: //p' | head -n 1 | tr -cd 'A-Za-z0-9 =;,.:_@()/-' | cut -c1-200)
            echo "  https  certificate NOT verified by curl (issuer: ${ISSUER:-unknown}); testing on without verification"
            printf "K='-k'\nHTTPS_ERROR=''\n" >"$SET"
            printf "TLS_JSON='{\"verified\":false,\"issuer\":\"%s\",\"ms\":%s}'\n" "$ISSUER" "$MS" >>"$SET"
            ;;
        *)
            case $RC in
                28) WHY="timeout" ;;
                7) WHY="cannot connect" ;;
                35) WHY="TLS handshake failed" ;;
                56) WHY="connection reset" ;;
                *) WHY="curl error $RC" ;;
            esac
            echo "  https  FAILED: $WHY"
            printf "K='-k'\nHTTPS_ERROR='%s'\n" "$WHY" >"$SET"
            printf "TLS_JSON='{\"verified\":false,\"error\":\"%s\",\"ms\":%s}'\n" "$WHY" "$MS" >>"$SET"
            ;;
    esac
}

# Milliseconds since the epoch: GNU and busybox date know %N; elsewhere
# whole seconds (the server allows for that much slack).
now_ms() {
    NS=$(date +%s%N 2>/dev/null)
    case $NS in
        ""|*[!0-9]*) echo "$(date +%s)000" ;;
        *) echo "${NS%??????}" ;;
    esac
}

# Runs "$@" for at most $1 seconds; returns 124 when it had to stop it.
with_timeout() {
    SECS=$1
    shift
    "$@" &
    CMD=$!
    (sleep "$SECS" && kill "$CMD" 2>/dev/null) >/dev/null 2>&1 &
    KILLER=$!
    wait "$CMD"
    RC=$?
    if kill "$KILLER" 2>/dev/null; then
        return "$RC"
    fi
    return 124
}

# `n` ALPN bytes of padding: entries of up to 255 bytes, each costing one
# length byte more, all different (a, b, c, ...).
alpn_padding() {
    LEFT=$1
    OUT=""
    for LETTER in a b c d e f g h i j k l m n o p q r s t u v w x y z; do
        [ "$LEFT" -le 1 ] && break
        LEN=$((LEFT - 1))
        [ "$LEN" -gt 255 ] && LEN=255
        # Leave at least 2 for a last entry rather than an impossible 1.
        [ $((LEFT - LEN - 1)) -eq 1 ] && LEN=$((LEN - 1))
        OUT="$OUT$(head -c "$LEN" /dev/zero | tr '\0' "$LETTER"),"
        LEFT=$((LEFT - LEN - 1))
    done
    printf '%s' "$OUT"
}

# The size in bytes of the ClientHello openssl printed with -msg (record
# header included), from its "Handshake [length 0145], ClientHello" line.
hello_bytes() {
    HEX=$(sed -n 's/.*Handshake \[length \([0-9a-fA-F]*\)\], ClientHello.*/\1/p' "$1" | head -n 1)
    [ -n "$HEX" ] && echo $((0x$HEX + 5))
}

one_hello() {
    OUT=$1
    shift
    # Like curl, send a server name only for a name, never for an IP address.
    case $TLS_NAME in
        *:*|*[!0-9.]*) ;;
        *) set -- -noservername "$@" ;;
    esac
    case $TLS_NAME in
        *:*) set -- -noservername "$@" ;;
        *[!0-9.]*) set -- -servername "$TLS_NAME" "$@" ;;
    esac
    # Through the proxy curl used, so the ladder tests the same path.
    [ -n "$PROXY_HOSTPORT" ] && set -- -proxy "$PROXY_HOSTPORT" "$@"
    with_timeout "$HELLO_TIMEOUT" openssl s_client -connect "$TLS_HOSTPORT" \
        -msg "$@" </dev/null >"$OUT" 2>&1
}

hello_ladder() {
    # Calibrate: the same hello with only our ALPN, then pad to each size.
    one_hello "$TMP/hello.base" -alpn "tlsdiag-$RUN,http/1.1"
    BASE_BYTES=$(hello_bytes "$TMP/hello.base")
    if [ -z "$BASE_BYTES" ]; then
        echo "  hello  openssl printed no ClientHello: the size ladder is skipped"
        : >"$TMP/hello.json"
        return
    fi
    for N in $HELLO_SIZES; do
        PAD=$((N - BASE_BYTES))
        [ "$PAD" -lt 0 ] && PAD=0
        one_hello "$TMP/hello.$N" -alpn "tlsdiag-$RUN,$(alpn_padding "$PAD")http/1.1" &
    done
    wait
    : >"$TMP/hello.json"
    for N in $HELLO_SIZES; do
        F="$TMP/hello.$N"
        GOT=$(hello_bytes "$F")
        GOT=${GOT:-$N}
        if grep -q 'Cipher is [A-Z]' "$F" && ! grep -q 'Cipher is (NONE)' "$F"; then
            OK=true; ERRJ=null; SAY="ok"
            # A pass on a connection the server asked for smaller packets
            # could not have failed: say so (the server discounts it too).
            if [ -n "$SHRUNK_TO" ] && [ "$GOT" -gt "$SHRUNK_TO" ]; then
                SAY="passed, but on a connection limited to $SHRUNK_TO bytes a packet: not a test"
            fi
        elif grep -qiE 'reset by peer|errno=104|Connection reset' "$F"; then
            OK=false; ERRJ='"reset"'; SAY="FAILED (reset)"
        elif ! grep -q 'CONNECTED' "$F"; then
            OK=false; ERRJ='"connect"'; SAY="FAILED (cannot connect)"
        elif ! grep -qE 'SSL handshake has read|Cipher is' "$F" ||
            grep -q 'SSL handshake has read 0 bytes' "$F"; then
            # Killed by the timeout, or the server gave up waiting for the
            # rest of the ClientHello: either way nothing came back.
            OK=false; ERRJ='"timeout"'; SAY="FAILED (no answer)"
        else
            OK=false; ERRJ='"failed"'; SAY="FAILED"
        fi
        printf '  hello %8s B  %s\n' "$GOT" "$SAY"
        printf '{"bytes":%s,"ok":%s,"error":%s}\n' "$GOT" "$OK" "$ERRJ" >>"$TMP/hello.json"
    done
}

# One direction of the transfer ladder, over HTTPS: every size in one curl
# run, so all of them share one connection (reused while steps pass). Its MSS
# is fixed when it opens, before anything on this path could have taught
# either end a smaller packet size; a later connection might be clamped by
# what the other direction's test taught, and test nothing. The ladder stops
# at the first failure. Prints a line per step and writes each step's JSON
# to $TMP/DIR.json.
ladder() {
    DIR=$1
    # The first step is held by the server, so that both directions'
    # connections stand before either sends a large packet.
    HOLD="&hold_ms=$HOLD_MS"
    set --
    for N in $SIZES; do
        T=$((STEP_BASE_TIMEOUT + N / 131072))
        [ -n "$HOLD" ] && T=$((T + HOLD_MS / 1000 + 1))
        [ $# -gt 0 ] && set -- "$@" --next
        # shellcheck disable=SC2086
        set -- "$@" -s $K --max-time "$T" -o /dev/null \
            -w '%{http_code} %{size_download} %{size_upload} %{time_total} %{exitcode}\n'
        if [ "$DIR" = down ]; then
            set -- "$@" "$LADDER_BASE/probe/down/$N?run=$RUN$HOLD"
        else
            head -c "$N" /dev/urandom >"$TMP/up.$N"
            # 'Expect:' stops curl from waiting for "100 Continue" before
            # larger bodies, which would add a second to the timing.
            set -- "$@" -H 'Content-Type: application/octet-stream' -H 'Expect:' \
                --data-binary "@$TMP/up.$N" "$LADDER_BASE/probe/up?run=$RUN&size=$N$HOLD"
        fi
        HOLD=""
    done
    curl --fail-early "$@" >"$TMP/$DIR.out" 2>/dev/null
    : >"$TMP/$DIR.json"
    FAILED=""
    I=0
    for N in $SIZES; do
        I=$((I + 1))
        if [ -n "$FAILED" ]; then
            printf '  %-4s %8s B       -    skipped (larger than a size that failed)\n' "$DIR" "$N"
            continue
        fi
        # shellcheck disable=SC2046
        set -- $(sed -n "${I}p" "$TMP/$DIR.out")
        CODE=${1:-000}
        if [ "$DIR" = down ]; then GOT=${2:-0}; else GOT=${3:-0}; fi
        SECS=${4:-0}
        RC=${5:-28}
        MS=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 1000 }')
        ERR=""
        if [ "$RC" = 28 ]; then
            ERR="timeout"
        elif [ "$CODE" != 000 ] && [ "$CODE" != 200 ]; then
            ERR="status $CODE"
        elif [ "$RC" != 0 ]; then
            ERR="network"
        elif [ "$GOT" != "$N" ]; then
            ERR="short"
        fi
        if [ -z "$ERR" ]; then
            OK=true; ERRJ=null; RESULT="ok"
        else
            OK=false; ERRJ="\"$ERR\""; RESULT="FAILED ($ERR)"; FAILED=1
        fi
        printf '  %-4s %8s B  %6s ms  %s\n' "$DIR" "$N" \
            "$(awk -v m="$MS" 'BEGIN { printf "%.0f", m }')" "$RESULT"
        printf '{"bytes":%s,"ok":%s,"ms":%s,"error":%s}\n' "$N" "$OK" "$MS" "$ERRJ" >>"$TMP/$DIR.json"
    done
}

main "$@" </dev/null
