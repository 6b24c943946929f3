//! Stored events: filtered lists newest first, and one event as it was received.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hookline_core::provider::is_signature_header;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::params::empty_as_none;
use crate::state::AppState;
use crate::webhooks::{Scope, visible_ids};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub webhook_id: Option<String>,
    /// The provider's event type, e.g. `invoice.paid`.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub event_type: Option<String>,
    /// The provider's event id, e.g. Stripe's `evt_...` or GitHub's delivery id.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub event_id: Option<String>,
    /// Received at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Received before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Text the body contains, exactly as received (case-sensitive; any bytes).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub q: Option<String>,
    /// Page size, 1 to 200 (50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
pub struct EventSummary {
    pub webhook_id: String,
    pub message_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    pub stored_at: DateTime<Utc>,
    pub attempts: i32,
    pub content_type: Option<String>,
    pub size_bytes: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventSummary>,
    pub next_cursor: Option<String>,
}

/// One step of the way an event took to its row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PathStep {
    /// `received`, `retried`, `dead_lettered`, `replayed` or `stored`.
    pub step: &'static str,
    pub at: Option<DateTime<Utc>>,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub summary: EventSummary,
    pub source_timestamp: Option<DateTime<Utc>>,
    /// The headers the handler kept, signatures removed.
    #[schema(value_type = Object)]
    pub request_headers: Map<String, Value>,
    /// Names of the headers removed because they carry a signature or a credential.
    pub redacted_headers: Vec<String>,
    /// The body as text (invalid UTF-8 replaced).
    pub body: String,
    /// The body's exact bytes.
    pub body_base64: String,
    pub body_is_json: bool,
    pub path: Vec<PathStep>,
}

pub(crate) const SUMMARY_COLUMNS: &str = "webhook_id, message_id, event_id, event_type, received_at, \
     stored_at, attempts, content_type, octet_length(body) AS size_bytes";

/// The sort key of a page: newest first, then by webhook and message id.
type EventKey = (DateTime<Utc>, String, String);

/// Stored events, newest first, filtered by every given parameter.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventFilter),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A parameter or the cursor is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 422, description = "The search took too long: narrow it", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    filter: Result<Query<EventFilter>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(filter) = filter.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let limit = pagination::limit(filter.limit)?;
    let after: Option<EventKey> = filter
        .cursor
        .as_deref()
        .map(pagination::decode)
        .transpose()?;
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE true"));
    Scope::of(&state, filter.webhook_id.clone())?.push_conditions(&mut query, "webhook_id");
    if let Some(event_type) = &filter.event_type {
        query
            .push(" AND event_type = ")
            .push_bind(event_type.clone());
    }
    if let Some(event_id) = &filter.event_id {
        query.push(" AND event_id = ").push_bind(event_id.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND received_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND received_at < ").push_bind(until);
    }
    if let Some(text) = filter.q.as_deref().filter(|q| !q.is_empty()) {
        query
            .push(" AND position(")
            .push_bind(text.as_bytes().to_vec())
            .push(" in body) > 0");
    }
    // With one webhook the key's webhook part is fixed, and the per-webhook index
    // (webhook_id, received_at, message_id) serves the order.
    let one_webhook = filter.webhook_id.is_some();
    if let Some((received_at, webhook_id, message_id)) = after {
        if one_webhook {
            query
                .push(" AND (received_at, message_id) < (")
                .push_bind(received_at)
                .push(", ")
                .push_bind(message_id)
                .push(")");
        } else {
            query
                .push(" AND (received_at, webhook_id, message_id) < (")
                .push_bind(received_at)
                .push(", ")
                .push_bind(webhook_id)
                .push(", ")
                .push_bind(message_id)
                .push(")");
        }
    }
    query.push(if one_webhook {
        " ORDER BY received_at DESC, message_id DESC LIMIT "
    } else {
        " ORDER BY received_at DESC, webhook_id DESC, message_id DESC LIMIT "
    });
    query.push_bind(limit + 1);
    let rows: Vec<EventSummary> = query.build_query_as().fetch_all(&state.pool).await?;
    let (items, next_cursor) = pagination::page(rows, limit, |e| {
        (e.received_at, e.webhook_id.clone(), e.message_id.clone())
    });
    Ok(Json(EventPage { items, next_cursor }))
}

#[derive(FromRow)]
struct EventRow {
    #[sqlx(flatten)]
    summary: EventSummary,
    source_timestamp: Option<DateTime<Utc>>,
    request_headers: Option<Value>,
    body: Vec<u8>,
}

#[derive(FromRow)]
struct DeadLetterStep {
    id: i64,
    reason: String,
    attempts: i32,
    dead_at: DateTime<Utc>,
    replayed_at: Option<DateTime<Utc>>,
    replay_id: Option<i64>,
    requested_by: Option<String>,
}

/// One event: its headers (without signatures) and body exactly as received, and its path.
#[utoipa::path(get, path = "/api/v1/events/{webhook_id}/{message_id}", tag = "events",
    params(("webhook_id" = String, Path), ("message_id" = String, Path)),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    Path((webhook_id, message_id)): Path<(String, String)>,
) -> Result<Json<EventDetail>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no event {message_id} of webhook {webhook_id}"));
    if state.namespaced && !visible_ids(&state)?.contains(&webhook_id) {
        return Err(not_found());
    }
    let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, source_timestamp, request_headers, body FROM events \
         WHERE webhook_id = $1 AND message_id = $2"
    )))
    .bind(&webhook_id)
    .bind(&message_id)
    .fetch_optional(&state.pool)
    .await?;
    let row = row.ok_or_else(not_found)?;
    let dead_letters: Vec<DeadLetterStep> = sqlx::query_as(
        "SELECT d.id, d.reason, d.attempts, d.dead_at, d.replayed_at, d.replay_id, r.requested_by \
         FROM dead_letters d LEFT JOIN replays r ON r.id = d.replay_id \
         WHERE d.webhook_id = $1 AND d.message_id = $2 ORDER BY d.dead_at",
    )
    .bind(&webhook_id)
    .bind(&message_id)
    .fetch_all(&state.pool)
    .await?;
    let (request_headers, redacted_headers) = redact(row.request_headers);
    let body = Body::of(&row.body);
    let path = path(&row.summary, &dead_letters);
    Ok(Json(EventDetail {
        summary: row.summary,
        source_timestamp: row.source_timestamp,
        request_headers,
        redacted_headers,
        body: body.text,
        body_base64: body.base64,
        body_is_json: body.is_json,
        path,
    }))
}

/// A body as the pages show it.
pub(crate) struct Body {
    pub text: String,
    pub base64: String,
    pub is_json: bool,
}

impl Body {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            text: String::from_utf8_lossy(bytes).into_owned(),
            base64: STANDARD.encode(bytes),
            is_json: serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok(),
        }
    }
}

/// Header names that carry credentials whatever the provider: never shown.
fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    is_signature_header(&name)
        || [
            "signature",
            "hmac",
            "authorization",
            "cookie",
            "secret",
            "token",
            "api-key",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// The headers without the ones that carry signatures or credentials, and the names removed.
pub(crate) fn redact(headers: Option<Value>) -> (Map<String, Value>, Vec<String>) {
    let Some(Value::Object(map)) = headers else {
        return (Map::new(), Vec::new());
    };
    let mut kept = Map::new();
    let mut redacted = Vec::new();
    for (name, value) in map {
        if is_secret_header(&name) {
            redacted.push(name);
        } else {
            kept.insert(name, value);
        }
    }
    (kept, redacted)
}

fn path(event: &EventSummary, dead_letters: &[DeadLetterStep]) -> Vec<PathStep> {
    let mut steps = vec![PathStep {
        step: "received",
        at: Some(event.received_at),
        detail: "verified and accepted by a handler".into(),
    }];
    for dead in dead_letters {
        steps.push(PathStep {
            step: "dead_lettered",
            at: Some(dead.dead_at),
            detail: format!(
                "after {} attempts: {} (dead letter {})",
                dead.attempts, dead.reason, dead.id
            ),
        });
        if let Some(replayed_at) = dead.replayed_at {
            steps.push(PathStep {
                step: "replayed",
                at: Some(replayed_at),
                detail: match (&dead.requested_by, dead.replay_id) {
                    (Some(by), Some(id)) => format!("by {by} (replay {id})"),
                    _ => "by a replay recorded before replays had ids".into(),
                },
            });
        }
    }
    if event.attempts > 1 {
        steps.push(PathStep {
            step: "retried",
            at: None,
            detail: format!(
                "{} failed attempts went through the retry tiers",
                event.attempts - 1
            ),
        });
    }
    steps.push(PathStep {
        step: "stored",
        at: Some(event.stored_at),
        detail: format!("stored on attempt {}", event.attempts),
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures_and_credentials_never_leave_the_console() {
        let (kept, redacted) = redact(Some(json!({
            "webhook-id": "msg_1",
            "webhook-signature": "v1,abc",
            "Stripe-Signature": "t=1,v1=abc",
            "x-hub-signature-256": "sha256=abc",
            "x-shopify-hmac-sha256": "abc",
            "authorization": "Bearer x",
            "x-github-event": "push",
        })));
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            ["webhook-id", "x-github-event"]
        );
        assert_eq!(redacted.len(), 5);
        assert_eq!(redact(Some(json!("not an object"))).0.len(), 0);
    }

    #[test]
    fn a_body_is_json_only_when_it_parses() {
        assert!(Body::of(br#"{"a": 1}"#).is_json);
        assert!(!Body::of(b"token=x&text=hi").is_json);
        let binary = Body::of(&[0xff, 0x00]);
        assert_eq!(binary.base64, "/wA=");
        assert!(!binary.is_json);
    }
}
