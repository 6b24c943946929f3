//! The live tail: server-sent events of a webhook's events as they are stored, and the
//! stored rate once a second.
//!
//! `stored_at` is the insert's own clock, and a transaction commits a little later, so
//! a row can appear with a stored_at just before what was last read. Each look reads
//! back `LOOK_BACK` and skips the rows it already sent.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::events::{EventSummary, SUMMARY_COLUMNS};
use crate::params::empty_as_none;
use crate::state::AppState;
use crate::webhooks::Scope;

const LOOK_INTERVAL: Duration = Duration::from_millis(250);
const LOOK_BACK: chrono::Duration = chrono::Duration::seconds(1);
/// Most events sent per look (so at most 100 a second); the rest are counted as skipped.
const MAX_PER_LOOK: i64 = 25;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// One webhook; all when absent.
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(pattern = "^[^\\u0000]*$")]
    pub webhook_id: Option<String>,
}

/// The data of a `rate` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rate {
    /// The end of the second counted.
    pub at: DateTime<Utc>,
    pub stored_per_second: f64,
}

/// The data of a `skipped` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct Skipped {
    pub count: i64,
}

struct Tail {
    state: AppState,
    scope: Scope,
    /// Events stored after this were not sent yet (bar the look-back).
    cursor: DateTime<Utc>,
    /// What was sent within the look-back, with its stored_at.
    sent: HashMap<(String, String), DateTime<Utc>>,
    next_rate: DateTime<Utc>,
    /// What the last look found, sent oldest first.
    queued: VecDeque<Event>,
}

/// `text/event-stream`: `stored` (an event summary), `skipped` (`{"count"}`, beyond 100
/// a second) and `rate` (`{"at", "stored_per_second"}`, every second).
#[utoipa::path(get, path = "/api/v1/live", tag = "live", params(LiveParams),
    responses(
        (status = 200, description = "Server-sent events: stored, skipped, rate", content_type = "text/event-stream", body = String),
        (status = 400, description = "A parameter is malformed", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    params: Result<Query<LiveParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(params) = params.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let scope = Scope::of(&state, params.webhook_id)?;
    let now = Utc::now();
    state.metrics.live_streams.inc();
    let tail = Tail {
        state,
        scope,
        cursor: now,
        sent: HashMap::new(),
        next_rate: now + chrono::Duration::seconds(1),
        queued: VecDeque::new(),
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        loop {
            if let Some(event) = tail.queued.pop_front() {
                return Some((Ok(event), tail));
            }
            tokio::time::sleep(LOOK_INTERVAL).await;
            tail.look().await;
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.state.metrics.live_streams.dec();
    }
}

impl Tail {
    async fn look(&mut self) {
        match self.new_events().await {
            Ok((events, skipped)) => {
                for event in events {
                    if let Ok(data) = Event::default().event("stored").json_data(&event) {
                        self.queued.push_back(data);
                    }
                }
                if skipped > 0
                    && let Ok(data) = Event::default()
                        .event("skipped")
                        .json_data(Skipped { count: skipped })
                {
                    self.queued.push_back(data);
                }
            }
            Err(err) => tracing::debug!(%err, "live tail look failed; trying again"),
        }
        let now = Utc::now();
        if now >= self.next_rate {
            // The second before last: its transactions have committed by now.
            let end = self.next_rate - chrono::Duration::seconds(1);
            match self
                .count_between(end - chrono::Duration::seconds(1), end)
                .await
            {
                Ok(count) => {
                    let rate = Rate {
                        at: end,
                        stored_per_second: count as f64,
                    };
                    if let Ok(data) = Event::default().event("rate").json_data(rate) {
                        self.queued.push_back(data);
                    }
                }
                Err(err) => tracing::debug!(%err, "live rate look failed"),
            }
            self.next_rate += chrono::Duration::seconds(1);
            if self.next_rate < now {
                self.next_rate = now + chrono::Duration::seconds(1);
            }
        }
    }

    /// Events stored since the cursor (with the look-back) not sent yet, oldest first,
    /// and how many of them beyond the per-look limit were skipped. The newest are read
    /// first, so a burst larger than a look can read is skipped, never queued up.
    async fn new_events(&mut self) -> Result<(Vec<EventSummary>, i64), sqlx::Error> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {SUMMARY_COLUMNS} FROM events WHERE stored_at > "
        ));
        query.push_bind(self.cursor - LOOK_BACK);
        self.scope.push_conditions(&mut query, "webhook_id");
        query.push(" ORDER BY stored_at DESC LIMIT 2000");
        let rows: Vec<EventSummary> = query.build_query_as().fetch_all(&self.state.pool).await?;
        let mut fresh: Vec<EventSummary> = rows
            .into_iter()
            .filter(|e| {
                !self
                    .sent
                    .contains_key(&(e.webhook_id.clone(), e.message_id.clone()))
            })
            .collect();
        fresh.reverse();
        for event in &fresh {
            self.cursor = self.cursor.max(event.stored_at);
            self.sent.insert(
                (event.webhook_id.clone(), event.message_id.clone()),
                event.stored_at,
            );
        }
        // What is older than the look-back is never read again.
        let horizon = self.cursor - LOOK_BACK;
        self.sent.retain(|_, stored_at| *stored_at > horizon);
        let skipped = (fresh.len() as i64 - MAX_PER_LOOK).max(0);
        let shown = fresh.split_off(usize::try_from(skipped).unwrap_or(0));
        Ok((shown, skipped))
    }

    async fn count_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        let mut query =
            QueryBuilder::<Postgres>::new("SELECT count(*) FROM events WHERE stored_at >= ");
        query
            .push_bind(from)
            .push(" AND stored_at < ")
            .push_bind(to);
        self.scope.push_conditions(&mut query, "webhook_id");
        query.build_query_scalar().fetch_one(&self.state.pool).await
    }
}
