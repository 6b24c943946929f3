"""Signs webhook requests the way each provider's official Python library does.

Reads a JSON list of requests to sign on stdin and writes, in the same order, the
headers each provider's sender puts on it. Every signature comes from the provider's
own package (pinned in dev/versions.env, installed by dev/pyenv.sh):

    {"provider": "standard" | "svix", "secret": "whsec_...", "id": "msg_...",
     "timestamp": 1700000000, "body": "..."}
    {"provider": "stripe", "secrets": ["whsec_new", "whsec_old"], "timestamp": ..., "body": ...}
        (one v1 signature per secret, as Stripe signs while a secret is rolled)
    {"provider": "slack", "secret": "...", "timestamp": ..., "body": ...,
     "retry": 1}   (optional: Slack's retry headers)
"""

import json
import sys
from datetime import datetime, timezone

import standardwebhooks
import stripe
import svix
from slack_sdk.signature import SignatureVerifier


def utc(timestamp):
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def sign(request):
    provider = request["provider"]
    body = request["body"]
    timestamp = request["timestamp"]
    if provider == "standard":
        signature = standardwebhooks.Webhook(request["secret"]).sign(
            request["id"], utc(timestamp), body
        )
        return {
            "webhook-id": request["id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
    if provider == "svix":
        signature = svix.Webhook(request["secret"]).sign(request["id"], utc(timestamp), body)
        return {
            "svix-id": request["id"],
            "svix-timestamp": str(timestamp),
            "svix-signature": signature,
        }
    if provider == "stripe":
        first, *others = request["secrets"]
        header = stripe.WebhookSignature.generate_signature_header(
            body, first, timestamp=timestamp
        )
        for secret in others:
            header += ",v1=" + stripe.WebhookSignature._compute_signature(
                f"{timestamp}.{body}", secret
            )
        return {"Stripe-Signature": header}
    if provider == "slack":
        verifier = SignatureVerifier(request["secret"])
        headers = {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": verifier.generate_signature(
                timestamp=str(timestamp), body=body
            ),
        }
        if request.get("retry"):
            headers["X-Slack-Retry-Num"] = str(request["retry"])
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers
    raise ValueError(f"unknown provider {provider!r}")


json.dump([sign(request) for request in json.load(sys.stdin)], sys.stdout)
