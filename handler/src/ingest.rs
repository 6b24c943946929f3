//! `POST /webhooks/{id}`: the checks, in the order the API promises, then the produce.
//!
//! The cheap checks, from the request line and headers alone, come before the body is
//! read, so a slow or forged sender holds nothing it has not earned:
//!
//! 1. the webhook exists and is active (404 unknown or suspended, 410 deleted); an id
//!    is unknown only once this replica has read the registry up to where it stood
//!    when the request came, so a Webhook the operator has registered is never 404.
//!    An id found unknown that way is answered 404 at once for a short interval
//!    (`UnknownIds`), and only a few such reads run at once (the others wait for their
//!    turn up to a second, then 503);
//! 2. the client address (the forwarded chain, see `hookline_core::source`) is inside
//!    the webhook's `allowedSourceRanges` (403);
//! 3. a declared `Content-Length` over the limit (413);
//! 4. a concurrency slot: per source address (429 `source_overloaded`), per webhook
//!    (503 `webhook_overloaded`), then the replica's (503 `overloaded`), all with
//!    Retry-After; held until the answer;
//! 5. the body, within the limit (413) and the read deadline for the whole of it (408);
//! 6. the signature (401) and its timestamp (401), or 503 when the webhook has no
//!    usable secret at all (a retry succeeds once it is fixed);
//! 7. a repeat of a message this replica accepted is acknowledged without producing
//!    (202 `duplicate`); the message id is the provider's (`hookline_core::provider`),
//!    so the provider's re-signed retries are repeats too; for schemes whose id is not
//!    signed, the same body under another id is a repeat too (`repeats`);
//! 8. the webhook's rate limit (429): only verified requests spend its budget, so a
//!    flood of forged requests cannot starve the real sender;
//! 9. produce, and answer 202 only after the broker's ack (503 if it does not come).
//!
//! Slack's signed `url_verification` handshake is answered 200 with its challenge
//! after step 4, and not produced: it is not an event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use hookline_core::event_record::VerifiedEvent;
use hookline_core::ids::{MessageId, WebhookId};
use hookline_core::provider::{self, EventIdentity};
use hookline_core::registry::{ActiveEntry, RegistryEntry};
use hookline_core::signature::{self, Scheme, Verified};
use hookline_runtime::ops::Readiness;
use hookline_runtime::registry_view::{Lookup, RegistryView};
use hookline_runtime::shutdown::Shutdown;
use hookline_runtime::traces::{self, TraceHeaders};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Bytes;
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::Instrument;

use crate::concurrency::{self, KeyedCap};
use crate::metrics::{Metrics, ShedLabels};
use crate::produce::{EventProducer, ProduceError};
use crate::rate_limit::SharedRateLimiter;
use crate::rejection::Rejection;
use crate::repeats::{self, InFlightGuard, MessageKey, Seen, SharedSeenMessages};
use crate::unknown_ids::UnknownIds;
use hookline_core::source::{self, ForwardingHeader, TrustedProxies};

/// How long a request for an unknown id waits for the registry to catch up.
const REGISTRY_CATCH_UP: Duration = Duration::from_secs(1);
/// Requests for unknown ids reading the registry's end at once; more wait up to
/// `REGISTRY_CATCH_UP` for their turn, then get 503 and retry.
pub const CONCURRENT_CATCH_UPS: usize = 16;

/// The longest `traceparent` passed on (the W3C format is 55 characters).
const MAX_TRACEPARENT_LEN: usize = 256;
/// The longest `tracestate` passed on (W3C: 32 members, 512 characters are enough).
const MAX_TRACESTATE_LEN: usize = 512;

/// The limits the endpoint enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub body_read_timeout: Duration,
    pub timestamp_tolerance: Duration,
    pub trusted_proxies: TrustedProxies,
    pub forwarding_header: ForwardingHeader,
}

/// Everything a webhook request needs, shared by all of them.
pub struct Ingest {
    pub registry: RegistryView,
    pub readiness: Readiness,
    pub producer: EventProducer,
    /// Message ids accepted inside the timestamp tolerance (`repeats`).
    pub seen_messages: SharedSeenMessages,
    /// Bodies accepted for schemes whose delivery id is not signed (`repeats`).
    pub seen_bodies: SharedSeenMessages,
    pub rate_limiter: Arc<SharedRateLimiter>,
    pub metrics: Metrics,
    pub limits: Limits,
    /// One permit per request being handled; none left means shed load.
    pub permits: Semaphore,
    /// Requests in progress per webhook id and per client address.
    pub webhook_caps: KeyedCap<String>,
    pub source_caps: KeyedCap<std::net::IpAddr>,
    /// Ids recently found unknown with the registry read to its end.
    pub unknown_ids: UnknownIds,
    /// One permit per request for an unknown id reading the registry's end.
    pub catch_ups: Semaphore,
    /// Triggered when the producer fails for good, so the process exits and is
    /// restarted instead of refusing every event while looking healthy.
    pub shutdown: Shutdown,
    /// Why the producer failed for good, if it did.
    pub producer_failure: std::sync::OnceLock<String>,
}

pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/webhooks/{id}", post(receive))
        .with_state(ingest)
}

/// How an accepted request was accepted.
#[derive(Debug, PartialEq, Eq)]
enum Accepted {
    Stored {
        message_id: MessageId,
    },
    Repeat {
        message_id: MessageId,
    },
    /// Slack's signed `url_verification` handshake, answered with its challenge.
    SlackChallenge(String),
}

/// A verified request on its way to Kafka, borrowed from the request.
struct Delivery<'r> {
    webhook_id: &'r WebhookId,
    scheme: Scheme,
    headers: &'r HeaderMap,
    body: &'r [u8],
    received_at: DateTime<Utc>,
    identity: &'r EventIdentity,
    message_id: &'r MessageId,
}

async fn receive(
    State(ingest): State<Arc<Ingest>>,
    Path(webhook_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = traces::span_if_enabled(|| {
        tracing::info_span!(
            "handler request",
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = "POST",
            http.route = "/webhooks/{id}",
            http.response.status_code = tracing::field::Empty,
            webhook_id = %webhook_id,
            trace_id = tracing::field::Empty,
        )
    });
    if !span.is_disabled() {
        traces::continue_trace(&span, &sender_trace(&headers).to_headers());
        traces::record_trace_id(&span);
    }
    let response = answer(&ingest, &webhook_id, peer, &headers, body)
        .instrument(span.clone())
        .await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}

async fn answer(
    ingest: &Ingest,
    webhook_id: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = match ingest.handle(webhook_id, peer, headers, body).await {
        Ok(Accepted::Stored { message_id }) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "accepted", "messageId": message_id })),
        )
            .into_response(),
        Ok(Accepted::Repeat { message_id }) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "duplicate", "messageId": message_id })),
        )
            .into_response(),
        Ok(Accepted::SlackChallenge(challenge)) => (
            StatusCode::OK,
            axum::Json(json!({ "challenge": challenge })),
        )
            .into_response(),
        Err(rejection) => {
            ingest.record_rejection(webhook_id, peer, &rejection);
            rejection.into_response()
        }
    };
    ingest
        .metrics
        .count_answer(&ingest.registry, webhook_id, response.status().as_u16());
    ingest
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The sender's W3C trace context, if it sent one of a sane length.
#[derive(Debug, Clone, Copy)]
struct SenderTrace<'h> {
    traceparent: Option<&'h [u8]>,
    tracestate: Option<&'h [u8]>,
}

impl SenderTrace<'_> {
    fn to_headers(self) -> TraceHeaders {
        let text = |value: Option<&[u8]>| {
            value
                .and_then(|value| std::str::from_utf8(value).ok())
                .map(str::to_owned)
        };
        TraceHeaders {
            traceparent: text(self.traceparent),
            tracestate: text(self.tracestate),
        }
    }
}

fn sender_trace(headers: &HeaderMap) -> SenderTrace<'_> {
    let bounded = |name: &str, limit: usize| {
        headers
            .get(name)
            .map(|value| value.as_bytes())
            .filter(|value| value.len() <= limit)
    };
    SenderTrace {
        traceparent: bounded("traceparent", MAX_TRACEPARENT_LEN),
        tracestate: bounded("tracestate", MAX_TRACESTATE_LEN),
    }
}

/// A request's slots under every concurrency cap, given back when it is answered.
struct Slots<'a> {
    _global: InFlight<'a>,
    _webhook: concurrency::KeyedSlot<String>,
    _source: concurrency::KeyedSlot<std::net::IpAddr>,
}

/// A held concurrency permit, counted in the in-flight gauge until dropped.
struct InFlight<'a> {
    _permit: SemaphorePermit<'a>,
    ingest: &'a Ingest,
}

impl<'a> InFlight<'a> {
    fn enter(ingest: &'a Ingest) -> Option<Self> {
        let permit = ingest.permits.try_acquire().ok()?;
        ingest.metrics.in_flight.inc();
        Some(Self {
            _permit: permit,
            ingest,
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.ingest.metrics.in_flight.dec();
    }
}

impl Ingest {
    async fn handle(
        &self,
        webhook_id: &str,
        peer: SocketAddr,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Accepted, Rejection> {
        let entry = self.active_entry(webhook_id).await?;
        let _slots = self.admit(webhook_id, &entry, peer, headers)?;
        let body = self.read_body(body).await?;
        let received_at = Utc::now();
        let verified = verify(&entry, headers, &body, received_at, &self.limits)?;
        if entry.scheme == Scheme::Slack
            && let Some(challenge) = provider::slack_challenge(&body)
        {
            return Ok(Accepted::SlackChallenge(challenge));
        }

        let identity = provider::identify(entry.scheme, headers, &body);
        let signature_header = headers
            .get(repeats::signature_header_name(entry.scheme))
            .map_or(&b""[..], |value| value.as_bytes());
        let key = MessageKey::of(
            webhook_id,
            identity.message_id.as_deref(),
            signature_header,
            &body,
        );
        let message_id = identity
            .message_id
            .clone()
            .unwrap_or_else(|| key.message_id());
        let in_flight = self.begin_unless_repeat(
            key,
            // Nothing signed dates the request, and its id is not signed either.
            verified
                .timestamp
                .is_none()
                .then(|| MessageKey::of_body(webhook_id, &body)),
        );
        let in_flight = match in_flight {
            Ok(guards) => guards,
            Err(Seen::Accepted) => {
                self.metrics.repeated_messages.inc();
                return Ok(Accepted::Repeat { message_id });
            }
            Err(_) => return Err(Rejection::DuplicateInFlight),
        };
        self.rate_limiter
            .try_acquire(webhook_id, entry.rate_limit)
            .map_err(|retry_after| Rejection::RateLimited { retry_after })?;
        self.produce(&Delivery {
            webhook_id: &entry.webhook_id,
            scheme: entry.scheme,
            headers,
            body: &body,
            received_at,
            identity: &identity,
            message_id: &message_id,
        })
        .await?;
        for guard in in_flight {
            guard.accepted();
        }
        Ok(Accepted::Stored { message_id })
    }

    /// The checks the request line and headers allow (steps 2 to 4), so that nothing
    /// is read for a request refused by them: the client's source, the declared body
    /// size, then a slot under every cap, held until the request is answered.
    fn admit(
        &self,
        webhook_id: &str,
        entry: &RegistryEntry,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Slots<'_>, Rejection> {
        let client = self.client(peer, headers);
        if !source::allowed(&entry.allowed_source_ranges, client) {
            return Err(Rejection::SourceNotAllowed);
        }
        self.refuse_declared_oversize(headers)?;
        self.enter(webhook_id, client)
    }

    /// Produces a verified, rate-limited request, returning once the broker has it.
    async fn produce(&self, delivery: &Delivery<'_>) -> Result<(), Rejection> {
        let request_headers = kept_headers_json(delivery.scheme, delivery.headers);
        let produce_span = traces::span_if_enabled(|| {
            tracing::info_span!(
                "kafka produce",
                otel.kind = "producer",
                otel.status_code = tracing::field::Empty,
                messaging.system = "kafka",
                messaging.operation.type = "send",
                messaging.destination.name = self.producer.topic(),
                messaging.message.id = %delivery.message_id,
            )
        });
        // The consumer continues from the produce span; with traces off, the sender's
        // context goes on unchanged for whoever traces downstream.
        let produce_trace = traces::headers_of(&produce_span);
        let trace = match &produce_trace {
            Some(carried) => SenderTrace {
                traceparent: carried.traceparent.as_deref().map(str::as_bytes),
                tracestate: carried.tracestate.as_deref().map(str::as_bytes),
            },
            None => sender_trace(delivery.headers),
        };
        let event = VerifiedEvent {
            webhook_id: delivery.webhook_id,
            message_id: delivery.message_id,
            received_at: delivery.received_at,
            scheme: delivery.scheme,
            content_type: delivery
                .headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            traceparent: trace.traceparent,
            tracestate: trace.tracestate,
            identity: delivery.identity,
            request_headers: request_headers.as_deref(),
            body: delivery.body,
        };
        let producing = Instant::now();
        let produced = self
            .producer
            .produce(&event)
            .instrument(produce_span.clone())
            .await;
        self.metrics
            .produce_seconds
            .observe(producing.elapsed().as_secs_f64());
        if produced.is_err() {
            produce_span.record("otel.status_code", "ERROR");
        }
        produced.map_err(|err| self.produce_failed(err))
    }

    /// The answer to a failed produce. A producer failed for good shuts the service
    /// down: restarted, it can store events again.
    fn produce_failed(&self, err: ProduceError) -> Rejection {
        match err {
            ProduceError::Fatal(reason) => {
                tracing::error!(%reason, "the Kafka producer failed for good; shutting down");
                let rejection = Rejection::KafkaUnavailable {
                    detail: format!("the producer failed: {reason}"),
                };
                let _ = self.producer_failure.set(reason);
                self.shutdown.trigger();
                rejection
            }
            err => Rejection::KafkaUnavailable {
                detail: err.to_string(),
            },
        }
    }

    /// The client behind `peer`, from the forwarding header the trusted proxies write.
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> source::Client {
        let header = self.limits.forwarding_header;
        let chain = if self.limits.trusted_proxies.is_empty() {
            Vec::new()
        } else {
            header.chain(headers.get_all(header.name()).iter().map(|v| v.as_bytes()))
        };
        source::client_address(peer.ip(), &chain, &self.limits.trusted_proxies)
    }

    /// A slot under the per-source, per-webhook and global caps, in that order, or the
    /// rejection of the first that is full. Held until the request is answered.
    fn enter(&self, webhook_id: &str, client: source::Client) -> Result<Slots<'_>, Rejection> {
        let shed = |cap: &'static str, rejection: Rejection| {
            self.metrics.shed.get_or_create(&ShedLabels { cap }).inc();
            rejection
        };
        let source = self
            .source_caps
            .enter(concurrency::source_key(client.accountable()))
            .ok_or_else(|| shed("source", Rejection::SourceOverloaded))?;
        let webhook = self
            .webhook_caps
            .enter(webhook_id.to_owned())
            .ok_or_else(|| shed("webhook", Rejection::WebhookOverloaded))?;
        let global = InFlight::enter(self).ok_or_else(|| shed("global", Rejection::Overloaded))?;
        Ok(Slots {
            _global: global,
            _webhook: webhook,
            _source: source,
        })
    }

    /// Marks `key` (and `body_key`, for schemes whose id is not signed) in flight, or
    /// says how either was seen: accepted before, or being produced now.
    fn begin_unless_repeat(
        &self,
        key: MessageKey,
        body_key: Option<MessageKey>,
    ) -> Result<Vec<InFlightGuard>, Seen> {
        let by_id = self.seen_messages.begin(key)?;
        match body_key.map(|body_key| self.seen_bodies.begin(body_key)) {
            None => Ok(vec![by_id]),
            Some(Ok(by_body)) => Ok(vec![by_id, by_body]),
            // The id's guard drops here: that id was not stored.
            Some(Err(seen)) => Err(seen),
        }
    }

    async fn active_entry(&self, webhook_id: &str) -> Result<Arc<ActiveEntry>, Rejection> {
        let mut lookup = self.registry.lookup(webhook_id);
        if lookup == Lookup::Unknown
            && !self
                .readiness
                .unmet()
                .contains_key(hookline_runtime::registry_view::READINESS_CONDITION)
        {
            if self.unknown_ids.recently_checked(webhook_id) {
                return Err(Rejection::UnknownWebhook);
            }
            // A few reads at once; the others wait their turn (holding no request slot),
            // and find the id remembered if one of those reads was for it.
            let _catching_up = tokio::time::timeout(REGISTRY_CATCH_UP, self.catch_ups.acquire())
                .await
                .map_err(|_| Rejection::RegistryLoading)?
                .map_err(|_| Rejection::RegistryLoading)?;
            if self.unknown_ids.recently_checked(webhook_id) {
                return Err(Rejection::UnknownWebhook);
            }
            // Published a moment ago, perhaps: an id is unknown only once this replica
            // has read every registry record the broker had when the request came.
            self.metrics.registry_catch_ups.inc();
            lookup = self
                .registry
                .lookup_current(webhook_id, REGISTRY_CATCH_UP)
                .await
                .map_err(|err| {
                    tracing::warn!(%err, "cannot tell whether the registry is current");
                    Rejection::RegistryLoading
                })?;
            if lookup == Lookup::Unknown {
                self.unknown_ids.checked(webhook_id);
            }
        }
        match lookup {
            Lookup::Active(entry) if entry.suspended => Err(Rejection::SuspendedWebhook),
            Lookup::Active(entry) => Ok(entry),
            Lookup::Deleted => Err(Rejection::DeletedWebhook),
            Lookup::Unknown
                if self
                    .readiness
                    .unmet()
                    .contains_key(hookline_runtime::registry_view::READINESS_CONDITION) =>
            {
                Err(Rejection::RegistryLoading)
            }
            Lookup::Unknown => Err(Rejection::UnknownWebhook),
        }
    }

    /// 413 for a body whose `Content-Length` is over the limit, before reading it.
    fn refuse_declared_oversize(&self, headers: &HeaderMap) -> Result<(), Rejection> {
        let limit = self.limits.max_body_bytes;
        let declared = header_text(headers, header::CONTENT_LENGTH.as_str())
            .and_then(|length| length.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Err(Rejection::BodyTooLarge { limit });
        }
        Ok(())
    }

    /// Reads the body, refusing it once it is over the limit, or once the read
    /// deadline (for the whole body, however the bytes trickle in) has passed.
    async fn read_body(&self, body: Body) -> Result<Bytes, Rejection> {
        let limit = self.limits.max_body_bytes;
        let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
        match tokio::time::timeout(self.limits.body_read_timeout, limited.collect()).await {
            Err(_) => Err(Rejection::BodyTimeout(self.limits.body_read_timeout)),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                Err(Rejection::BodyTooLarge { limit })
            }
            Ok(Err(err)) => Err(Rejection::BodyRead {
                detail: err.to_string(),
            }),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }

    fn record_rejection(&self, webhook_id: &str, peer: SocketAddr, rejection: &Rejection) {
        let reason = match rejection {
            Rejection::BadSignature(err) | Rejection::StaleTimestamp(err) => Some(err.reason()),
            Rejection::SecretUnusable => Some(rejection.code()),
            _ => None,
        };
        if let Some(reason) = reason {
            self.metrics
                .count_verification_failure(&self.registry, webhook_id, reason);
        }
        let detail = rejection.detail().unwrap_or_default();
        match rejection {
            Rejection::KafkaUnavailable { .. } | Rejection::SecretUnusable => {
                tracing::warn!(webhook_id, %rejection, detail, "event not stored");
            }
            _ => {
                tracing::debug!(webhook_id, %peer, code = rejection.code(), %rejection, detail, "request refused")
            }
        }
    }
}

/// Verifies the request with the webhook's secrets still live at `now` (parsed when
/// the entry was applied; unusable ones were logged then).
fn verify(
    entry: &ActiveEntry,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Verified, Rejection> {
    let secrets = entry.signing_secrets(now);
    if secrets.is_empty() {
        return Err(Rejection::SecretUnusable);
    }
    signature::verify(
        entry.scheme,
        headers,
        body,
        &secrets,
        now,
        limits.timestamp_tolerance,
    )
    .map_err(Rejection::from_verify)
}

/// The request's headers that [`provider::kept_headers`] names for `scheme`, as a
/// JSON object (lowercase name to value; values that are not text are left out).
fn kept_headers_json(scheme: Scheme, headers: &HeaderMap) -> Option<Vec<u8>> {
    let kept: serde_json::Map<String, serde_json::Value> = provider::kept_headers(scheme)
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), header_text(headers, name)?.into())))
        .collect();
    if kept.is_empty() {
        return None;
    }
    serde_json::to_vec(&kept).ok()
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use hookline_core::registry::RegistrySecret;
    use hookline_core::signature::{Scheme, sign};
    use hookline_testkit::fixtures::{self, registry_entry};

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1024,
            body_read_timeout: Duration::from_secs(1),
            timestamp_tolerance: signature::DEFAULT_TOLERANCE,
            trusted_proxies: TrustedProxies::default(),
            forwarding_header: ForwardingHeader::default(),
        }
    }

    fn signed(scheme: Scheme, secret: &str, now: DateTime<Utc>, body: &[u8]) -> HeaderMap {
        let key = signature::SigningSecret::parse(scheme, secret).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in sign(scheme, &[key], "msg_1", now, body).unwrap() {
            headers.insert(name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn an_expired_secret_no_longer_verifies() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let new = fixtures::SECRET;
        let expiry = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let entry = ActiveEntry::new(RegistryEntry {
            secrets: vec![
                fixtures::secret(new),
                RegistrySecret {
                    expires_at: Some(expiry),
                    ..fixtures::secret(old)
                },
            ],
            ..registry_entry("wh-1")
        });
        let before = expiry - chrono::Duration::seconds(1);
        let after = expiry + chrono::Duration::seconds(1);
        let body = b"{}";
        let standard = |secret, at| signed(Scheme::Standard, secret, at, body);
        assert_eq!(
            verify(&entry, &standard(old, before), body, before, &limits())
                .unwrap()
                .secret_index,
            1
        );
        let refused = verify(&entry, &standard(old, after), body, after, &limits());
        assert!(matches!(refused, Err(Rejection::BadSignature(_))));
        assert!(verify(&entry, &standard(new, after), body, after, &limits()).is_ok());
    }

    #[test]
    fn a_stale_timestamp_is_told_apart_from_a_bad_signature() {
        let entry = ActiveEntry::new(registry_entry("wh-1"));
        let now = Utc::now();
        let old = now - chrono::Duration::seconds(301);
        let standard = |at| signed(Scheme::Standard, fixtures::SECRET, at, b"x");
        let stale = verify(&entry, &standard(old), b"x", now, &limits());
        assert!(matches!(stale, Err(Rejection::StaleTimestamp(_))));
        let tampered = verify(&entry, &standard(now), b"y", now, &limits());
        assert!(matches!(tampered, Err(Rejection::BadSignature(_))));
    }

    #[test]
    fn github_shopify_and_legacy_hex_verify_without_a_signed_timestamp() {
        // Such requests are also keyed by body for repeats (`repeats`).
        let now = Utc::now();
        let body = b"{}";
        for (scheme, secret, dated) in [
            (Scheme::Standard, fixtures::SECRET, true),
            (Scheme::Stripe, "whsec_stripe-test", true),
            (Scheme::Slack, "slack-signing-secret", true),
            (Scheme::Github, "github-secret", false),
            (Scheme::Shopify, "shopify-secret", false),
            (Scheme::LegacyHex, "legacy-secret", false),
        ] {
            let webhook = ActiveEntry::new(RegistryEntry {
                scheme,
                secrets: vec![fixtures::secret(secret)],
                ..registry_entry("wh-1")
            });
            let headers = signed(scheme, secret, now, body);
            let verified = verify(&webhook, &headers, body, now, &limits()).unwrap();
            assert_eq!(verified.timestamp.is_some(), dated, "{scheme:?}");
        }
    }
}
