#!/usr/bin/env python3
"""Draws docs/OBSERVABILITY.md's dashboard section from what Prometheus answered in the
observability test (e2e/tests/observability): per panel its queries and an SVG chart of their
results over the run, the run's phases, and when each alert was pending, firing, cleared.

    python3 dev/observability_report.py [run.json] [docs-dir]

run.json defaults to where the test writes it: $HOOKLINE_OBSERVABILITY_OUT, else
$CARGO_TARGET_DIR/observability/run.json, else target/observability/run.json. Rewrites the part of docs/OBSERVABILITY.md between
its "panels:start" and "panels:end" markers and docs/observability/panel-*.svg. Python's
standard library only.
"""
import datetime
import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_report import COLORS, Chart  # noqa: E402  (the same charts as docs/BENCHMARKS.md)

START_MARKER = "<!-- panels:start (dev/observability_report.py writes this part) -->"
END_MARKER = "<!-- panels:end -->"
MAX_LINES = len(COLORS)
UNITS = {
    "reqps": ("requests/s", 1),
    "ops": ("events/s", 1),
    "s": ("ms", 1000),
    "short": ("count", 1),
    "bytes": ("MiB", 1 / (1 << 20)),
    "percentunit": ("% of a core", 100),
}


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def legend(template, labels):
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.strip() or "value"


def points(series, start, scale):
    out = []
    for t, v in series["values"]:
        value = float(v)
        if math.isfinite(value):
            out.append((float(t) - start, value * scale))
    return out


def panel_chart(panel, unit, start, end):
    y_label, scale = UNITS.get(unit, (unit, 1))
    lines = []
    for target in panel["targets"]:
        for series in target["series"]:
            pts = points(series, start, scale)
            if pts:
                lines.append((legend(target["legend"], series["metric"]), pts))
    # The busiest series, when there are more than colours.
    lines.sort(key=lambda line: -max(v for _, v in line[1]))
    shown, hidden = lines[:MAX_LINES], len(lines) - MAX_LINES
    if not shown:
        return None, 0
    high = max(v for _, pts in shown for _, v in pts)
    low = min(0, min(v for _, pts in shown for _, v in pts))
    chart = Chart(panel["title"], "seconds into the test run", y_label, (0, end - start), (low, high or 1))
    for i, (label, pts) in enumerate(shown):
        chart.line(pts, label[:22], COLORS[i], markers=False)
    return chart.svg(), max(hidden, 0)


def alert_timeline(run):
    """(alert, labels, first pending, first firing, last seen), offsets in seconds."""
    spans = {}
    for series in run["alerts"]:
        metric = series["metric"]
        key = (metric["alertname"], metric.get("webhook", ""))
        times = [float(t) - run["start"] for t, _ in series["values"]]
        span = spans.setdefault(key, {"pending": None, "firing": None, "last": 0.0})
        state = metric["alertstate"]
        span[state] = min(times) if span[state] is None else min(span[state], min(times))
        span["last"] = max(span["last"], max(times))
    return spans


def seconds(value):
    return "" if value is None else f"{value:.0f}"


def section(run, dashboard, images_rel):
    out = [START_MARKER, ""]
    when = datetime.datetime.fromtimestamp(run["start"], datetime.timezone.utc)
    out.append(
        f"From the run of {when:%Y-%m-%d %H:%M} UTC: {run['end'] - run['start']:.0f} s, namespace "
        f"`{run['namespace']}`, rules with their time spans divided by {run['time_divisor']}, charts "
        f"from `query_range` with a step of {run['step_s']} s and `$__rate_interval` = "
        f"{run['rate_window']} (Prometheus scrapes every second in the test)."
    )
    out += ["", "### The run", "", "| t (s) | what happened |", "|---:|---|"]
    for phase in run["phases"]:
        out.append(f"| {phase['at'] - run['start']:.0f} | {phase['what']} |")
    out += ["", "| alert | webhook | pending from (s) | firing from (s) | last seen (s) |", "|---|---|---:|---:|---:|"]
    for (name, webhook), span in sorted(alert_timeline(run).items(), key=lambda kv: kv[1]["last"]):
        out.append(
            f"| {name} | {webhook or '(namespace)'} | {seconds(span['pending'])} | "
            f"{seconds(span['firing'])} | {seconds(span['last'])} |"
        )
    units = {p["title"]: p["fieldConfig"]["defaults"].get("unit", "") for p in dashboard["panels"] if p["type"] != "row"}
    descriptions = {p["title"]: p.get("description", "") for p in dashboard["panels"] if p["type"] != "row"}
    charts = {}
    rows, row = {}, None  # panel title -> the title of the row above it
    for p in dashboard["panels"]:
        if p["type"] == "row":
            row = p["title"]
        else:
            rows[p["title"]] = row
    current_row = None
    for panel in run["panels"]:
        title = panel["title"]
        if rows.get(title) != current_row:
            current_row = rows.get(title)
            out += ["", f"### {current_row}"]
        out += ["", f"#### {title}", "", descriptions.get(title, ""), ""]
        for target in panel["targets"]:
            out += ["```promql", target["expr"], "```"]
        svg, hidden = panel_chart(panel, units.get(title, ""), run["start"], run["end"])
        if svg is None:
            out += ["", "*No finite values in this run.*"]
            continue
        name = f"panel-{slug(title)}.svg"
        charts[name] = svg
        out += ["", f"![{title}]({images_rel}/{name})"]
        if hidden:
            out.append(f"({hidden} quieter series not drawn.)")
    out += ["", END_MARKER]
    return "\n".join(out), charts


def default_run_file(root):
    """Where the test writes run.json: $HOOKLINE_OBSERVABILITY_OUT, else the cargo target dir's."""
    if os.environ.get("HOOKLINE_OBSERVABILITY_OUT"):
        return os.environ["HOOKLINE_OBSERVABILITY_OUT"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    return os.path.join(target, "observability/run.json")


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run_file = sys.argv[1] if len(sys.argv) > 1 else default_run_file(root)
    docs = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, "docs")
    with open(run_file) as f:
        run = json.load(f)
    with open(os.path.join(root, "helm/hookline/files/dashboard.json")) as f:
        dashboard = json.load(f)
    text, charts = section(run, dashboard, "observability")
    images = os.path.join(docs, "observability")
    os.makedirs(images, exist_ok=True)
    for old in os.listdir(images):
        if old.startswith("panel-") and old.endswith(".svg"):
            os.remove(os.path.join(images, old))
    for name, svg in charts.items():
        with open(os.path.join(images, name), "w") as f:
            f.write(svg)
    doc = os.path.join(docs, "OBSERVABILITY.md")
    with open(doc) as f:
        current = f.read()
    if START_MARKER not in current or END_MARKER not in current:
        sys.exit(f"{doc} has no {START_MARKER} ... {END_MARKER} part to rewrite")
    before = current.split(START_MARKER)[0]
    after = current.split(END_MARKER, 1)[1]
    with open(doc, "w") as f:
        f.write(before + text + after)
    print(f"wrote {os.path.normpath(doc)} and {len(charts)} charts in {os.path.normpath(images)}")


if __name__ == "__main__":
    main()
