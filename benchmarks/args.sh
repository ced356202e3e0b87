# shellcheck shell=bash
# What ab-commits.sh and profiles.sh share: their command lines and one run
# of the benchmark binary. Sourced, after the sourcing script has defined
# `die MESSAGE` and `usage`.

# quote_cmdline WORD...: sets `cmdline` to the words as typed, each quoted
# only when it needs it (for the summary's "command" line).
quote_cmdline() {
    local w
    cmdline=
    for w in "$@"; do
        if [[ $w =~ ^[][A-Za-z0-9_./,:=+@%^~-]+$ ]]; then cmdline+=" $w"; else cmdline+=" ${w@Q}"; fi
    done
    cmdline=${cmdline# }
}

# parse_rounds DEFAULT [ROUNDS] [-- ARGS...]: sets `rounds` (DEFAULT when
# not given) and the array `extra` (the args for the benchmark binary, which
# must not set --rounds: a script runs one round per run).
parse_rounds() {
    rounds=$1
    shift
    if [[ $# -gt 0 && $1 != -- ]]; then
        rounds=$1
        shift
    fi
    if [[ $# -gt 0 ]]; then
        [[ $1 == -- ]] || usage
        shift
    fi
    extra=("$@")
    [[ $rounds =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$rounds'"
    local a
    for a in "${extra[@]}"; do
        [[ $a != --rounds* ]] || die "--rounds is set by the script (one per run); give ROUNDS instead"
    done
}

# run_once WHO ROUND LOG CMD...: runs CMD (a benchmark binary and its
# args) with stdout to LOG.out and stderr to LOG.err; dies with the log's
# tail if it fails or prints no figures; appends its figures ("who round
# mode size transport value", read by figures.awk) to the file $raw and
# prints them. Needs `here` (this directory) and `raw` set.
# shellcheck disable=SC2154 # here and raw: the sourcing script's
run_once() {
    local who=$1 round=$2 log=$3
    shift 3
    if ! "$@" >"$log.out" 2>"$log.err"; then
        tail -n 20 "$log.err" >&2
        die "round $round, $who failed; log in $log.err"
    fi
    local got
    got=$(awk -v parse=1 -v who="$who" -v round="$round" -f "$here/figures.awk" "$log.err")
    [[ -n $got ]] || die "no figures in the output of round $round, $who: $log.err (format changed?)"
    printf '%s\n' "$got" >>"$raw"
    printf '%s\n' "$got"
}

# abba A B: `rounds` rounds of `run A ROUND` and `run B ROUND` (the
# sourcing script's `run`), A first in odd rounds and B in even ones, so
# that the machine's drift cancels.
abba() {
    local r
    for ((r = 1; r <= rounds; r++)); do
        if ((r % 2)); then
            run "$1" "$r"
            run "$2" "$r"
        else
            run "$2" "$r"
            run "$1" "$r"
        fi
    done
}
