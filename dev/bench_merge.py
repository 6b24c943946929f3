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
# Figures of a tree with uncommitted changes to tracked files came from code no commit
# holds: say so. The results and docs a run writes are not code.
changes = subprocess.run(
    ["git", "status", "--porcelain", "--untracked-files=no", "--",
     ".", ":(exclude)bench/results", ":(exclude)docs"],
    capture_output=True, text=True,
).stdout.strip()
if commit and changes:
    commit += "-dirty"
meta = {
    "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "git_commit": commit,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
}


def proc_field(path, name):
    """The value of `name: value` in a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


# What the figures came from: the report shows it beside them.
memory_kb = proc_field("/proc/meminfo", "MemTotal")
machine = {
    "cores": os.cpu_count(),
    "model_name": proc_field("/proc/cpuinfo", "model name"),
    "memory_gib": round(int(memory_kb.split()[0]) / 1024 / 1024, 1) if memory_kb else None,
    "kernel": platform.release(),
    "architecture": platform.machine(),
}
with open(os.path.join(results, "latest.json"), "w") as f:
    json.dump({"meta": meta, "machine": machine, **stages}, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"\n{'figure':<50} value")
for stage, figures in stages.items():
    for key, value in figures.items():
        # Series (the e2e curve, the drain's time series) are charted, not listed.
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = f"[{len(value)} points]"
        print(f"{stage + '.' + key:<50} {value}")
print(f"\nwrote {os.path.join(results, 'latest.json')}")
