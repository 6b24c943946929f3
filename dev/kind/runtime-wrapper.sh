#!/usr/bin/env bash
# An OCI runtime for the offline kind engine only: removes CAP_SYS_RESOURCE from what a
# container asks for, then runs runc. kind's nodes are privileged, and --privileged asks for
# every capability, but root on some VMs lacks CAP_SYS_RESOURCE in its bounding set, so runc
# fails with "unable to apply caps: operation not permitted". dev/kind/engine.sh registers
# this as the default runtime of its own dockerd; Docker engines that work normally never
# see it.
set -euo pipefail

RUNC=${HOOKLINE_RUNC:-/usr/sbin/runc}

# Usage: drop_sys_resource FILE KEY; KEY is "process" in a bundle's config.json and "" in
# the process.json of `runc exec --process`.
drop_sys_resource() {
  python3 - "$1" "$2" <<'PY'
import json, sys
path, key = sys.argv[1], sys.argv[2]
with open(path) as f:
    doc = json.load(f)
process = doc.get(key, {}) if key else doc
caps = process.get("capabilities") or {}
for name in list(caps):
    if isinstance(caps[name], list):
        caps[name] = [c for c in caps[name] if c != "CAP_SYS_RESOURCE"]
with open(path, "w") as f:
    json.dump(doc, f)
PY
}

args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --bundle | -b) drop_sys_resource "${args[$((i + 1))]}/config.json" process ;;
    --bundle=*) drop_sys_resource "${args[$i]#--bundle=}/config.json" process ;;
    --process | -p) drop_sys_resource "${args[$((i + 1))]}" "" ;;
    --process=*) drop_sys_resource "${args[$i]#--process=}" "" ;;
  esac
done
exec "$RUNC" "$@"
