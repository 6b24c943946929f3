// Signs webhook requests the way GitHub's and Shopify's official Node.js packages do.
//
// Reads a JSON list of requests on stdin and writes, in the same order, the headers
// each provider's sender puts on them. The signatures come from the providers' own
// packages (pinned in dev/versions.env, installed by dev/npmenv.sh); run it with
// `node --input-type=module` from the directory holding their node_modules.
//
//   {"provider": "github", "secret": "...", "body": "...", "delivery": "<guid>",
//    "event": "push", "hookId": "123"}
//   {"provider": "shopify", "secret": "...", "body": "...", "webhookId": "...",
//    "eventId": "...", "topic": "orders/create", "triggeredAt": "...",
//    "events": false}   (true: the unprefixed header names of Shopify's Events)
import { sign } from "@octokit/webhooks-methods";
import { createSHA256HMAC, HashFormat } from "@shopify/shopify-api/runtime";

async function signed(request) {
  if (request.provider === "github") {
    return {
      "X-Hub-Signature-256": await sign(request.secret, request.body),
      "X-GitHub-Delivery": request.delivery,
      "X-GitHub-Event": request.event,
      "X-GitHub-Hook-ID": request.hookId,
    };
  }
  if (request.provider === "shopify") {
    const hmac = await createSHA256HMAC(request.secret, request.body, HashFormat.Base64);
    if (request.events) {
      return {
        "shopify-hmac-sha256": hmac,
        "shopify-webhook-id": request.webhookId,
        "shopify-topic": request.topic,
        "shopify-triggered-at": request.triggeredAt,
      };
    }
    return {
      "X-Shopify-Hmac-Sha256": hmac,
      "X-Shopify-Webhook-Id": request.webhookId,
      "X-Shopify-Event-Id": request.eventId,
      "X-Shopify-Topic": request.topic,
      "X-Shopify-Triggered-At": request.triggeredAt,
    };
  }
  throw new Error(`unknown provider ${request.provider}`);
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const requests = JSON.parse(input);
const out = [];
for (const request of requests) out.push(await signed(request));
process.stdout.write(JSON.stringify(out));
