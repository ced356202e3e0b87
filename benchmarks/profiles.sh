#!/usr/bin/env bash
# Run the peer benchmarks in both build profiles, interleaved, and report
# both side by side.
#
#   benchmarks/profiles.sh [ROUNDS] [-- args for the benchmark binary]
#
# Builds the peer-benchmark binary of this working tree twice: benchmarks/'s
# release profile (LTO, one codegen unit) and its `nolto` profile (cargo's
# release defaults: no LTO, 16 codegen units; what a user of the crate
# builds with `cargo build --release`). Then runs ROUNDS [5] rounds, each
# one run of each binary in ABBA order (nolto first in odd rounds) so that
# the machine's drift cancels. Each run is
#
#   shmchan-peer-benchmarks --rounds 1 --mode throughput --sizes 8,64,65536 \
#       --transports shmchan,shmchan-zc --seconds 0.5 [args]
#
# (later options override earlier ones: the args can set the mode, sizes,
# transports, seconds, --pin, --capacity ...; not --rounds, which is
# ROUNDS; with another mode, give --transports too: the base list above
# replaces that mode's own default). Throughput, round-trip and wake-up figures are read from the
# binary's progress lines on stderr.
#
# Prints, per mode and size, for each transport and profile: the median over
# rounds, and the median over rounds of its ratio to the size's first
# transport in the same run of the same profile ("÷ first": msg/s over
# msg/s for throughput, above 1 faster; latency over latency for round
# trips and wake-ups, above 1 slower). Issue 12's and 13's targets are such
# ratios, "same run, both profiles": e.g.
#
#   benchmarks/profiles.sh 7 -- --sizes 4096,16384,65536,1048576
#   benchmarks/profiles.sh 5 -- --sizes 8 --transports shmchan,shmchan-batch32,shmchan-many,shmchan-batch32-many
#   benchmarks/profiles.sh 5 -- --sizes 64 --transports shmchan,shmchan-value,shmchan-pod,ipc-channel
#   benchmarks/profiles.sh 5 -- --mode wakeup --transports shmchan,shmchan-async-rx,tokio-uds --seconds 1
#
# Environment:
#   PROFILES_OUT  where each run's output and the summary go
#                 [/tmp/shmchan-profiles/<date-time>].
set -euo pipefail

die() {
    printf 'profiles: %s\n' "$*" >&2
    exit 2
}

usage() {
    die "usage: $0 [ROUNDS] [-- args for the benchmark binary] (see the comment at its top)"
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=args.sh
. "$here/args.sh"
quote_cmdline "$0" "$@"
parse_rounds 5 "$@"

manifest=$here/Cargo.toml
target=$(cd "$here" && cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $target ]] || die "cannot find benchmarks/'s target directory"

for p in release nolto; do
    printf 'profiles: building the %s profile\n' "$p" >&2
    cargo build --quiet --profile "$p" --manifest-path "$manifest"
done

out=${PROFILES_OUT:-/tmp/shmchan-profiles/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
raw=$out/raw.tsv
printf 'profile\tround\tmode\tsize\ttransport\tvalue\n' >"$raw"
args=(--rounds 1 --mode throughput --sizes "8,64,65536" --transports "shmchan,shmchan-zc" --seconds 0.5 "${extra[@]}")
load_start=$(uptime)

run() {
    local profile=$1 round=$2
    run_once "$profile" "$round" "$out/r$round-$profile" \
        "$target/$profile/shmchan-peer-benchmarks" "${args[@]}" >/dev/null
    printf 'round %d/%d  %-7s done\n' "$round" "$rounds" "$profile" >&2
}

abba nolto release
load_end=$(uptime)

{
    echo "## shmchan peer benchmarks in both profiles, $rounds interleaved rounds (ABBA: nolto first in odd rounds)"
    echo
    echo "- command: \`$cmdline\`"
    echo "- commit: $(git -C "$here" rev-parse --short HEAD)$(git -C "$here" diff --quiet HEAD -- "$here/.." 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- each run: \`shmchan-peer-benchmarks ${args[*]}\`"
    echo "- nolto: no LTO, 16 codegen units (cargo's release defaults: what a user builds); LTO: benchmarks/'s release profile (LTO, 1 codegen unit)"
    echo "- load at start: ${load_start#*load average: }; at end: ${load_end#*load average: }"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc --all) CPUs"
    awk -F'\t' -v table=1 -f "$here/figures.awk" -f /dev/stdin "$raw" <<'AWK'
    # The median over rounds of profile p's figure of key k ("": none).
    function med(p, k,    r, n, a) {
        n = 0
        for (r = 1; r <= maxr; r++) if ((p, k, r) in v) a[++n] = v[p, k, r]
        return n ? median(a, n) : ""
    }
    # The median over rounds of the ratio of key k to key f, same profile
    # p and round.
    function ratio(p, k, f,    r, n, a, x) {
        n = 0
        for (r = 1; r <= maxr; r++)
            if ((p, k, r) in v && (p, f, r) in v && v[p, f, r] > 0) a[++n] = v[p, k, r] / v[p, f, r]
        if (!n) return "n/a"
        x = median(a, n)
        return sprintf(x < 0.1 ? "%.4fx" : "%.2fx", x)
    }
    END {
        split("throughput roundtrip wakeup", modes, " ")
        title["throughput"] = "Throughput: msg/s; ÷ first: msg/s over the first transport's (above 1: faster)"
        title["roundtrip"] = "Round trip: median latency; ÷ first: over the first transport's (above 1: slower)"
        title["wakeup"] = "Wake-up: median latency; ÷ first: over the first transport's (above 1: slower)"
        for (m = 1; m <= 3; m++) {
            mode = modes[m]
            n = keys_of(mode, list)
            if (!n) continue
            print ""
            print "### " title[mode] "; medians over rounds"
            print ""
            print "| size | transport | nolto | LTO | nolto ÷ first | LTO ÷ first |"
            print "|---:|:---|---:|---:|---:|---:|"
            for (i = 1; i <= n; i++) {
                k = list[i]
                split(k, p, SUBSEP)
                f = first[p[1] SUBSEP p[2]]
                a = med("nolto", k)
                b = med("release", k)
                printf "| %s | %s | %s | %s | %s | %s |\n", human(p[2]), p[3], \
                    a == "" ? "n/a" : figure(mode, a), b == "" ? "n/a" : figure(mode, b), \
                    ratio("nolto", k, f), ratio("release", k, f)
            }
        }
    }
AWK
    echo
    echo "Raw figures (per profile and round) and each run's output: $out"
} | tee "$out/summary.md"
