//! Traffic over time for the charts: accepted, stored and dead-lettered per bucket.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::params::empty_as_none;
use crate::state::AppState;
use crate::webhooks::Scope;

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize, ToSchema)]
pub enum Window {
    /// The last hour in one-minute buckets.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last day in fifteen-minute buckets.
    #[serde(rename = "24h")]
    Day,
}

impl Window {
    fn span_and_bucket(self) -> (Duration, Duration) {
        match self {
            Self::Hour => (Duration::hours(1), Duration::minutes(1)),
            Self::Day => (Duration::days(1), Duration::minutes(15)),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// One webhook; all when absent.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub webhook_id: Option<String>,
    /// `1h` (default) or `24h`.
    pub window: Option<Window>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub accepted: i64,
    pub stored: i64,
    pub dead_lettered: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    pub window: Window,
    pub bucket_seconds: i64,
    /// Oldest first; every bucket of the window, zeros too.
    pub points: Vec<Point>,
}

/// Accepted, stored and dead-lettered counts per bucket over the last hour or day.
#[utoipa::path(get, path = "/api/v1/stats", tag = "webhooks", params(StatsParams),
    responses(
        (status = 200, description = "The series", body = Series),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "PostgreSQL not answering", body = ErrorBody)))]
pub async fn series(
    State(state): State<AppState>,
    params: Result<Query<StatsParams>, QueryRejection>,
) -> Result<Json<Series>, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let window = params.window.unwrap_or_default();
    let (span, bucket) = window.span_and_bucket();
    let end = Utc::now()
        .duration_trunc(bucket)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?
        + bucket;
    let start = end - span;
    let mut points: BTreeMap<DateTime<Utc>, Point> = BTreeMap::new();
    let mut at = start;
    while at < end {
        points.insert(
            at,
            Point {
                at,
                ..Point::default()
            },
        );
        at += bucket;
    }
    let scope = Scope::of(&state, params.webhook_id)?;
    for (table, column, field) in [
        ("events", "received_at", Field::Accepted),
        ("events", "stored_at", Field::Stored),
        ("dead_letters", "dead_at", Field::DeadLettered),
    ] {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT date_bin(make_interval(secs => {secs}), {column}, 'epoch'::timestamptz) AS bucket, \
             count(*) FROM {table} WHERE {column} >= ",
            secs = bucket.num_seconds()
        ));
        query.push_bind(start);
        scope.push_conditions(&mut query, "webhook_id");
        query.push(" GROUP BY bucket");
        let rows: Vec<(DateTime<Utc>, i64)> = query.build_query_as().fetch_all(&state.pool).await?;
        for (bucket_start, count) in rows {
            if let Some(point) = points.get_mut(&bucket_start) {
                match field {
                    Field::Accepted => point.accepted += count,
                    Field::Stored => point.stored += count,
                    Field::DeadLettered => {
                        point.dead_lettered += count;
                        point.accepted += count;
                    }
                }
            }
        }
    }
    Ok(Json(Series {
        window,
        bucket_seconds: bucket.num_seconds(),
        points: points.into_values().collect(),
    }))
}

#[derive(Clone, Copy)]
enum Field {
    Accepted,
    Stored,
    DeadLettered,
}
