"""schemathesis hook: a check that fails when an answer holds a string of FORBIDDEN_FILE
(signing secrets, signatures, passwords, the session key: one per line)."""

import os

import schemathesis

with open(os.environ["FORBIDDEN_FILE"], encoding="utf-8") as forbidden_file:
    FORBIDDEN = [line for line in forbidden_file.read().splitlines() if line]
if not FORBIDDEN:
    raise SystemExit("FORBIDDEN_FILE lists nothing: the check would pass by default")


@schemathesis.check
def no_secret_in_answers(ctx, response, case):
    body = response.content.decode("utf-8", "replace")
    headers = "\n".join(f"{k}: {v}" for k, vs in response.headers.items() for v in vs)
    for secret in FORBIDDEN:
        if secret in body or secret in headers:
            raise AssertionError(
                f"the answer to {case.method} {case.path} holds a secret ({secret[:6]}...)"
            )
