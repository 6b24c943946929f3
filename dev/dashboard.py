#!/usr/bin/env python3
"""The live view of `make run`: events emitted, delivered, accepted, stored, retried and
dead-lettered, read from each local replica's /metrics (dev-pod-runner's pods.json says
where they listen) and from PostgreSQL. Standard library only."""

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request


def metric_sum(text, name, label=None):
    """Sum of the samples of `name` (optionally only those whose labels contain `label`)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name or (label and label not in series):
            continue
        try:
            total += float(value)
        except ValueError:
            pass
    return total


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            return response.read().decode()
    except OSError:
        return ""


def pods(path):
    try:
        with open(path) as f:
            return json.load(f).get("pods", {})
    except (OSError, ValueError):
        return {}


def count(psql, url, table, namespace):
    """Rows of `table` that belong to the namespace's live webhooks (the database is shared)."""
    sql = (
        f"select count(*) from {table} t join webhooks w using (webhook_id) "
        f"where w.namespace = '{namespace}' and w.status <> 'deleted'"
    )
    out = subprocess.run([psql, url, "-Atc", sql], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--psql", default="psql")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--console-url", default="")
    args = parser.parse_args()
    # A Kubernetes namespace name: safe to write into the SQL text.
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", args.namespace):
        parser.error(f"not a namespace name: {args.namespace!r}")
    lines = 0
    while True:
        # The console's address scrolls away with the figures: repeat it now and then.
        if args.console_url and lines % 30 == 0:
            print(f"console: {args.console_url} (sign-ins: printed above, or the Secret hookline-console)", flush=True)
        lines += 1
        totals = {"emitted": 0, "delivered": 0, "accepted": 0, "retried": 0, "failed": 0}
        replicas = {}
        for info in pods(args.pods).values():
            component = info.get("component") or "?"
            replicas[component] = replicas.get(component, 0) + 1
            ports = info.get("ports", {})
            if component == "emitter":
                text = scrape(ports.get("9090"))
                totals["emitted"] += metric_sum(text, "hookline_emitter_emitted_total")
                totals["delivered"] += metric_sum(text, "hookline_emitter_delivered_total")
                totals["failed"] += metric_sum(text, "hookline_emitter_failed_total")
            elif component == "handler":
                text = scrape(ports.get("9090"))
                totals["accepted"] += metric_sum(text, "hookline_handler_requests_total", 'status="202"')
            elif component == "consumer":
                text = scrape(ports.get("9090"))
                totals["retried"] += metric_sum(text, "hookline_consumer_retries_total")
        stored = count(args.psql, args.database_url, "events", args.namespace)
        dead = count(args.psql, args.database_url, "dead_letters", args.namespace)
        shape = " ".join(f"{k}={v}" for k, v in sorted(replicas.items()))
        print(
            f"{time.strftime('%H:%M:%S')}  emitted {totals['emitted']:.0f}  delivered {totals['delivered']:.0f}"
            f"  failed {totals['failed']:.0f}  accepted {totals['accepted']:.0f}  stored {stored}"
            f"  retried {totals['retried']:.0f}  dead-lettered {dead}  | {shape}",
            flush=True,
        )
        time.sleep(args.interval)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
