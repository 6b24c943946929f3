//! Every Webhook the console can see (from its reflector of the Kubernetes API) with
//! its conditions, endpoint and the last hour's and day's traffic (from PostgreSQL).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Duration, Utc};
use hookline_api::webhook::Webhook;
use kube::ResourceExt;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Counts {
    /// Events received by a handler in the window that have been stored since, plus the
    /// dead letters written in it.
    pub accepted: i64,
    /// Events stored in the window.
    pub stored: i64,
    /// Dead letters written in the window.
    pub dead_lettered: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct WindowCounts {
    pub last_hour: Counts,
    pub last_day: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339.
    pub last_transition_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Condition Ready is True.
    Ready,
    /// Condition Ready is False.
    NotReady,
    /// spec.suspended: its endpoint refuses deliveries.
    Suspended,
    /// Not reconciled yet.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookView {
    pub namespace: String,
    pub name: String,
    /// The id senders use (`POST /webhooks/{webhook_id}`); none until registered.
    pub webhook_id: Option<String>,
    pub customer_id: String,
    pub scheme: String,
    pub suspended: bool,
    pub ready: bool,
    pub status: WebhookState,
    pub endpoint: Option<String>,
    pub conditions: Vec<ConditionView>,
    pub counts: WindowCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

/// Every Webhook, by namespace and name, with its last hour's and day's counts.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The Webhooks", body = WebhookList),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "Kubernetes or PostgreSQL not answering", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = synced_webhooks(&state)?;
    let counts = counts(&state.pool, Utc::now(), None).await?;
    let mut items: Vec<WebhookView> = webhooks
        .iter()
        .map(|webhook| view(webhook, &counts))
        .collect();
    items.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(Json(WebhookList { items }))
}

/// One Webhook.
#[utoipa::path(get, path = "/api/v1/webhooks/{namespace}/{name}", tag = "webhooks",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "The Webhook", body = WebhookView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such Webhook", body = ErrorBody),
        (status = 503, description = "Kubernetes or PostgreSQL not answering", body = ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = synced_webhooks(&state)?
        .into_iter()
        .find(|w| w.namespace().as_deref() == Some(namespace.as_str()) && w.name_any() == name)
        .ok_or_else(|| ApiError::NotFound(format!("no Webhook {namespace}/{name}")))?;
    let webhook_id = webhook.status.as_ref().and_then(|s| s.webhook_id.clone());
    let counts = match webhook_id {
        Some(id) => counts(&state.pool, Utc::now(), Some(&id)).await?,
        None => HashMap::new(),
    };
    Ok(Json(view(&webhook, &counts)))
}

/// The webhook ids the console can see: what events and dead letters are listed for.
pub fn visible_ids(state: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(synced_webhooks(state)?
        .iter()
        .filter_map(|w| w.status.as_ref()?.webhook_id.clone())
        .collect())
}

/// The webhooks a request reads about: the one it names, or all; and on a console that
/// sees one namespace, only that namespace's.
pub struct Scope {
    webhook_id: Option<String>,
    /// The ids visible, when the console sees one namespace.
    visible: Option<Vec<String>>,
}

impl Scope {
    pub fn of(state: &AppState, webhook_id: Option<String>) -> Result<Self, ApiError> {
        let visible = if state.namespaced {
            Some(visible_ids(state)?)
        } else {
            None
        };
        Ok(Self {
            webhook_id,
            visible,
        })
    }

    /// The conditions on `column` (a webhook id) that keep `query` within the scope.
    pub fn push_conditions(&self, query: &mut QueryBuilder<Postgres>, column: &str) {
        if let Some(webhook_id) = &self.webhook_id {
            query
                .push(format_args!(" AND {column} = "))
                .push_bind(webhook_id.clone());
        }
        if let Some(visible) = &self.visible {
            query
                .push(format_args!(" AND {column} = ANY("))
                .push_bind(visible.clone())
                .push(")");
        }
    }
}

fn synced_webhooks(state: &AppState) -> Result<Vec<std::sync::Arc<Webhook>>, ApiError> {
    // The reflector's store is empty until its first list: not "no Webhooks".
    if !state.webhooks_synced() {
        return Err(ApiError::KubernetesNotSynced);
    }
    Ok(state.webhooks.state())
}

fn view(webhook: &Webhook, counts: &HashMap<String, WindowCounts>) -> WebhookView {
    let status = webhook.status.clone().unwrap_or_default();
    let conditions: Vec<ConditionView> = status
        .conditions
        .iter()
        .map(|c| ConditionView {
            kind: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            last_transition_time: Some(c.last_transition_time.0.to_string()),
        })
        .collect();
    let ready_condition = conditions.iter().find(|c| c.kind == "Ready");
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let state = if webhook.spec.suspended {
        WebhookState::Suspended
    } else {
        match ready_condition {
            None => WebhookState::Pending,
            Some(_) if ready => WebhookState::Ready,
            Some(_) => WebhookState::NotReady,
        }
    };
    let scheme = serde_json::to_value(webhook.spec.scheme)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    WebhookView {
        namespace: webhook.namespace().unwrap_or_default(),
        name: webhook.name_any(),
        counts: status
            .webhook_id
            .as_ref()
            .and_then(|id| counts.get(id))
            .copied()
            .unwrap_or_default(),
        webhook_id: status.webhook_id,
        customer_id: webhook.spec.customer_id.clone(),
        scheme,
        suspended: webhook.spec.suspended,
        ready,
        status: state,
        endpoint: status.endpoint,
        conditions,
    }
}

/// The counts of every webhook with traffic in the last day, or of `only` that one.
async fn counts(
    pool: &PgPool,
    now: DateTime<Utc>,
    only: Option<&str>,
) -> Result<HashMap<String, WindowCounts>, ApiError> {
    let hour = now - Duration::hours(1);
    let day = now - Duration::days(1);
    let mut all: HashMap<String, WindowCounts> = HashMap::new();
    // Events stored in the last day were received at most a retry budget earlier;
    // a day and a half covers the longest default backoff.
    let events: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT webhook_id, \
                count(*) FILTER (WHERE received_at >= $1), \
                count(*) FILTER (WHERE received_at >= $2), \
                count(*) FILTER (WHERE stored_at >= $1), \
                count(*) FILTER (WHERE stored_at >= $2) \
         FROM events WHERE received_at >= $3 AND ($4::text IS NULL OR webhook_id = $4) \
         GROUP BY webhook_id",
    )
    .bind(hour)
    .bind(day)
    .bind(day - Duration::hours(12))
    .bind(only)
    .fetch_all(pool)
    .await?;
    for (id, received_hour, received_day, stored_hour, stored_day) in events {
        let entry = all.entry(id).or_default();
        entry.last_hour.accepted += received_hour;
        entry.last_day.accepted += received_day;
        entry.last_hour.stored = stored_hour;
        entry.last_day.stored = stored_day;
    }
    let dead: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT webhook_id, count(*) FILTER (WHERE dead_at >= $1), count(*) \
         FROM dead_letters WHERE dead_at >= $2 AND ($3::text IS NULL OR webhook_id = $3) \
         GROUP BY webhook_id",
    )
    .bind(hour)
    .bind(day)
    .bind(only)
    .fetch_all(pool)
    .await?;
    for (id, dead_hour, dead_day) in dead {
        let entry = all.entry(id).or_default();
        entry.last_hour.dead_lettered = dead_hour;
        entry.last_day.dead_lettered = dead_day;
        entry.last_hour.accepted += dead_hour;
        entry.last_day.accepted += dead_day;
    }
    Ok(all)
}
