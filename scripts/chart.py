#!/usr/bin/env python3
"""Turn criterion's throughput results into one SVG chart.

Reads target/criterion/throughput_*/<transport>/new/{benchmark,estimates}.json
(written by `cargo bench --bench throughput`) and writes a log-log chart of
MB/s by message size, one line per transport, to docs/throughput.svg (or the
path given). Standard library only.

    python3 scripts/chart.py [OUT.svg] [--title "machine description"]
"""
import json
import math
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = ROOT / "target" / "criterion"
COLORS = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f"]


def load():
    """{transport: {size: MB/s}} from the median time per message."""
    series = {}
    for bench in CRITERION.glob("*/*/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        if not meta.get("group_id", "").startswith("throughput/"):
            continue
        tp = meta.get("throughput") or {}
        size = (tp.get("ElementsAndBytes") or {}).get("bytes") or tp.get("Bytes")
        if not size:
            continue
        est = json.loads((bench.parent / "estimates.json").read_text())
        ns = est["median"]["point_estimate"]
        series.setdefault(meta["function_id"], {})[size] = size / ns * 1e3  # MB/s
    return series


def label_size(n):
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n // div} {unit}"
    return f"{n} B"


def svg(series, title):
    w, h, left, right, top, bottom = 760, 460, 70, 190, 40, 50
    sizes = sorted({s for pts in series.values() for s in pts})
    values = [v for pts in series.values() for v in pts.values()]
    ylo = 10 ** math.floor(math.log10(min(values)))
    yhi = 10 ** math.ceil(math.log10(max(values)))
    xlo, xhi = math.log2(sizes[0]), math.log2(sizes[-1])

    def x(s):
        return left + (math.log2(s) - xlo) / max(xhi - xlo, 1) * (w - left - right)

    def y(v):
        return top + (math.log10(yhi) - math.log10(v)) / (math.log10(yhi) - math.log10(ylo)) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    decade = ylo
    while decade <= yhi:
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g}</text>')
        decade *= 10
    for s in sizes:
        out.append(f'<line x1="{x(s):.1f}" x2="{x(s):.1f}" y1="{top}" y2="{h - bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x(s):.1f}" y="{h - bottom + 16}" text-anchor="middle">{label_size(s)}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 10}" text-anchor="middle">message size (log)</text>')
    out.append(f'<text x="16" y="{(top + h - bottom) / 2}" transform="rotate(-90 16 {(top + h - bottom) / 2})" text-anchor="middle">MB/s (log)</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in sorted(pts.items()))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for s, v in pts.items():
            out.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + i * 18
        out.append(f'<line x1="{w - right + 12}" x2="{w - right + 32}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{w - right + 38}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    title = "shmchan throughput by message size"
    if "--title" in args:
        i = args.index("--title")
        title = args[i + 1]
        del args[i:i + 2]
    dest = pathlib.Path(args[0]) if args else ROOT / "docs" / "throughput.svg"
    series = load()
    if not series:
        sys.exit("no throughput results under target/criterion: run `cargo bench --bench throughput` first")
    dest.write_text(svg(series, title))
    print(f"wrote {dest} ({len(series)} transports)")


if __name__ == "__main__":
    main()
