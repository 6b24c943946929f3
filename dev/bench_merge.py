#!/usr/bin/env python3
"""Merges bench/results/<stage>.json into latest.json (one object per stage, plus when,
which commit, which machine) and prints the figures as a table."""
import json, os, platform, subprocess, sys, datetime
results = sys.argv[1]
stages = {}
for name in sorted(os.listdir(results)):
    if name.endswith(".json") and name != "latest.json":
        with open(os.path.join(results, name)) as f:
            stages[name[:-5]] = json.load(f)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
meta = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
}
with open(os.path.join(results, "latest.json"), "w") as f:
    json.dump({"meta": meta, **stages}, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"\n{'figure':<50} value")
for stage, figures in stages.items():
    for key, value in figures.items():
        print(f"{stage + '.' + key:<50} {value}")
print(f"\nwrote {os.path.join(results, 'latest.json')}")
