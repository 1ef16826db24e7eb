#!/bin/sh
# tlsdiag path test: stepped-size transfers in both directions, to find the
# packet size at which the path to the server starts dropping traffic (MTU
# black holes). Needs only curl. Usage:
#
#   curl -s __TLSDIAG_BASE__/check.sh | sh
#
# Environment: TLSDIAG_BASE overrides the server address.
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
    # Transfers go to the probe port (full-size packets); results to BASE,
    # whose small packets get through even a broken path.
    PROBE="${TLSDIAG_PROBE_BASE:-__TLSDIAG_PROBE_BASE__}"
    PROBE=${PROBE%/}
    case $PROBE in
        http://?*|https://?*) ;;
        *) PROBE=$BASE ;;
    esac
    # After two failures in a row in one direction, larger sizes are skipped:
    # past a size limit they would only time out too.
    FAILS_BEFORE_SKIP=2
    STEP_TIMEOUT=8
    SIZES="512 1200 1300 1400 1460 1500 2000 4000 9000 16384 65536 1048576"

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

    RUN=$(od -An -N12 -tx1 /dev/urandom 2>/dev/null | tr -d ' \n')
    case ${#RUN} in
        24) ;;
        *) RUN="sh$(date +%s)x$$" ;;
    esac

    echo "tlsdiag path test"
    echo "  server  $BASE"
    echo "  run     $RUN"
    echo "  sizes   512 B to 1 MiB, each way; up to $STEP_TIMEOUT s per step"
    echo

    DOWN_JSON=""
    UP_JSON=""
    FAILED=0

    # Networks that allow only the usual ports may block the probe port: then
    # run the ladder against BASE (its packets are smaller, so a black hole
    # shows less clearly, but it still shows).
    if [ "$PROBE" != "$BASE" ] && ! curl -s -o /dev/null --max-time 5 "$PROBE/probe/down/0"; then
        echo "  (the probe port $PROBE is not reachable; testing on $BASE instead)"
        echo
        PROBE=$BASE
    fi

    for DIR in down up; do
        IN_A_ROW=0
        for N in $SIZES; do
            printf '  %-4s %8s B  ' "$DIR" "$N"
            if [ "$IN_A_ROW" -ge "$FAILS_BEFORE_SKIP" ]; then
                echo "     -    skipped (larger than sizes that failed)"
                continue
            fi
            if [ "$DIR" = down ]; then
                OUT=$(curl -s -o /dev/null --max-time "$STEP_TIMEOUT" \
                    -w '%{http_code} %{size_download} %{time_total}' \
                    "$PROBE/probe/down/$N?run=$RUN")
                RC=$?
                set -- $OUT
                CODE=${1:-000}
                GOT=${2:-0}
                SECS=${3:-0}
                BODY=""
            else
                # 'Expect:' stops curl from waiting for "100 Continue" before
                # larger bodies, which would add a second to the timing.
                OUT=$(head -c "$N" /dev/urandom | curl -s --max-time "$STEP_TIMEOUT" \
                    -H 'Content-Type: application/octet-stream' -H 'Expect:' \
                    --data-binary @- -w '\n%{http_code} %{time_total}' \
                    "$PROBE/probe/up?run=$RUN&size=$N")
                RC=$?
                BODY=$(printf '%s\n' "$OUT" | sed '$d')
                set -- $(printf '%s\n' "$OUT" | tail -n 1)
                CODE=${1:-000}
                SECS=${2:-0}
                GOT=""
            fi
            MS=$(awk -v s="$SECS" 'BEGIN { printf "%.1f", s * 1000 }')

            ERR=""
            if [ "$RC" -eq 28 ]; then
                ERR="timeout"
            elif [ "$CODE" != 000 ] && [ "$CODE" != 200 ]; then
                ERR="status $CODE"
            elif [ "$RC" -ne 0 ] && [ "$RC" -ne 18 ]; then
                ERR="network"
            elif [ "$DIR" = down ]; then
                [ "$GOT" = "$N" ] || ERR="short"
            else
                case $BODY in
                    *'"received":'"$N"[,}]*) ;;
                    *) ERR="short" ;;
                esac
            fi

            # Nothing at all came back on the very first request: there is no
            # point trying the other 23.
            if [ -z "$DOWN_JSON" ] && [ "$DIR" = down ] && [ "$CODE" = 000 ]; then
                case $RC in
                    6|7)
                        echo "FAILED (cannot connect)"
                        echo
                        echo "Cannot reach $PROBE (curl error $RC). Check the address" >&2
                        echo "and that nothing between here and there blocks it." >&2
                        return 3 ;;
                    35|51|53|54|58|59|60|64|66|77|80|83|90|91)
                        echo "FAILED (TLS)"
                        echo
                        echo "TLS to $PROBE failed (curl error $RC). Try the plain" >&2
                        echo "http:// address of the same server." >&2
                        return 3 ;;
                esac
            fi

            if [ -z "$ERR" ]; then
                OK=true
                IN_A_ROW=0
                ERRJ=null
                RESULT="ok"
            else
                OK=false
                ERRJ="\"$ERR\""
                FAILED=$((FAILED + 1))
                IN_A_ROW=$((IN_A_ROW + 1))
                RESULT="FAILED ($ERR)"
            fi

            printf '%6s ms  %s\n' \
                "$(awk -v m="$MS" 'BEGIN { printf "%.0f", m }')" "$RESULT"

            ITEM=$(printf '{"bytes":%s,"ok":%s,"ms":%s,"error":%s}' "$N" "$OK" "$MS" "$ERRJ")
            if [ "$DIR" = down ]; then
                DOWN_JSON="${DOWN_JSON:+$DOWN_JSON,}$ITEM"
            else
                UP_JSON="${UP_JSON:+$UP_JSON,}$ITEM"
            fi
        done
        echo
    done

    NOW_MS="$(date +%s)000"
    # The server substitutes the case label it validated (A-Za-z0-9._:-).
    LABEL="${TLSDIAG_CASE:-__TLSDIAG_LABEL__}"
    # (Split so the server's substitution leaves this comparison alone.)
    [ "$LABEL" = "__TLSDIAG_""LABEL__" ] && LABEL=""
    case $LABEL in
        *[!A-Za-z0-9._:-]*|"") LABEL_JSON="" ;;
        *) LABEL_JSON=",\"label\":\"$LABEL\"" ;;
    esac
    RESULTS=$(printf '{"run":"%s","agent":"check.sh","client_time_ms":%s%s,"down":[%s],"up":[%s]}' \
        "$RUN" "$NOW_MS" "$LABEL_JSON" "$DOWN_JSON" "$UP_JSON")

    echo "Sending results ($FAILED failed step(s))..."
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

main "$@" </dev/null
