"""Fuzzes the console's API from the OpenAPI document it serves (schemathesis), signed in
as an operator with the CSRF token of that sign-in, with every check but one: no 5xx,
answers and statuses as documented, bad input refused, and no secret in any answer
(no_secrets.py).

Left out: `positive_data_acceptance`, which expects every schema-valid value to be
accepted. An opaque pagination cursor is a string by schema but only cursors the API
gave are accepted (400 otherwise), and serde refuses integers written as `5.0`.
The live stream (/api/v1/live) never ends, so it is not fuzzed here (the browser test
reads it).

Env: CONSOLE_URL, OPERATOR_USER, OPERATOR_PASSWORD, FORBIDDEN_FILE. Exits with
schemathesis's status.
"""

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

url = os.environ["CONSOLE_URL"]
user = os.environ["OPERATOR_USER"]
password = os.environ["OPERATOR_PASSWORD"]
basic = base64.b64encode(f"{user}:{password}".encode()).decode()
request = urllib.request.Request(
    f"{url}/api/v1/session", headers={"Authorization": f"Basic {basic}"}
)
with urllib.request.urlopen(request, timeout=10) as answer:
    csrf = json.load(answer)["csrf_token"]

here = Path(__file__).resolve().parent
schemathesis = Path(sys.executable).with_name("schemathesis")
env = dict(os.environ, PYTHONPATH=str(here), SCHEMATHESIS_HOOKS="no_secrets")
command = [
    str(schemathesis), "run", f"{url}/api/v1/openapi.json", "--url", url,
    "--auth", f"{user}:{password}", "--header", f"X-CSRF-Token: {csrf}",
    "--exclude-path", "/api/v1/live",
    "--checks", "all", "--exclude-checks", "positive_data_acceptance",
    "--max-examples", os.environ.get("FUZZ_MAX_EXAMPLES", "40"),
    # A fixed seed: the same requests every run, so a failure reproduces.
    "--seed", "20261201",
    "--request-timeout", "10", "--no-color",
]
sys.exit(subprocess.run(command, env=env, check=False).returncode)
