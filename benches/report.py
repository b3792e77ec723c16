#!/usr/bin/env python3
"""Turn criterion's output into the README's cost tables and chart.

    cargo bench --bench call_cost && cargo bench --bench throughput
    python3 benches/report.py            # prints Markdown, writes docs/call-cost.svg

Every ratio compares medians measured in the same run on the same machine.
"""
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRITERION = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
CHART = ROOT / "docs" / "call-cost.svg"
ZYGOTE_CHART = ROOT / "docs" / "zygote.svg"

PARENTS = [
    ("parent_0", "small"),
    ("parent_64MiB", "64 MiB"),
    ("parent_1GiB", "1 GiB"),
    ("parent_1GiB_hugepages", "1 GiB, huge pages"),
]
SERIES = [
    ("floor", "hand-written floor", "#888888"),
    ("v0_1_6", "mem-isolate 0.1.6", "#d62728"),
    ("ours", "mem-isolate (this)", "#1f77b4"),
]
ZYGOTE_PARENTS = [
    ("parent_0", "small"),
    ("parent_64MiB", "64 MiB"),
    ("parent_1GiB", "1 GiB"),
    ("parent_4GiB", "4 GiB"),
]
ZYGOTE_SERIES = [
    ("floor", "hand-written floor", "#888888"),
    ("direct", "execute (forks the caller)", "#1f77b4"),
    ("zygote", "call through the zygote", "#2ca02c"),
]


def load():
    """{(group, function): median in ns}"""
    results = {}
    for bench in CRITERION.glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        estimates = json.loads((bench.parent / "estimates.json").read_text())
        results[(meta["group_id"], meta["function_id"])] = estimates["median"]["point_estimate"]
    return results


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.0f} µs"
    return f"{ns:.1f} ns"


def call_cost_table(results):
    rows = ["| parent RSS | floor (fork+wait) | ours | ours `#[isolated]` | 0.1.6 | ours / floor | 0.1.6 / floor |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in PARENTS:
        group = f"call_cost/{key}"
        got = {f: results.get((group, f)) for f in ("floor", "floor_again", "ours", "ours_attribute", "v0_1_6")}
        if not got["floor"]:
            continue
        # The floor is measured first and last; divide by the mean of both.
        floor = (got["floor"] + (got["floor_again"] or got["floor"])) / 2
        got["floor"] = floor
        cell = lambda f: fmt_time(got[f]) if got[f] else "n/a"
        ratio = lambda f: f"{got[f] / floor:.2f}×" if got[f] else "n/a"
        rows.append(f"| {label} | {cell('floor')} | {cell('ours')} | {cell('ours_attribute')} | {cell('v0_1_6')} | **{ratio('ours')}** | {ratio('v0_1_6')} |")
    return "\n".join(rows)


def rate_cell(r):
    if r is None:
        return "n/a"
    return f"{r / 1e9:.2f} GB/s" if r >= 1e9 else f"{r / 1e6:.0f} MB/s"


def throughput_table(results):
    rows = ["| result size | ours `Vec<u8>` (made in the child) | 0.1.6 | ratio | ours `ByteBuf` (already in the child) | 0.1.6 | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, size in (("1MiB", 1 << 20), ("16MiB", 16 << 20), ("64MiB", 64 << 20), ("256MiB", 256 << 20)):
        group = f"throughput/{label}"
        rate = lambda f: size / results[(group, f)] * 1e9 if (group, f) in results else None
        def ratio(a, b):
            ra, rb = rate(a), rate(b)
            return f"**{ra / rb:.1f}×**" if ra and rb else "n/a"
        if rate("vec_ours") is None:
            continue
        rows.append(f"| {label.replace('MiB', ' MiB')} | {rate_cell(rate('vec_ours'))} | {rate_cell(rate('vec_v0_1_6'))} | {ratio('vec_ours', 'vec_v0_1_6')} | {rate_cell(rate('bytes_ours'))} | {rate_cell(rate('bytes_v0_1_6'))} | {ratio('bytes_ours', 'bytes_v0_1_6')} |")
    rows += ["", "| made in the child, about 16 MiB | ours | 0.1.6 | ratio |", "| --- | --- | --- | --- |"]
    size = 16 << 20
    group = "throughput_shapes/16MiB"
    for key, label in (("f32", "`Vec<f32>`"), ("strings", "`Vec<String>` (64-byte strings)"), ("columns", "struct of `Vec<u64>`, `Vec<f64>`, `Vec<bool>`")):
        ours, old = results.get((group, f"{key}_ours")), results.get((group, f"{key}_v0_1_6"))
        if ours and old:
            rows.append(f"| {label} | {rate_cell(size / ours * 1e9)} | {rate_cell(size / old * 1e9)} | **{old / ours:.1f}×** |")
    return "\n".join(rows)


def zygote_tables(results):
    rows = ["| caller RSS (4 KiB pages) | floor (fork+wait) | `execute` (direct fork) | `call` through the zygote | zygote / zygote at small | direct / zygote |",
            "| --- | --- | --- | --- | --- | --- |"]
    small = results.get(("zygote/parent_0", "zygote"))
    for key, label in ZYGOTE_PARENTS:
        group = f"zygote/{key}"
        got = {f: results.get((group, f)) for f in ("floor", "floor_again", "direct", "zygote")}
        if not got["zygote"]:
            continue
        floor = (got["floor"] + (got["floor_again"] or got["floor"])) / 2 if got["floor"] else None
        cell = lambda v: fmt_time(v) if v else "n/a"
        flat = f"{got['zygote'] / small:.2f}×" if small else "n/a"
        gain = f"**{got['direct'] / got['zygote']:.0f}×**" if got["direct"] else "n/a"
        rows.append(f"| {label} | {cell(floor)} | {cell(got['direct'])} | {cell(got['zygote'])} | {flat} | {gain} |")
    rows += ["", "| threads | `execute` per call | `call` per call | calls/s, zygote / direct |", "| --- | --- | --- | --- |"]
    for threads in (1, 4, 8):
        d = results.get(("zygote_threads", f"direct_{threads}"))
        z = results.get(("zygote_threads", f"zygote_{threads}"))
        if d and z:
            rows.append(f"| {threads} | {fmt_time(d)} | {fmt_time(z)} | {d / z:.2f}× |")
    none = results.get(("zygote_rewrite_1GiB", "no_call"))
    if none:
        rows += ["", "| rewriting 1 GiB (one byte per page) | time | / no call |", "| --- | --- | --- |"]
        for f, label in (("no_call", "no call before"), ("after_direct", "right after an `execute`"), ("after_zygote", "right after a `call` through the zygote")):
            v = results.get(("zygote_rewrite_1GiB", f))
            if v:
                rows.append(f"| {label} | {fmt_time(v)} | {v / none:.2f}× |")
    return "\n".join(rows)


def chart(results, prefix="call_cost", parents=PARENTS, series=SERIES, out_path=CHART,
          title="Cost of one isolated call against the parent\'s resident memory (median, log scale)"):
    """Call cost against parent RSS: one line per implementation, log scale."""
    import math
    SERIES_ = series
    def value(key, f):
        group = f"{prefix}/{key}"
        if f == "floor" and (group, "floor_again") in results and (group, "floor") in results:
            return (results[(group, "floor")] + results[(group, "floor_again")]) / 2
        return results.get((group, f))
    points = [(label, {f: value(key, f) for f, _, _ in SERIES_}) for key, label in parents]
    points = [(label, vals) for label, vals in points if all(vals.values())]
    if not points:
        return None
    width, height, left, right, top, bottom = 720, 420, 80, 200, 40, 60
    values = [v for _, vals in points for v in vals.values()]
    lo, hi = math.log10(min(values) * 0.8), math.log10(max(values) * 1.25)
    x = lambda i: left + (width - left - right) * (i / max(1, len(points) - 1))
    y = lambda ns: top + (height - top - bottom) * (1 - (math.log10(ns) - lo) / (hi - lo))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="15">{title}</text>']
    decade = math.floor(lo)
    while decade <= hi:
        for m in (1, 2, 5):
            v = m * 10 ** decade
            if lo <= math.log10(v) <= hi:
                out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
                out.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt_time(v)}</text>')
        decade += 1
    for i, (label, _) in enumerate(points):
        out.append(f'<text x="{x(i):.1f}" y="{height - bottom + 20}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 15}" text-anchor="middle">parent resident memory</text>')
    for n, (f, name, color) in enumerate(SERIES_):
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(vals[f]):.1f}" for i, (_, vals) in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for i, (_, vals) in enumerate(points):
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(vals[f]):.1f}" r="4" fill="{color}"/>')
        ly = top + 30 + 22 * n
        out.append(f'<line x1="{width - right + 15}" x2="{width - right + 40}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2.5"/>')
        out.append(f'<text x="{width - right + 46}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    out_path.parent.mkdir(exist_ok=True)
    out_path.write_text("\n".join(out) + "\n")
    return out_path


def main():
    if not CRITERION.exists():
        sys.exit("no target/criterion: run `cargo bench` first")
    results = load()
    print("### Call cost\n")
    print(call_cost_table(results))
    print("\n### Result throughput\n")
    print(throughput_table(results))
    print("\n### Zygote mode\n")
    print(zygote_tables(results))
    for written in (chart(results),
                    chart(results, "zygote", ZYGOTE_PARENTS, ZYGOTE_SERIES, ZYGOTE_CHART,
                          "One call against the caller\'s resident memory: direct fork vs zygote (median, log scale)")):
        if written:
            print(f"\nchart written to {written.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
