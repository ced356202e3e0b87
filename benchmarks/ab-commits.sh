#!/usr/bin/env bash
# Compare shmchan's hot paths between two commits in one run, interleaved.
#
#   benchmarks/ab-commits.sh OLD NEW [ROUNDS] [-- extra args for the benchmark binary]
#
# Builds the peer-benchmark binary (benchmarks/, release profile) at each
# commit, each in its own git worktree with its own CARGO_TARGET_DIR, then
# runs ROUNDS [9] rounds of one shmchan run per commit, in ABBA order (OLD
# first in odd rounds, NEW first in even ones) so that the machine's drift
# cancels. Each run is
#
#   shmchan-peer-benchmarks --transports shmchan --rounds 1 \
#       --mode throughput --sizes 8,64,65536 --seconds 0.5 [extra args]
#
# (later options override earlier ones, so the extra args can change the
# mode, sizes, seconds, warmup, --pin, --capacity, --rt-sizes, transports;
# not --rounds, which is ROUNDS). The figures are read from the binary's
# per-round progress lines on stderr (full-precision msg/s; round-trip and
# wake-up medians in µs with two decimals; benchmarks/figures.awk reads
# them), which every commit of benchmarks/ prints in the same format.
# Prints, per size: the median over rounds of OLD's and of NEW's figure and
# the median, min and max of the ratio paired by round: NEW/OLD for
# throughput (msg/s), OLD/NEW for round trips and wake-ups (latency);
# either way above 1 means NEW is faster.
#
# Environment:
#   AB_CACHE    build cache [/tmp/shmchan-ab]: <commit hash>/target is that
#               commit's CARGO_TARGET_DIR, <hash>/shmchan-peer-benchmarks its
#               binary, reused by later runs (with the same rustc); runs/
#               keeps each comparison's raw figures, logs and table.
#   AB_REBUILD  set to 1 to build even when a cached binary exists.
#   AB_PROFILE  release [default]: benchmarks/'s release profile (LTO, one
#               codegen unit); nolto: the same with LTO off and 16 codegen
#               units (cargo's defaults, what a user of the crate builds),
#               set through CARGO_PROFILE_RELEASE_* so that it applies at
#               any commit; cached apart (<hash>-nolto).
#
# The worktrees (under a temp dir) are removed at exit; the cache is kept.
set -euo pipefail

die() {
    printf 'ab-commits: %s\n' "$*" >&2
    exit 2
}

usage() {
    die "usage: $0 OLD NEW [ROUNDS] [-- extra args for the benchmark binary] (see the comment at its top)"
}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=args.sh
. "$here/args.sh"
quote_cmdline "$0" "$@"

[[ $# -ge 2 ]] || usage
old_ref=$1
new_ref=$2
shift 2
parse_rounds 9 "$@"

repo=$(git -C "$here" rev-parse --show-toplevel)
old=$(git -C "$repo" rev-parse --verify --quiet "$old_ref^{commit}") || die "not a commit: $old_ref"
new=$(git -C "$repo" rev-parse --verify --quiet "$new_ref^{commit}") || die "not a commit: $new_ref"
for c in "$old" "$new"; do
    git -C "$repo" cat-file -e "$c:benchmarks/Cargo.toml" 2>/dev/null ||
        die "commit ${c:0:10} has no benchmarks/Cargo.toml"
done

cache=${AB_CACHE:-/tmp/shmchan-ab}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
rustc_id=$(cd "$repo" && rustc -vV)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmchan-ab.XXXXXX")
worktrees=()

cleanup() {
    local wt
    for wt in "${worktrees[@]}"; do
        git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
    git -C "$repo" worktree prune >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# build LABEL HASH: make sure $cache/HASH/shmchan-peer-benchmarks exists.
build() {
    local label=$1 hash=$2
    local dir=$cache/$hash$suffix
    local bin=$dir/shmchan-peer-benchmarks wt=$tmp/$label
    if [[ ${AB_REBUILD:-0} != 1 && -x $bin && -f $dir/rustc ]] &&
        [[ $(<"$dir/rustc") == "$rustc_id" ]]; then
        printf '%s %s: cached build %s\n' "$label" "${hash:0:10}" "$bin" >&2
        return
    fi
    git -C "$repo" worktree add --detach --quiet "$wt" "$hash"
    worktrees+=("$wt")
    mkdir -p "$dir"
    printf '%s %s: building in %s (target %s)\n' "$label" "${hash:0:10}" "$wt" "$dir/target" >&2
    local start=$SECONDS
    # From the worktree, so that a .cargo/config.toml of that commit applies.
    (cd "$wt" && env "${profile_env[@]}" CARGO_TARGET_DIR="$dir/target" cargo build --release --manifest-path "$wt/benchmarks/Cargo.toml")
    cp "$dir/target/release/shmchan-peer-benchmarks" "$bin.tmp.$$"
    mv -f "$bin.tmp.$$" "$bin"
    printf '%s\n' "$rustc_id" >"$dir/rustc"
    printf '%s %s: built in %d s\n' "$label" "${hash:0:10}" $((SECONDS - start)) >&2
    git -C "$repo" worktree remove --force "$wt" >/dev/null 2>&1 || true
}

case ${AB_PROFILE:-release} in
release) suffix='' profile_env=() ;;
nolto) suffix=-nolto profile_env=(CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16) ;;
*) die "AB_PROFILE is release or nolto, not ${AB_PROFILE}" ;;
esac

build OLD "$old"
[[ $new == "$old" ]] || build NEW "$new"

args=(--transports shmchan --rounds 1 --mode throughput --sizes "8,64,65536" --seconds 0.5 "${extra[@]}")
runs=$cache/runs/$(date +%Y%m%d-%H%M%S)-${old:0:7}-${new:0:7}
mkdir -p "$runs"
raw=$runs/raw.tsv
printf 'side\tround\tmode\tsize\ttransport\tvalue\n' >"$raw"
load_start=$(uptime)

# run SIDE ROUND: one run of SIDE's binary, its figures appended to $raw.
run() {
    local side=$1 round=$2 hash
    if [[ $side == old ]]; then hash=$old; else hash=$new; fi
    run_once "$side" "$round" "$runs/r$round-$side" \
        env SHMCHAN_REV="$hash" "$cache/$hash$suffix/shmchan-peer-benchmarks" "${args[@]}" |
        awk -F'\t' -v n="$rounds" '{
        v = $3 == "throughput" ? sprintf("%.0f msg/s", $6) : sprintf("%.2f us", $6 / 1000)
        printf "round %d/%d  %-3s  %-10s %8s B  %-10s %s\n", $2, n, toupper($1), $3, $4, $5, v
    }' >&2
}

abba old new
load_end=$(uptime)

describe() {
    local s
    s=$(git -C "$repo" log -1 --format=%s "$1")
    ((${#s} <= 90)) || s="${s:0:89}…"
    printf '%s %s\n' "$(git -C "$repo" rev-parse --short "$1")" "$s"
}

{
    echo "## shmchan A/B: OLD vs NEW, $rounds interleaved rounds (ABBA: OLD first in odd rounds)"
    echo
    echo "- OLD: $(describe "$old")"
    echo "- NEW: $(describe "$new")"
    echo "- command: \`${AB_PROFILE:+AB_PROFILE=$AB_PROFILE }$cmdline\`"
    echo "- build: ${AB_PROFILE:-release} (${profile_env[*]:-benchmarks/ release profile: LTO, 1 codegen unit})"
    echo "- each run: \`shmchan-peer-benchmarks ${args[*]}\` (binaries in $cache/<hash>$suffix/)"
    echo "- load at start: ${load_start#*load average: }; at end: ${load_end#*load average: }"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc --all) CPUs"
    awk -F'\t' -v table=1 -f "$here/figures.awk" -f /dev/stdin "$raw" <<'AWK'
    END {
        split("throughput roundtrip wakeup", modes, " ")
        for (m = 1; m <= 3; m++) {
            mode = modes[m]
            n = keys_of(mode, list)
            if (!n) continue
            print ""
            if (mode == "throughput") {
                print "### Throughput: msg/s, median over rounds; NEW/OLD = median of the per-round ratio (above 1: NEW is faster)"
                print ""
                print "| size | transport | OLD msg/s | NEW msg/s | NEW/OLD | min | max | pairs |"
            } else {
                print "### " (mode == "wakeup" ? "Wake-up" : "Round trip") ": median latency (median over rounds of each run's median, which the binary prints to 10 ns); OLD/NEW = median of the per-round ratio (above 1: NEW is faster)"
                print ""
                print "| size | transport | OLD | NEW | OLD/NEW | min | max | pairs |"
            }
            print "|---:|:---|---:|---:|---:|---:|---:|---:|"
            for (i = 1; i <= n; i++) {
                split(list[i], p, SUBSEP)
                no = nn = nr = 0
                for (r = 1; r <= maxr; r++) {
                    ho = ("old", list[i], r) in v
                    hn = ("new", list[i], r) in v
                    if (ho) o[++no] = v["old", list[i], r]
                    if (hn) w[++nn] = v["new", list[i], r]
                    if (ho && hn && v["old", list[i], r] > 0 && v["new", list[i], r] > 0) {
                        x = mode == "throughput" ? v["new", list[i], r] / v["old", list[i], r] : v["old", list[i], r] / v["new", list[i], r]
                        q[++nr] = x
                        if (nr == 1 || x < lo) lo = x
                        if (nr == 1 || x > hi) hi = x
                    }
                }
                mo = no ? median(o, no) : -1
                mn = nn ? median(w, nn) : -1
                f_o = no ? figure(mode, mo) : "n/a"
                f_n = nn ? figure(mode, mn) : "n/a"
                if (nr) printf "| %s | %s | %s | %s | %.3fx | %.3fx | %.3fx | %d |\n", human(p[2]), p[3], f_o, f_n, median(q, nr), lo, hi, nr
                else printf "| %s | %s | %s | %s | n/a | n/a | n/a | 0 |\n", human(p[2]), p[3], f_o, f_n
            }
        }
    }
AWK
    echo
    echo "Raw figures (per side and round) and each run's output: $runs"
} | tee "$runs/summary.md"
