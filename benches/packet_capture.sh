#!/usr/bin/env bash
# What recording every connection's packets costs a handshake: two tlsdiag
# instances from the same release binary with the same certificate, one
# recording packets and one started with --no-packet-capture, driven at the
# same time, round after round, by two copies of the shared handshake
# benchmark (../shared/bench: handshake-bench.sh and its hsload load
# generator, built there with `cargo build --release`), CONC/2 connections
# each. Driven together, both see the same machine: this VM's speed drifts by
# ±20% over tens of seconds, which alternating rounds turn into noise. Each
# round: full TLS handshakes + GET /healthz for SECS seconds; the figure is
# handshakes per server-CPU-second (utime + stime of the server process,
# capture thread included). Prints each round, the medians, the median of
# the per-round ratios, and the recording instance's capture counters (so a
# run that recorded nothing cannot pass for cheap).
#
# Needs root (CAP_NET_RAW) for the instance that records.
# Env: BENCH_DIR (default ../shared/bench beside this repo), TLSDIAG_BIN
# (default target/release/tlsdiag), ROUNDS (9), SECS (10), CONC (32, split).
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

half=$(( ${CONC:-32} / 2 ))
drive() { # port output-file
    CONC=$half HSLOAD_ARGS="--path /healthz" "$BENCH/handshake-bench.sh" "$1" "$SECS" >"$2" 2>&1
}
figure() { # output-file -> handshakes per server-CPU-second
    sed -n 's/.*handshakes_per_server_cpu_s=\([0-9.]*\).*/\1/p' "$1" | tail -1
}

on=() off=() ratios=()
for r in $(seq "$ROUNDS"); do
    drive "$ON_PORT" "$work/on" &
    drive "$OFF_PORT" "$work/off"
    wait $!
    a=$(figure "$work/on"); b=$(figure "$work/off")
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
