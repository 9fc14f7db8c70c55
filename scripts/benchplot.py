"""SVG charts of side-by-side benchmark figures, written by hand (no plotting library needed, the
files are small, plain text and the same for the same figures).

    from benchplot import hbar_chart
    svg = hbar_chart("pipelined writes", ["creates/s", "setData/s"],
                     [("ZooKeeper 3.8", [5712, 6180]), ("MiniZK", [26310, 27590])], unit="ops/s")
    open("writes.svg", "w").write(svg)

`hbar_chart` draws horizontal grouped bars, one group per category, one bar per series (None:
no bar), the value written at the end of each bar; `log=True` uses a logarithmic axis (ratios),
`reference` draws a vertical line (1.0 for ratios). `Progress` prints "k/n done, ETA" lines for
long runs.
"""

import math
import sys
import time
from xml.sax.saxutils import escape

PALETTE = ["#7f8c9d", "#2f6feb", "#e8590c", "#0e7c3a", "#9c36b5", "#c92a2a"]


def _fmt(value):
    if value is None:
        return ""
    magnitude = abs(value)
    if magnitude >= 10000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _nice_ceil(value):
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def hbar_chart(title, categories, series, unit="", log=False, reference=None, subtitle=None, width=760, first_color=0):
    """An SVG document: `series` is [(name, [value per category])]."""
    label_width, right = 250, 70
    bar, gap_in, gap_out = 14, 2, 12
    top = 48 + (16 if subtitle else 0)
    legend_height = 22
    group_height = len(series) * (bar + gap_in) - gap_in + gap_out
    plot_height = len(categories) * group_height
    height = top + plot_height + 34 + legend_height
    plot_left, plot_right = label_width, width - right
    values = [v for _, vs in series for v in vs if v is not None and v > 0]
    if log:
        low = 10 ** math.floor(math.log10(min(values + [reference or 1])))
        high = 10 ** math.ceil(math.log10(max(values + [reference or 1])))
        if high <= low:
            high = low * 10

        def x(v):
            v = max(v, low)
            return plot_left + (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low)) * (plot_right - plot_left)
        ticks = []
        decade = low
        while decade <= high * 1.0001:
            ticks += [t for t in (decade, 2 * decade, 5 * decade) if t <= high * 1.0001]
            decade *= 10
    else:
        high = _nice_ceil(max(values + [reference or 0]) * 1.05) if values else 1

        def x(v):
            return plot_left + max(v, 0) / high * (plot_right - plot_left)
        ticks = [high * i / 5 for i in range(6)]

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="16" y="24" font-size="15" font-weight="bold" fill="#1d2330">{escape(title)}</text>']
    if subtitle:
        out.append(f'<text x="16" y="42" fill="#667085">{escape(subtitle)}</text>')
    axis_y = top + plot_height
    for t in ticks:
        tx = x(t)
        out.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{axis_y}" stroke="#eaecf0"/>')
        out.append(f'<text x="{tx:.1f}" y="{axis_y + 14}" text-anchor="middle" fill="#667085" font-size="10">{escape(f"{t:,.6g}")}</text>')
    if unit:
        out.append(f'<text x="{plot_right}" y="{axis_y + 28}" text-anchor="end" fill="#667085" font-size="11">{escape(unit)}</text>')
    for i, category in enumerate(categories):
        gy = top + i * group_height
        middle = gy + (group_height - gap_out) / 2
        out.append(f'<text x="{plot_left - 8}" y="{middle + 4:.1f}" text-anchor="end" fill="#1d2330">{escape(category)}</text>')
        for j, (_, vs) in enumerate(series):
            value = vs[i] if i < len(vs) else None
            if value is None:
                continue
            by = gy + j * (bar + gap_in)
            bx = x(low) if log else plot_left
            w = max(1.0, x(value) - bx)
            color = PALETTE[(first_color + j) % len(PALETTE)]
            out.append(f'<rect x="{bx:.1f}" y="{by}" width="{w:.1f}" height="{bar}" fill="{color}"/>')
            out.append(f'<text x="{bx + w + 4:.1f}" y="{by + bar - 3}" fill="#1d2330" font-size="10">{escape(_fmt(value))}</text>')
    if reference is not None:
        rx = x(reference)
        out.append(f'<line x1="{rx:.1f}" y1="{top - 6}" x2="{rx:.1f}" y2="{axis_y}" stroke="#c92a2a" stroke-dasharray="4 3"/>')
    out.append(f'<line x1="{plot_left}" y1="{axis_y}" x2="{plot_right}" y2="{axis_y}" stroke="#98a2b3"/>')
    lx, ly = 16, height - 10
    for j, (name, _) in enumerate(series):
        color = PALETTE[(first_color + j) % len(PALETTE)]
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly}" fill="#1d2330">{escape(name)}</text>')
        lx += 28 + 7 * len(name)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path, svg):
    with open(path, "w") as f:
        f.write(svg)
    print(f"wrote {path}", file=sys.stderr, flush=True)


class Progress:
    """`step()` after each unit of work prints `label: k/n, elapsed, ETA` to standard error."""

    def __init__(self, total, label="progress"):
        self.total, self.label, self.done = total, label, 0
        self.started = time.monotonic()

    def step(self, what=""):
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        print(f"{self.label}: {self.done}/{self.total} {what} ({elapsed:.0f} s, about {eta:.0f} s left)",
              file=sys.stderr, flush=True)


def side_by_side_charts(table, servers, labels=None, baseline=None, lower_is_better=()):
    """Charts of a side-by-side table {figure key: {server: value}} for `servers` (in order):
    rates (keys ending `_rate` or `/s`), latencies (`_ms`), durations (`_s`), and, with a
    `baseline` server, every other server's ratio to it on a log axis. Returns {name: svg}."""
    labels = labels or {}

    def label(key):
        return labels.get(key, key)

    def pick(predicate):
        return [key for key in table if predicate(key) and any(table[key].get(s) is not None for s in servers)]

    groups = [
        ("throughput", "operations per second (more is better)", "ops/s", pick(lambda k: k.endswith("_rate")), False),
        ("latency", "milliseconds (less is better)", "ms", pick(lambda k: k.endswith("_ms")), False),
        ("durations", "seconds (less is better), log scale", "s", pick(lambda k: k.endswith("_s")), True),
        ("memory", "MiB (less is better)", "MiB", pick(lambda k: k.endswith("_mib")), False),
    ]
    charts = {}
    for name, subtitle, unit, keys, log in groups:
        if not keys:
            continue
        charts[name] = hbar_chart(
            name.capitalize(), [label(k) for k in keys], [(s, [table[k].get(s) for k in keys]) for s in servers],
            unit=unit, log=log, subtitle=subtitle)
    if baseline in servers:
        others = [s for s in servers if s != baseline]
        keys = [k for k in table if table[k].get(baseline) and any(table[k].get(s) for s in others)]
        if keys:
            def ratio(k, s):
                value = table[k].get(s)
                if not value:
                    return None
                r = value / table[k][baseline]
                # Shown as "times better": above 1 wins, whatever the direction of the figure.
                lower = k in lower_is_better or k.endswith(("_ms", "_s", "_mib"))
                return 1 / r if lower else r
            charts["ratios"] = hbar_chart(
                f"Against {baseline}", [label(k) for k in keys], [(f"{s} / {baseline}", [ratio(k, s) for k in keys]) for s in others],
                unit="times as good (log scale)", log=True, reference=1.0, first_color=1,
                subtitle=f"how many times better than {baseline} (right of the red line: better)")
    return charts
