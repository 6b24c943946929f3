#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md and its charts (docs/bench-*.svg) from the bench figures.

    python3 dev/bench_report.py bench/results [docs-dir]

Reads RESULTS/latest.json (dev/bench_merge.py writes it), or the stage files when there
is none. A figure missing from the results is shown as "not measured": the report
renders whatever a run produced. Python's standard library only.
"""
import datetime
import html
import json
import math
import os
import sys

# Issue 28's targets: (stage, figure, target, "max" or "min", note). Each is judged on
# the figure itself, the median of its repeats.
TARGETS = [
    ("idle", "hookline_cpu_cores", 0.02, "max", "all Hookline processes at rest (handlers, consumers, operator, console)"),
    ("e2e", "rate_5000_per_s_p99_ms", 100, "max", "emit-to-row p99 at 5,000 events/s"),
    ("e2e", "rate_5000_per_s_stored_per_s", 4950, "min", "stored at 5,000 events/s: all of them (99 %, the window's edges aside)"),
    ("e2e", "highest_steady_rate_per_s", 5000, "min", "highest steady emit-to-row rate (p99 < 250 ms, >= 95 % stored, every repeat)"),
    ("e2e", "rate_5000_per_s_cpu_s_per_1000_events", 0.12, "max", "CPU seconds of every process per 1,000 events at 5,000/s"),
    ("e2e", "rate_1000_per_s_cpu_s_per_1000_events", 0.15, "max", "CPU seconds of every process per 1,000 events at 1,000/s"),
    ("handler", "fixed_rate_cpu_us_per_request", 20, "max", "handler CPU per request, one process at a fixed 5,000/s"),
    ("handler", "cpu_us_per_request", 15, "max", "handler CPU per verified 1 KiB request at saturation"),
    ("consumer", "stored_per_s", 50000, "min", "consumer drain, 1 KiB events"),
    ("operator", "operator_peak_rss_mb", 80, "max", "operator peak memory, 1,000 Webhooks"),
    ("consumer", "peak_rss_mb", 128, "max", "consumer peak memory during the drain"),
]
# Earlier issues' targets (16 and 27) that issue 28 does not restate.
EARLIER_TARGETS = [
    ("handler_slow_senders", "valid_sender_accepted_share", 0.99, "min", "valid sender's 202 share during 500 slow senders"),
    ("handler_slow_senders", "valid_sender_p99_ms", 1000, "max", "valid sender's p99 during 500 slow senders"),
    ("operator", "cold_start_all_ready_s", 30, "max", "1,000 Webhooks cold start"),
    ("operator", "apply_to_deployment_p99_ms", 200, "max", "apply-to-Deployment p99"),
]
# Keys a repeated figure has beside it.
SPREAD = ("_min", "_max", "_samples")

STAGES = {
    "idle": "`make run`'s system at rest: one Webhook with its emitter off, so the handlers and consumers "
    "hold their work but no event flows. CPU cores and wake-ups per second (voluntary and involuntary "
    "context switches of every thread) per kind of process, and the threads woken most often.",
    "operator": "Apply-to-Deployment latency, cold start with 1,000 Webhooks, operator memory.",
    "emitter": "Whether the emitter holds its rate over a minute at 1 and 1,000 events per second.",
    "handler": "Verified requests per second at saturation (closed loop), latency at a fixed rate "
    "(open loop), CPU per verified request, handler memory.",
    "handler_slow_senders": "500 slow senders (headers, then a body byte every half second) on one "
    "webhook from ten addresses behind a trusted proxy, against a handler sized for 300 requests at "
    "once: a valid sender's 202 share and latency on another webhook, one request every 50 ms.",
    "consumer": "Events stored per second draining a pre-filled topic, CPU per stored event, "
    "produce-to-row delay at a steady rate, consumer memory.",
    "e2e": "Emit-to-row latency through the whole system (emitters, nginx, three handlers, Kafka, "
    "two consumers, PostgreSQL) at several offered rates, and the CPU each kind of process spends "
    "per 1,000 events.",
    "kind": "The kind cluster of `make kind-up` (`make kind-bench`): signed events from the host through "
    "Traefik's Ingress to three handler pods at fixed rates; p50 and p99 from send (the event's "
    "timestamp) to its row in the cluster's PostgreSQL, and the share of the window's events stored.",
    "consumer_scaling": "Consumers scaled 2 -> 4 -> 1 under a steady rate: the longest any partition "
    "went unread, produce-to-row delays, every event stored once.",
    "storage": "Ten million events over simulated days through the consumer's insert while the retention "
    "sweep drops old days: insert rate and console query times per day.",
    "console": "With 10 million events stored: the console's list and search times through its API, "
    "and how soon its live tail shows an event.",
}
NOT_MEASURED = "not measured"
# The e2e stage's process kinds, along an event's path.
KINDS = ["emitter", "proxy", "handler", "kafka", "consumer", "postgres", "operator"]
CPU_PREFIX = "cpu_s_per_1000_events_"
CPU_ALL = "cpu_s_per_1000_events"


def load(results):
    path = os.path.join(results, "latest.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    data = {}
    for name in sorted(os.listdir(results)):
        if name.endswith(".json"):
            with open(os.path.join(results, name)) as f:
                data[name[:-5]] = json.load(f)
    return data


def number(value):
    """A figure as text: thousands separated, at most three decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def cell(value):
    if value is None:
        return NOT_MEASURED
    if isinstance(value, list):
        return " / ".join(number(v) for v in value)
    return number(value)


def spread_cell(figures, key):
    """A figure with, when it was repeated, its lowest and highest and how many repeats."""
    text = cell(figures.get(key))
    low, high, samples = (figures.get(key + suffix) for suffix in SPREAD)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        count = f" of {len(samples)}" if isinstance(samples, list) else ""
        text += f" ({number(low)} – {number(high)}{count})"
    return text


def is_derived(key, figures):
    """Whether `key` is the _min, _max or _samples beside a repeated figure."""
    return any(key.endswith(suffix) and key[: -len(suffix)] in figures for suffix in SPREAD)


def is_series(value):
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- charts (SVG)

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 80, 170, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def linear_ticks(low, high, count=6):
    """Round ticks from `low` up to the first at or past `high`: (ticks, first, last)."""
    raw = max(high - low, 1e-9) / count
    step = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= step * multiple:
            step *= multiple
            break
    first = math.floor(low / step) * step
    ticks = [first]
    while ticks[-1] < high - step * 1e-6:
        ticks.append(round(first + step * len(ticks), 10))
    return ticks, first, ticks[-1]


def log_ticks(low, high):
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10 ** exponent
            if low <= value <= high:
                ticks.append(value)
    return ticks


class Chart:
    """A line chart with axes, ticks, labels, optional dashed reference lines and a legend."""

    def __init__(self, title, x_label, y_label, x_range, y_range, y_log=False):
        self.title, self.x_label, self.y_label, self.y_log = title, x_label, y_label, y_log
        self.parts = []
        self.legend = []
        if y_log:
            low, high = y_range
            self.y_low = 10 ** math.floor(math.log10(max(low, 1e-3)))
            self.y_high = 10 ** math.ceil(math.log10(max(high, self.y_low * 10)))
            self.y_ticks = log_ticks(self.y_low, self.y_high)
        else:
            self.y_ticks, self.y_low, self.y_high = linear_ticks(y_range[0], max(y_range[1], y_range[0] + 1e-9))
        self.x_ticks, self.x_low, self.x_high = linear_ticks(x_range[0], max(x_range[1], x_range[0] + 1e-9))

    def x(self, value):
        share = (value - self.x_low) / ((self.x_high - self.x_low) or 1)
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def y(self, value):
        if self.y_log:
            value = max(value, self.y_low)
            share = math.log10(value / self.y_low) / math.log10(self.y_high / self.y_low)
        else:
            share = (value - self.y_low) / ((self.y_high - self.y_low) or 1)
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)

    def line(self, points, label, color, markers=True, width=2):
        path = " ".join(f"{self.x(px):.1f},{self.y(py):.1f}" for px, py in points)
        self.parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{path}"/>')
        if markers:
            for px, py in points:
                self.parts.append(f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="3.5" fill="{color}"/>')
        self.legend.append(("line" if markers else "plain", label, color))

    def dots(self, points, label, color):
        for px, py in points:
            self.parts.append(
                f'<circle cx="{self.x(px):.1f}" cy="{self.y(py):.1f}" r="3" fill="none" stroke="{color}"/>'
            )
        self.legend.append(("dot", label, color))

    def reference(self, value, label, color):
        y = self.y(value)
        self.parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        self.legend.append(("dash", label, color))

    def svg(self):
        text = lambda x, y, s, extra="": (
            f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{html.escape(str(s))}</text>'
        )
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
            text(WIDTH / 2, 22, self.title, 'text-anchor="middle" font-size="15" font-weight="bold"'),
        ]
        for tick in self.y_ticks:
            y = self.y(tick)
            out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
            out.append(text(LEFT - 8, y + 4, number(tick), 'text-anchor="end"'))
        for tick in self.x_ticks:
            x = self.x(tick)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#f0f0f0"/>')
            out.append(text(x, HEIGHT - BOTTOM + 18, number(tick), 'text-anchor="middle"'))
        out.append(
            f'<path d="M{LEFT},{TOP} V{HEIGHT - BOTTOM} H{WIDTH - RIGHT}" fill="none" stroke="#333"/>'
        )
        out.append(text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 18, self.x_label, 'text-anchor="middle"'))
        middle = (TOP + HEIGHT - BOTTOM) / 2
        out.append(text(20, middle, self.y_label, f'text-anchor="middle" transform="rotate(-90 20 {middle})"'))
        out += self.parts
        for i, (kind, label, color) in enumerate(self.legend):
            x, y = WIDTH - RIGHT + 14, TOP + 10 + i * 22
            if kind in ("line", "plain"):
                out.append(f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2"/>')
            if kind == "line":
                out.append(f'<circle cx="{x + 11}" cy="{y}" r="3.5" fill="{color}"/>')
            elif kind == "dot":
                out.append(f'<circle cx="{x + 11}" cy="{y}" r="3" fill="none" stroke="{color}"/>')
            else:
                out.append(
                    f'<line x1="{x}" x2="{x + 22}" y1="{y}" y2="{y}" stroke="{color}" '
                    f'stroke-width="1.5" stroke-dasharray="6 4"/>'
                )
            out.append(text(x + 28, y + 4, label))
        out.append("</svg>")
        return "\n".join(out) + "\n"


def latency_chart(curve):
    points = sorted(curve, key=lambda p: p["rate"])
    values = [p[k] for p in points for k in ("p50_ms", "p99_ms") if p.get(k) is not None]
    values += [v for p in points for v in p.get("p99_ms_samples", []) if v is not None]
    values.append(100)
    chart = Chart(
        "End to end: emit-to-row latency against offered rate",
        "offered rate (events/s)",
        "latency (ms, log scale)",
        (0, max(p["rate"] for p in points)),
        (min(values), max(values)),
        y_log=True,
    )
    # A rate whose percentiles are unknown (null) has no point on the line.
    line = lambda key: [(p["rate"], p[key]) for p in points if p.get(key) is not None]
    chart.line(line("p50_ms"), "p50", COLORS[0])
    chart.line(line("p99_ms"), "p99 (median repeat)", COLORS[1])
    samples = [(p["rate"], v) for p in points for v in p.get("p99_ms_samples", []) if v is not None]
    if samples:
        chart.dots(samples, "p99 of each repeat", COLORS[1])
    chart.reference(100, "p99 target 100 ms", COLORS[2])
    return chart.svg()


def drain_chart(series, stored_per_s):
    points = [(p["t_s"], p["stored_per_s"]) for p in series]
    top = max([y for _, y in points] + [50000, stored_per_s or 0])
    chart = Chart(
        "Consumer drain: events stored per second",
        "time since the consumer started (s)",
        "stored per second",
        (0, max(x for x, _ in points)),
        (0, top),
    )
    chart.line(points, "stored/s (250 ms)", COLORS[0], markers=False)
    if stored_per_s:
        chart.reference(stored_per_s, "the drain's figure", COLORS[3])
    chart.reference(50000, "target 50,000/s", COLORS[2])
    return chart.svg()


# ---------------------------------------------------------------- the page


def meets(value, target, direction):
    """Whether a figure meets its target; None when there is no figure."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return None
    return value <= target if direction == "max" else value >= target


def targets_section(data, targets):
    rows = []
    for stage, key, target, direction, note in targets:
        figures = data.get(stage, {})
        met = meets(figures.get(key), target, direction)
        verdict = NOT_MEASURED if met is None else ("meets" if met else "**misses**")
        rows.append(
            [f"`{stage}.{key}`", note, spread_cell(figures, key),
             ("≤ " if direction == "max" else "≥ ") + number(target), verdict]
        )
    return table(["figure", "what", "median (min – max of repeats)", "target", "verdict"], rows)


def machine_section(data):
    machine, meta = data.get("machine") or {}, data.get("meta") or {}
    # Results merged before `machine` was recorded have only meta's core count and
    # architecture.
    cores = machine.get("cores", meta.get("cpus"))
    memory = machine.get("memory_gib")
    rows = [
        ["cores", number(cores) if cores else "not recorded"],
        ["CPU model", machine.get("model_name") or "not recorded"],
        ["memory", f"{number(memory)} GiB" if memory else "not recorded"],
        ["kernel", machine.get("kernel") or "not recorded"],
        ["architecture", machine.get("architecture") or meta.get("machine") or "not recorded"],
        ["measured at", meta.get("generated_at", "not recorded")],
        ["commit", f"`{meta['git_commit']}`" if meta.get("git_commit") else "not recorded"],
    ]
    if str(meta.get("git_commit", "")).endswith("-dirty"):
        rows.append(["note", "the tree had uncommitted changes: the figures are of that code, not of the commit alone"])
    return table(["what", "value"], rows)


def e2e_rates(figures):
    """The reported rates' figures as one table: a row per figure, a column per rate."""
    rates, names = [], []
    for key in figures:
        if key.startswith("rate_") and "_per_s_" in key and not is_derived(key, figures) and not key.endswith("_samples"):
            rate, name = key[len("rate_"):].split("_per_s_", 1)
            if int(rate) not in rates:
                rates.append(int(rate))
            if name not in names:
                names.append(name)
    if not rates:
        return ""
    rates.sort()
    names.sort(key=figure_order)
    rows = []
    for name in names:
        label = "CPU s per 1,000 events: all processes" if name == CPU_ALL else name.replace(CPU_PREFIX, "CPU s per 1,000 events: ")
        row = [label]
        for rate in rates:
            row.append(spread_cell(figures, f"rate_{rate}_per_s_{name}"))
        rows.append(row)
    header = ["figure"] + [f"{number(r)}/s" for r in rates]
    intro = "Reported rates (each figure the median of the repeats; lowest – highest in parentheses):"
    return intro + "\n\n" + table(header, rows)


def figure_order(name):
    """The e2e stage's order: latency, stored rate, then CPU by kind along the event's path."""
    order = ["p50_ms", "p99_ms", "stored_per_s", CPU_ALL] + [CPU_PREFIX + kind for kind in KINDS]
    return (order.index(name), name) if name in order else (len(order), name)


def e2e_curve(curve):
    found = {k[len(CPU_PREFIX):] for point in curve for k in point if k.startswith(CPU_PREFIX)}
    kinds = sorted(found, key=lambda kind: figure_order(CPU_PREFIX + kind))
    rows = []
    for point in sorted(curve, key=lambda p: p["rate"]):
        cpu = [point.get(CPU_PREFIX + kind) for kind in kinds]
        # The median of the repeats' totals when the stage gives it; the median of each
        # kind need not add up to it.
        total = point.get(CPU_ALL, sum(c for c in cpu if c is not None))
        rows.append(
            [number(point["rate"]), point.get("repeats", 1), "yes" if point.get("steady") else "no",
             cell(point.get("p50_ms")), cell(point.get("p99_ms")), cell(point.get("stored_per_s"))]
            + [cell(c) for c in cpu] + [number(round(total, 3))]
        )
    header = ["rate/s", "repeats", "steady", "p50 ms", "p99 ms", "stored/s"] + [f"CPU {k}" for k in kinds] + ["CPU all"]
    return (
        "Every rate tried (the median repeat; CPU in seconds per 1,000 events):\n\n" + table(header, rows)
    )


def repeats_note(figures):
    """How often the stage's figures were measured, as the page says it."""
    for count_key, what in (("stage_runs", "runs of the stage"), ("windows", "consecutive windows"), ("repeats", "repeats of every rate")):
        count = figures.get(count_key)
        if isinstance(count, int) and count > 1:
            return (f"Each figure is the median of {count} {what}; the lowest and highest follow in "
                    "parentheses, and latest.json keeps every sample (`_min`, `_max`, `_samples`).")
    return "One run: how much these figures vary between runs is not measured here."


IDLE_KINDS = ["handler", "consumer", "operator", "console", "hookline", "proxy", "kafka", "postgres", "kube_apiserver", "etcd"]


def idle_tables(figures):
    rows = []
    for kind in IDLE_KINDS:
        cores = f"{kind}_cpu_cores"
        if cores not in figures:
            continue
        processes = figures.get(f"{kind}_processes")
        label = "**Hookline** (handlers, consumers, operator, console)" if kind == "hookline" else kind.replace("_", "-")
        rows.append([label, cell(processes) if processes is not None else "", spread_cell(figures, cores),
                     spread_cell(figures, f"{kind}_wakeups_per_s")])
    out = ["Per kind of process (all its processes together):", "",
           table(["kind", "processes", "CPU cores", "wake-ups/s"], rows), ""]
    for key, title in (("top_threads", "The threads woken most often"), ("top_hookline_threads", "Hookline's threads woken most often")):
        top = figures.get(key)
        if is_series(top):
            out += [f"{title}, over every window (names as the kernel keeps them, 15 characters):", "",
                    table(["kind", "pid", "thread", "wake-ups/s"],
                          [[t.get("kind"), t.get("pid"), f"`{t.get('thread')}`", number(t.get("wakeups_per_s"))] for t in top]), ""]
    return out, {k for k in figures if k.endswith(("_cpu_cores", "_wakeups_per_s", "_processes")) or is_derived(k, figures)}


def kind_table(figures):
    rates = sorted({int(k[len("rate_"):].split("_per_s_")[0]) for k in figures if k.startswith("rate_") and "_per_s_" in k})
    rows = []
    for rate in rates:
        key = lambda name: f"rate_{rate}_per_s_{name}"
        rows.append([number(rate)] + [spread_cell(figures, key(n)) for n in ("p50_ms", "p99_ms", "stored_share", "accepted_share", "sent")])
    header = ["rate/s", "p50 ms", "p99 ms", "stored share", "accepted share", "sent in the window"]
    return ["One row per rate, send (the event's timestamp) to row:", "", table(header, rows), ""], {
        k for k in figures if k.startswith("rate_")}


def stage_section(stage, figures, charts):
    out = [f"### {stage}", "", STAGES.get(stage, ""), "", repeats_note(figures), ""]
    for chart in charts:
        out += [chart, ""]
    shown = set()
    if stage == "e2e":
        rates = e2e_rates(figures)
        if rates:
            out += [rates, ""]
            shown |= {k for k in figures if k.startswith("rate_") and "_per_s_" in k}
        if is_series(figures.get("curve")):
            out += [e2e_curve(figures["curve"]), ""]
    elif stage == "idle":
        lines, shown = idle_tables(figures)
        out += lines
    elif stage == "kind":
        lines, shown = kind_table(figures)
        out += lines
    rows = []
    for key, value in figures.items():
        if key in shown or is_series(value) or is_derived(key, figures):
            continue
        rows.append([f"`{key}`", spread_cell(figures, key)])
    if rows:
        out += [table(["figure", "value"], rows), ""]
    return out


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    docs = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs")
    data = load(results)
    os.makedirs(docs, exist_ok=True)

    charts = {}
    curve = data.get("e2e", {}).get("curve")
    if is_series(curve):
        with open(os.path.join(docs, "bench-e2e-latency.svg"), "w") as f:
            f.write(latency_chart(curve))
        charts["e2e"] = ["![emit-to-row latency against offered rate](bench-e2e-latency.svg)"]
    else:
        charts["e2e"] = [f"Latency chart: {NOT_MEASURED} (no `e2e.curve` in the results)."]
    series = data.get("consumer", {}).get("drain_series")
    if is_series(series):
        with open(os.path.join(docs, "bench-consumer-drain.svg"), "w") as f:
            f.write(drain_chart(series, data["consumer"].get("stored_per_s")))
        charts["consumer"] = ["![stored per second during the drain](bench-consumer-drain.svg)"]
    else:
        charts["consumer"] = [f"Drain chart: {NOT_MEASURED} (no `consumer.drain_series` in the results)."]

    order = [s for s in STAGES if s in data] + sorted(
        s for s in data if s not in STAGES and s not in ("meta", "machine") and isinstance(data[s], dict)
    )
    page = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`dev/bench_report.py` from `bench/results/latest.json`); do not edit by hand.",
        "Each stage runs against the local stack on one machine, every process sharing its cores;",
        "`hookline-bench STAGE --help` says what a stage does and which settings it takes.",
        "",
        "## The machine",
        "",
        machine_section(data),
        "",
        "## Targets (issue 28)",
        "",
        "Each verdict is computed from the figure, the median of its repeats.",
        "",
        targets_section(data, TARGETS),
        "",
        "Earlier targets (issues 16 and 27) that issue 28 does not restate:",
        "",
        targets_section(data, EARLIER_TARGETS),
        "",
        "## Stages",
        "",
    ]
    for stage in order:
        page += stage_section(stage, data[stage], charts.get(stage, []))
    for stage in ("e2e", "consumer"):
        if stage not in data:
            page += [f"### {stage}", "", f"{NOT_MEASURED}.", ""] + charts[stage] + [""]
    for stage, how in (("idle", "make bench STAGES=idle"), ("kind", "make kind-up, then make kind-bench")):
        if stage not in data:
            page += [f"### {stage}", "", STAGES[stage], "", f"{NOT_MEASURED} (`{how}`).", ""]
    path = os.path.join(docs, "BENCHMARKS.md")
    with open(path, "w") as f:
        f.write("\n".join(page).rstrip() + "\n")
    print(f"wrote {os.path.normpath(path)} ({datetime.datetime.now():%H:%M:%S})")


if __name__ == "__main__":
    main()
