# shellcheck shell=bash
# What ab-commits.sh and profiles.sh share of their command lines; sourced,
# after the sourcing script has defined `die MESSAGE` and `usage`.

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
