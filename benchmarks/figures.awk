# What ab-commits.sh and profiles.sh share: reading the peer-benchmark
# binary's progress lines, and the helpers of their summaries.
#
# With -v parse=1 (and -v who=... -v round=...), picks the figures out of
# the progress lines on the binary's stderr:
#
#   throughput <size> B  round 1/1  <transport> <msg/s> msg/s <MB/s> MB/s ...
#   round trip <size> B  round 1/1  <transport> median <us> us  p99 ...
#   wake-up <size> B  round 1/1  <transport> median <us> us  p99 ...
#
# and prints "who round mode size transport value", tab-separated (value:
# msg/s, or ns). With -v table=1 (see below), it reads those rows back for
# a summary program given after this file (awk -f figures.awk -f summary).

parse && $1 == "throughput" && $3 == "B" && $4 == "round" && $8 == "msg/s" {
    print who "\t" round "\tthroughput\t" $2 "\t" $6 "\t" $7
}
parse && $1 == "round" && $2 == "trip" && $4 == "B" && $5 == "round" && $8 == "median" && $10 == "us" {
    print who "\t" round "\troundtrip\t" $3 "\t" $7 "\t" sprintf("%.0f", $9 * 1000)
}
parse && $1 == "wake-up" && $3 == "B" && $4 == "round" && $7 == "median" && $9 == "us" {
    print who "\t" round "\twakeup\t" $2 "\t" $6 "\t" sprintf("%.0f", $8 * 1000)
}

# With -v table=1, reads the "who round mode size transport value" rows
# (a header line first) into v[who, key, round], key = mode SUBSEP size
# SUBSEP transport; keys[1..nk] in the order first seen, first[mode SUBSEP
# size] the first key of each size, maxr the last round.
table && FNR > 1 {
    key = $3 SUBSEP $4 SUBSEP $5
    if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
    if (!(($3 SUBSEP $4) in first)) first[$3 SUBSEP $4] = key
    v[$1, key, $2] = $6
    if ($2 + 0 > maxr) maxr = $2 + 0
}

# Fills list[1..n] with the keys of `mode` (throughput, roundtrip, wakeup)
# in the order first seen; returns n.
function keys_of(mode, list,    i, n, p) {
    n = 0
    for (i = 1; i <= nk; i++) {
        split(keys[i], p, SUBSEP)
        if (p[1] == mode) list[++n] = keys[i]
    }
    return n
}

# The median of a[1..n] (sorts a).
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = a[i]
        for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
        a[j + 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

# A size in bytes as the binary's reports write it.
function human(n) {
    if (n >= 1048576 && n % 1048576 == 0) return (n / 1048576) " MiB"
    if (n >= 1024 && n % 1024 == 0) return (n / 1024) " KiB"
    return n " B"
}

# A figure of `mode`: msg/s for throughput, else a latency in ns.
function figure(mode, x) {
    if (mode != "throughput") return sprintf("%.2f µs", x / 1000)
    if (x >= 1e6) return sprintf("%.2f M", x / 1e6)
    if (x >= 1e3) return sprintf("%.1f k", x / 1e3)
    return sprintf("%.0f", x)
}
