#!/usr/bin/env bash
# What recording every connection's packets costs a handshake: two tlsdiag
# instances from the same release binary with the same certificate, one
# recording packets and one started with --no-packet-capture, driven in
# alternating rounds (on, off, then off, on, ...) by the shared handshake
# benchmark (../shared/bench: handshake-bench.sh and its hsload load generator,
# built there with `cargo build --release`). Each round: full TLS handshakes +
# GET /healthz for SECS seconds; the figure is handshakes per server-CPU-second
# (utime + stime of the server process, capture thread included). Prints each
# round, the medians, the median of the per-round ratios, and the instance's
# capture counters (so a run that recorded nothing cannot pass for cheap).
#
# Needs root (CAP_NET_RAW) for the instance that records.
# Env: BENCH_DIR (default ../shared/bench beside this repo), TLSDIAG_BIN
# (default target/release/tlsdiag), ROUNDS (9), SECS (10), CONC (32).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH_DIR:-$(cd .. && pwd)/shared/bench}
BIN=${TLSDIAG_BIN:-target/release/tlsdiag}
ROUNDS=${ROUNDS:-9}
SECS=${SECS:-10}
ON_PORT=${ON_PORT:-19443}
OFF_PORT=${OFF_PORT:-19444}
[ -x "$BENCH/target/release/hsload" ] || { echo "build $BENCH first (cargo build --release)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

start() { # port metrics-port extra-args...
    local port=$1 metrics=$2
    shift 2
    "$BIN" --https-addr "127.0.0.1:$port" --http-addr 127.0.0.1:0 \
        --tls-cert "$BENCH/certs/cert.pem" --tls-key "$BENCH/certs/key.pem" \
        --data-dir "$work/data-$port" --max-connections 20000 \
        --metrics-addr "127.0.0.1:$metrics" "$@" >"$work/log-$port" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        ss -ltn "sport = :$port" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "tlsdiag on $port did not start:" >&2
    cat "$work/log-$port" >&2
    exit 1
}

start "$ON_PORT" 19464
start "$OFF_PORT" 19465 --no-packet-capture
grep -q "recording each HTTPS connection's packets" "$work/log-$ON_PORT" || {
    echo "the recording instance is not recording:" >&2
    cat "$work/log-$ON_PORT" >&2
    exit 1
}
sleep 1

figure() { # port -> handshakes per server-CPU-second
    HSLOAD_ARGS="--path /healthz" "$BENCH/handshake-bench.sh" "$1" "$SECS" 2>/dev/null |
        sed -n 's/.*handshakes_per_server_cpu_s=\([0-9.]*\).*/\1/p' | tail -1
}

on=() off=() ratios=()
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        a=$(figure "$ON_PORT"); b=$(figure "$OFF_PORT")
    else
        b=$(figure "$OFF_PORT"); a=$(figure "$ON_PORT")
    fi
    on+=("$a"); off+=("$b")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    ratios+=("$ratio")
    echo "round $r: capture on $a, off $b handshakes per server-CPU-second (on/off $ratio)"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m_on=$(median "${on[@]}")
m_off=$(median "${off[@]}")
echo "median: capture on $m_on, off $m_off; on/off of the medians $(awk -v a="$m_on" -v b="$m_off" 'BEGIN { printf "%.3f", a / b }'), median of the round ratios $(median "${ratios[@]}") (range $(printf '%s\n' "${ratios[@]}" | sort -g | head -1)-$(printf '%s\n' "${ratios[@]}" | sort -g | tail -1))"
echo "capture counters of the recording instance:"
curl -s "http://127.0.0.1:19464/metrics" | grep -E '^tlsdiag_packets_(total|memory_bytes|ring_drops_total|connections_dropped_total)' || true
