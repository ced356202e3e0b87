#!/usr/bin/env bash
# C against Rust through shmchan, in one run (issue 15's target: a C sender
# to a C receiver at least 0.9x the Rust API at 64 B and 64 KiB).
#
#   benchmarks/c-api/run.sh [ROUNDS]      (default 7)
#
# Builds libshmchan and the Rust peer (ffi's example bench_peer) in the
# workspace's default release profile, which users get from `cargo build
# --release`: no LTO, 16 codegen units; compiles peer.c with `cc -O3`
# (Rust's release opt-level) against that libshmchan.so. Then per size,
# ROUNDS rounds in ABBA order (Rust first in odd rounds), each a fresh
# channel (4 MiB ring) and a fresh pair of processes: the receiver creates
# the channel and starts the sender; it times the span from its first
# message to its last. Prints each round's msg/s and, per size, the medians
# and the median of the per-round ratio C/Rust (the box's speed drifts, so
# only ratios from the same round compare).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
rounds="${1:-7}"
cd "$root"
cargo build --release -p shmchan-ffi --lib --example bench_peer >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cc -O3 -std=c11 -Wall -Wextra -Werror -I include benchmarks/c-api/peer.c \
    -L target/release -lshmchan -Wl,-rpath,"$root/target/release" -o "$work/peer_c"
rust="$root/target/release/examples/bench_peer"
c="$work/peer_c"

run() { # PEER SIZE COUNT -> msg/s
    "$1" recv "$2" "$3" "$1" | cut -d' ' -f1
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# C (shmchan.h) against Rust (shmchan::Sender/Receiver), $(git rev-parse --short HEAD), $(date -u +%F)"
echo "release profile (no LTO, 16 codegen units); peer.c with cc -O3; $rounds rounds ABBA; 4 MiB ring"
echo
echo "| size | round | Rust msg/s | C msg/s | C/Rust |"
echo "|---|---|---|---|---|"
summary=""
for size in 64 65536; do
    count=$(( size == 64 ? 20000000 : 100000 ))
    : > "$work/r" ; : > "$work/c"; : > "$work/ratio"
    for round in $(seq 1 "$rounds"); do
        if [ $((round % 2)) -eq 1 ]; then
            r=$(run "$rust" $size $count); cc_=$(run "$c" $size $count)
        else
            cc_=$(run "$c" $size $count); r=$(run "$rust" $size $count)
        fi
        ratio=$(awk -v a="$cc_" -v b="$r" 'BEGIN { printf "%.2f", a / b }')
        echo "$r" >> "$work/r"; echo "$cc_" >> "$work/c"; echo "$ratio" >> "$work/ratio"
        echo "| $size B | $round | $r | $cc_ | ${ratio}x |"
    done
    summary+="| $size B | $(median < "$work/r") | $(median < "$work/c") | $(median < "$work/ratio")x |"$'\n'
done
echo
echo "| size | Rust median msg/s | C median msg/s | median of C/Rust |"
echo "|---|---|---|---|"
printf '%s' "$summary"
