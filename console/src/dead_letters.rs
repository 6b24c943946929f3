//! Dead letters: why each died, whether and by whom it was replayed, and the replay
//! itself (one, some, or every one a filter selects), recorded in `replays`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use hookline_store::dead_letter_replay::{self, Selection};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{FromRow, Postgres, QueryBuilder, Row};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ErrorBody};
use crate::events::{Body, redact};
use crate::pagination;
use crate::params::empty_as_none;
use crate::state::AppState;
use crate::webhooks::{Scope, visible_ids};

/// Most dead letters one replay request may name by id.
const MAX_IDS: usize = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterFilter {
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub webhook_id: Option<String>,
    /// Exactly as listed by /api/v1/dead-letters/reasons.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub reason: Option<String>,
    /// Died at or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Died before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Only replayed ones (true) or only the others (false).
    pub replayed: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 200 (50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReplayMark {
    /// None for a replay recorded before replays had ids.
    pub replay_id: Option<i64>,
    pub replayed_at: DateTime<Utc>,
    pub replayed_by: Option<String>,
    /// Whether the event is stored now.
    pub stored: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub webhook_id: String,
    pub message_id: String,
    pub reason: String,
    pub attempts: i32,
    pub dead_at: DateTime<Utc>,
    pub origin: Origin,
    pub replay: Option<ReplayMark>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterDetail {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    /// The Kafka record's headers, signatures removed.
    #[schema(value_type = Object)]
    pub headers: Map<String, Value>,
    pub redacted_headers: Vec<String>,
    pub body: String,
    pub body_base64: String,
    pub body_is_json: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reasons {
    pub items: Vec<String>,
}

#[derive(FromRow)]
struct DeadLetterRow {
    id: i64,
    webhook_id: String,
    message_id: String,
    reason: String,
    attempts: i32,
    dead_at: DateTime<Utc>,
    origin_topic: String,
    origin_partition: i32,
    origin_offset: i64,
    replayed_at: Option<DateTime<Utc>>,
    replay_id: Option<i64>,
    requested_by: Option<String>,
    stored: bool,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(row: DeadLetterRow) -> Self {
        Self {
            id: row.id,
            webhook_id: row.webhook_id,
            message_id: row.message_id,
            reason: row.reason,
            attempts: row.attempts,
            dead_at: row.dead_at,
            origin: Origin {
                topic: row.origin_topic,
                partition: row.origin_partition,
                offset: row.origin_offset,
            },
            replay: row.replayed_at.map(|replayed_at| ReplayMark {
                replay_id: row.replay_id,
                replayed_at,
                replayed_by: row.requested_by,
                stored: row.stored,
            }),
        }
    }
}

const COLUMNS: &str = "SELECT d.id, d.webhook_id, d.message_id, d.reason, d.attempts, d.dead_at, \
     d.origin_topic, d.origin_partition, d.origin_offset, d.replayed_at, d.replay_id, \
     r.requested_by, EXISTS (SELECT 1 FROM events e \
         WHERE e.webhook_id = d.webhook_id AND e.message_id = d.message_id) AS stored";

fn filtered(
    state: &AppState,
    select: &str,
    filter: &DeadLetterFilter,
) -> Result<QueryBuilder<Postgres>, ApiError> {
    let mut query = QueryBuilder::<Postgres>::new(select);
    query.push(" FROM dead_letters d LEFT JOIN replays r ON r.id = d.replay_id WHERE true");
    Scope::of(state, filter.webhook_id.clone())?.push_conditions(&mut query, "d.webhook_id");
    if let Some(reason) = &filter.reason {
        query.push(" AND d.reason = ").push_bind(reason);
    }
    if let Some(since) = filter.since {
        query.push(" AND d.dead_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND d.dead_at < ").push_bind(until);
    }
    match filter.replayed {
        Some(true) => query.push(" AND d.replayed_at IS NOT NULL"),
        Some(false) => query.push(" AND d.replayed_at IS NULL"),
        None => &mut query,
    };
    Ok(query)
}

fn query_of<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|r| ApiError::BadRequest(r.body_text()))
}

/// The sort key of dead letters and replays: a time, then the id.
type TimeKey = (DateTime<Utc>, i64);

/// The page size asked for, and the key the page starts after.
fn page_of(
    page: Result<Query<PageParams>, QueryRejection>,
) -> Result<(i64, Option<TimeKey>), ApiError> {
    let page = query_of(page)?;
    let limit = pagination::limit(page.limit)?;
    let after = page.cursor.as_deref().map(pagination::decode).transpose()?;
    Ok((limit, after))
}

/// Newest first by the `(time, id)` columns, after `after`, one row more than `limit`
/// (so `pagination::page` sees whether more follow).
fn push_newest_first(
    query: &mut QueryBuilder<Postgres>,
    (time, id): (&str, &str),
    after: Option<TimeKey>,
    limit: i64,
) {
    if let Some((after_time, after_id)) = after {
        query
            .push(format_args!(" AND ({time}, {id}) < ("))
            .push_bind(after_time)
            .push(", ")
            .push_bind(after_id)
            .push(")");
    }
    query
        .push(format_args!(" ORDER BY {time} DESC, {id} DESC LIMIT "))
        .push_bind(limit + 1);
}

/// Dead letters, newest first.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "dead-letters",
    params(DeadLetterFilter, PageParams),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 400, description = "A parameter or the cursor is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    filter: Result<Query<DeadLetterFilter>, QueryRejection>,
    page: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let filter = query_of(filter)?;
    let (limit, after) = page_of(page)?;
    let mut query = filtered(&state, COLUMNS, &filter)?;
    push_newest_first(&mut query, ("d.dead_at", "d.id"), after, limit);
    let rows: Vec<DeadLetterRow> = query.build_query_as().fetch_all(&state.pool).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |d| (d.dead_at, d.id));
    Ok(Json(DeadLetterPage {
        items: rows.into_iter().map(DeadLetter::from).collect(),
        next_cursor,
    }))
}

/// How many dead letters a filter selects: what a replay of it would confirm.
#[utoipa::path(get, path = "/api/v1/dead-letters/count", tag = "dead-letters",
    params(DeadLetterFilter),
    responses(
        (status = 200, description = "The count", body = Count),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn count(
    State(state): State<AppState>,
    filter: Result<Query<DeadLetterFilter>, QueryRejection>,
) -> Result<Json<Count>, ApiError> {
    let filter = query_of(filter)?;
    let count = filtered(&state, "SELECT count(*)", &filter)?
        .build_query_scalar()
        .fetch_one(&state.pool)
        .await?;
    Ok(Json(Count { count }))
}

/// The reasons dead letters died for, for a filter's choices.
#[utoipa::path(get, path = "/api/v1/dead-letters/reasons", tag = "dead-letters",
    responses(
        (status = 200, description = "Distinct reasons", body = Reasons),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn reasons(State(state): State<AppState>) -> Result<Json<Reasons>, ApiError> {
    let filter = DeadLetterFilter::default();
    let items = filtered(&state, "SELECT DISTINCT d.reason", &filter)?
        .push(" ORDER BY d.reason LIMIT 200")
        .build_query_scalar()
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(Reasons { items }))
}

/// One dead letter with its headers (signatures removed) and body.
#[utoipa::path(get, path = "/api/v1/dead-letters/{id}", tag = "dead-letters",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The dead letter", body = DeadLetterDetail),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Json<DeadLetterDetail>, ApiError> {
    let Path(id) = id.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let filter = DeadLetterFilter::default();
    let mut query = filtered(&state, &format!("{COLUMNS}, d.headers, d.payload"), &filter)?;
    query.push(" AND d.id = ").push_bind(id);
    let row = query
        .build()
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    let headers: Value = row.try_get("headers")?;
    let payload: Vec<u8> = row.try_get("payload")?;
    let dead_letter = DeadLetter::from(DeadLetterRow::from_row(&row)?);
    let (headers, mut redacted_headers) = redact(Some(headers));
    let headers = redact_nested_request_headers(headers, &mut redacted_headers);
    let body = Body::of(&payload);
    Ok(Json(DeadLetterDetail {
        dead_letter,
        headers,
        redacted_headers,
        body: body.text,
        body_base64: body.base64,
        body_is_json: body.is_json,
    }))
}

/// The handler's `hookline-request-headers` record header is a JSON object of the
/// sender's headers, signatures included: redacted like the others.
fn redact_nested_request_headers(
    mut headers: Map<String, Value>,
    redacted: &mut Vec<String>,
) -> Map<String, Value> {
    let name = hookline_core::record_headers::REQUEST_HEADERS;
    if let Some(Value::String(text)) = headers.get(name) {
        let nested = serde_json::from_str::<Value>(text).ok();
        let (kept, removed) = redact(nested);
        redacted.extend(removed);
        headers.insert(name.to_owned(), Value::Object(kept));
    }
    headers
}

/// A replay: the listed dead letters, or every not yet replayed one a filter selects,
/// when that is still the number confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ReplayRequest {
    ById(ReplayByIds),
    ByFilter(ReplayByFilter),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayByIds {
    /// The dead letters to replay, replayed before or not.
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Vec<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayByFilter {
    pub filter: ReplayFilter,
    /// How many dead letters the person confirmed (the count of the same filter).
    pub expected_count: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayFilter {
    pub webhook_id: Option<String>,
    pub reason: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
pub struct ReplayView {
    pub id: i64,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub selection: Value,
    pub replayed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayPage {
    pub items: Vec<ReplayView>,
    pub next_cursor: Option<String>,
}

/// Replays dead letters to the events topic with a fresh retry budget (operators only).
#[utoipa::path(post, path = "/api/v1/dead-letters/replay", tag = "dead-letters",
    request_body = ReplayRequest,
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, description = "Replayed; the replay as recorded", body = ReplayView),
        (status = 400, description = "Neither ids nor a filter with expected_count", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an operator, or the CSRF token is wrong", body = ErrorBody),
        (status = 404, description = "A listed dead letter does not exist (or is not this console's to see)", body = ErrorBody),
        (status = 409, description = "The filter selects another number than confirmed", body = ErrorBody),
        (status = 503, description = "PostgreSQL or Kafka not answering", body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    request: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<ReplayView>, ApiError> {
    if principal.role != Role::Operator {
        return Err(ApiError::Forbidden("replay dead letters"));
    }
    let Json(request) = request.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let (selection, expected_count) = selection_of(request)?;
    if state.namespaced {
        ensure_visible(&state, &selection).await?;
    }
    ensure_count(&state, &selection, expected_count).await?;
    let replayed = state
        .replayer
        .replay(&state.pool, &selection, &principal.username)
        .await
        .map_err(ApiError::Replay)?;
    state.metrics.replays.inc();
    state.metrics.replayed_dead_letters.inc_by(replayed.count);
    tracing::info!(
        username = %principal.username,
        replay_id = replayed.replay_id,
        count = replayed.count,
        "dead letters replayed"
    );
    let view = replay_by_id(&state, replayed.replay_id).await?;
    Ok(Json(view))
}

/// What a request replays, and the count confirmed for a filter (none for ids).
fn selection_of(request: ReplayRequest) -> Result<(Selection, Option<i64>), ApiError> {
    match request {
        ReplayRequest::ById(ReplayByIds { mut ids }) => {
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(ApiError::BadRequest(format!(
                    "ids must list 1 to {MAX_IDS} dead letters"
                )));
            }
            let selection = Selection {
                ids: Some(ids),
                ..Selection::default()
            };
            Ok((selection, None))
        }
        ReplayRequest::ByFilter(ReplayByFilter {
            filter,
            expected_count,
        }) => {
            let selection = Selection {
                ids: None,
                webhook_id: filter.webhook_id,
                reason: filter.reason,
                since: filter.since,
                until: filter.until,
            };
            Ok((selection, Some(expected_count)))
        }
    }
}

/// A console that sees one namespace replays only that namespace's dead letters.
async fn ensure_visible(state: &AppState, selection: &Selection) -> Result<(), ApiError> {
    let visible = visible_ids(state)?;
    let inside = match (&selection.ids, &selection.webhook_id) {
        (Some(ids), _) => {
            let own: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM dead_letters WHERE id = ANY($1) AND webhook_id = ANY($2)",
            )
            .bind(ids)
            .bind(&visible)
            .fetch_one(&state.pool)
            .await?;
            own == ids.len() as i64
        }
        (None, Some(webhook_id)) => visible.contains(webhook_id),
        (None, None) => false,
    };
    if inside {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "this console sees one namespace: replay only its webhooks' dead letters".into(),
        ))
    }
}

/// By ids every one listed must exist; by filter the count must still be the one
/// confirmed.
async fn ensure_count(
    state: &AppState,
    selection: &Selection,
    expected_count: Option<i64>,
) -> Result<(), ApiError> {
    let now = dead_letter_replay::count(&state.pool, selection).await?;
    match expected_count {
        None => {
            let listed = selection.ids.as_ref().map_or(0, Vec::len) as i64;
            if now < listed {
                return Err(ApiError::NotFound(format!(
                    "{} of the {listed} dead letters listed do not exist",
                    listed - now
                )));
            }
        }
        Some(expected) if expected != now => {
            return Err(ApiError::CountChanged { expected, now });
        }
        Some(_) => {}
    }
    Ok(())
}

async fn replay_by_id(state: &AppState, id: i64) -> Result<ReplayView, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, requested_by, requested_at, finished_at, selection, replayed \
         FROM replays WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&state.pool)
    .await?)
}

/// Every replay, newest first: who asked, when, for what, and how many it replayed.
#[utoipa::path(get, path = "/api/v1/replays", tag = "dead-letters", params(PageParams),
    responses(
        (status = 200, description = "A page of replays", body = ReplayPage),
        (status = 400, description = "A parameter or the cursor is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn replays(
    State(state): State<AppState>,
    page: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<ReplayPage>, ApiError> {
    let (limit, after) = page_of(page)?;
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT id, requested_by, requested_at, finished_at, selection, replayed FROM replays \
         WHERE true",
    );
    push_newest_first(&mut query, ("requested_at", "id"), after, limit);
    let items: Vec<ReplayView> = query.build_query_as().fetch_all(&state.pool).await?;
    let (items, next_cursor) = pagination::page(items, limit, |r| (r.requested_at, r.id));
    Ok(Json(ReplayPage { items, next_cursor }))
}
