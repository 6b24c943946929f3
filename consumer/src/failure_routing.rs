//! Where a failed event goes next: a retry tier, the dead-letter topic, or (when its
//! Webhook turned dead-lettering off) nowhere, counted. Pure: the copies and rows are
//! built here and sent by the processor.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookline_core::event_record::{EventRecord, Origin, pg_text};
use hookline_core::retry::DeliveryPolicy;
use serde_json::Value;

use crate::event::{Consumed, EventError};

/// The retry tier topics with their delays, and the dead-letter topic.
#[derive(Debug, Clone)]
pub struct Routes {
    /// `(topic, delay)` per tier, shortest delay first; never empty.
    pub tiers: Vec<(String, Duration)>,
    pub dead_letter_topic: String,
}

impl Routes {
    /// Tiers named `<events_topic>.retry.<n>` like `hookline_api::topics::retry_tier`.
    pub fn new(events_topic: &str, tier_delays: &[Duration], dead_letter_topic: &str) -> Self {
        Self {
            tiers: tier_delays
                .iter()
                .enumerate()
                .map(|(n, delay)| (format!("{events_topic}.retry.{n}"), *delay))
                .collect(),
            dead_letter_topic: dead_letter_topic.to_owned(),
        }
    }

    pub fn tier_topics(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().map(|(topic, _)| topic.as_str())
    }

    /// The first tier whose delay covers `delay`; the last tier for longer waits.
    pub fn tier_for(&self, delay: Duration) -> usize {
        self.tiers
            .iter()
            .position(|(_, tier_delay)| *tier_delay >= delay)
            .unwrap_or(self.tiers.len().saturating_sub(1))
    }
}

/// What happens to an event that failed an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Retry {
        tier: usize,
        retry_count: u32,
        not_before: DateTime<Utc>,
    },
    DeadLetter {
        attempts: u32,
    },
    /// The retry budget is spent and the Webhook has `deadLetter: false`.
    Drop {
        attempts: u32,
    },
}

/// Decides by the Webhook's delivery policy after `retries_done` retries failed too.
pub fn fate(
    policy: &DeliveryPolicy,
    retries_done: u32,
    routes: &Routes,
    now: DateTime<Utc>,
) -> Fate {
    let attempts = retries_done.saturating_add(1);
    if policy.may_retry(retries_done) {
        let delay = policy.delay(attempts);
        let wait = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Fate::Retry {
            tier: routes.tier_for(delay),
            retry_count: attempts,
            not_before: now
                .checked_add_signed(wait)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    } else if policy.dead_letter {
        Fate::DeadLetter { attempts }
    } else {
        Fate::Drop { attempts }
    }
}

/// A failed event with the policy of its Webhook.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub consumed: &'a Consumed,
    pub error: EventError,
    pub policy: DeliveryPolicy,
}

/// A record to produce: a retry copy or a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    pub topic: String,
    pub record: EventRecord<'static>,
}

/// A row of `dead_letters`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub webhook_id: String,
    pub message_id: String,
    pub reason: String,
    pub attempts: i32,
    pub origin: Origin,
    pub payload: Vec<u8>,
    /// The handler's headers of the event, as a JSON object of strings.
    pub headers: Value,
}

/// Everything the failures of one batch lead to.
#[derive(Debug, Default)]
pub struct FailurePlan {
    pub copies: Vec<Copy>,
    pub dead_letter_rows: Vec<DeadLetterRow>,
    /// Retry copies per tier index.
    pub retries: Vec<(usize, u64)>,
    /// The Webhook id of each dropped event.
    pub dropped: Vec<String>,
}

/// Builds the copies and rows for `failures`.
pub fn plan(failures: &[Failure<'_>], routes: &Routes, now: DateTime<Utc>) -> FailurePlan {
    let mut plan = FailurePlan::default();
    let mut per_tier = vec![0u64; routes.tiers.len()];
    for failure in failures {
        let record = &failure.consumed.record;
        let error = error_text(&failure.error);
        let origin = failure.consumed.origin();
        match fate(&failure.policy, record.retries_done(), routes, now) {
            Fate::Retry {
                tier,
                retry_count,
                not_before,
            } => {
                per_tier[tier] += 1;
                plan.copies.push(Copy {
                    topic: routes.tiers[tier].0.clone(),
                    record: record.retry_copy(&origin, retry_count, not_before, &error),
                });
            }
            Fate::DeadLetter { attempts } => {
                plan.copies.push(Copy {
                    topic: routes.dead_letter_topic.clone(),
                    record: record.dead_letter_copy(&origin, attempts, &error),
                });
                plan.dead_letter_rows.push(DeadLetterRow {
                    webhook_id: pg_text(record.webhook_id().unwrap_or_default()),
                    message_id: pg_text(record.message_id().unwrap_or_default()),
                    reason: pg_text(&error),
                    attempts: i32::try_from(attempts).unwrap_or(i32::MAX),
                    origin,
                    payload: record.payload.to_vec(),
                    headers: record.event_headers_json(),
                });
            }
            Fate::Drop { .. } => plan
                .dropped
                .push(record.webhook_id().unwrap_or_default().to_owned()),
        }
    }
    plan.retries = per_tier
        .into_iter()
        .enumerate()
        .filter(|(_, n)| *n > 0)
        .collect();
    plan
}

/// Error texts travel in headers and rows; long ones are cut so a copy stays small.
fn error_text(error: &EventError) -> String {
    const LIMIT: usize = 500;
    let mut text = error.to_string();
    if text.len() > LIMIT {
        let cut = (0..=LIMIT)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{consumed, header as header_of};
    use chrono::TimeZone;
    use hookline_core::record_headers;
    use hookline_core::retry::BackoffPolicy;

    fn routes() -> Routes {
        let delays = [100, 200, 400, 800, 1_600].map(Duration::from_millis);
        Routes::new("events", &delays, "events.dlq")
    }

    fn policy(retries: u32, dead_letter: bool) -> DeliveryPolicy {
        DeliveryPolicy {
            retries,
            backoff_policy: BackoffPolicy::Exponential,
            backoff_delay_ms: 100,
            max_backoff_delay_ms: 10_000,
            dead_letter,
        }
    }

    fn header<'a>(copy: &'a Copy, name: &str) -> Option<&'a str> {
        copy.record.header(name)
    }

    #[test]
    fn a_retry_goes_to_the_first_tier_that_covers_its_delay() {
        let routes = routes();
        assert_eq!(routes.tiers[0].0, "events.retry.0");
        assert_eq!(routes.tier_for(Duration::from_millis(1)), 0);
        assert_eq!(routes.tier_for(Duration::from_millis(100)), 0);
        assert_eq!(routes.tier_for(Duration::from_millis(101)), 1);
        assert_eq!(
            routes.tier_for(Duration::from_secs(3_600)),
            4,
            "longer waits use the last tier"
        );
        let now = Utc::now();
        let p = policy(5, true);
        let tiers: Vec<usize> = (0..5)
            .map(|done| match fate(&p, done, &routes, now) {
                Fate::Retry {
                    tier,
                    retry_count,
                    not_before,
                } => {
                    assert_eq!(retry_count, done + 1);
                    assert_eq!(
                        not_before - now,
                        chrono::Duration::from_std(p.delay(done + 1)).unwrap()
                    );
                    tier
                }
                other => panic!("retry {done}: {other:?}"),
            })
            .collect();
        assert_eq!(
            tiers,
            [0, 1, 2, 3, 4],
            "exponential 100 ms walks every tier"
        );
        assert_eq!(fate(&p, 5, &routes, now), Fate::DeadLetter { attempts: 6 });
        assert_eq!(
            fate(&policy(0, false), 0, &routes, now),
            Fate::Drop { attempts: 1 }
        );
    }

    #[test]
    fn a_retry_copy_keeps_the_event_and_carries_fresh_bookkeeping() {
        let mut event = consumed("not json");
        event
            .record
            .headers
            .push(header_of(record_headers::RETRY_COUNT, b"1"));
        event
            .record
            .headers
            .push(header_of(record_headers::ERROR, b"old"));
        event
            .record
            .headers
            .push(header_of(record_headers::ORIGIN_TOPIC, b"events"));
        event
            .record
            .headers
            .push(header_of(record_headers::ORIGIN_PARTITION, b"0"));
        event
            .record
            .headers
            .push(header_of(record_headers::ORIGIN_OFFSET, b"7"));
        let failure = Failure {
            consumed: &event,
            error: EventError::Unstorable("invalid byte sequence".into()),
            policy: policy(5, true),
        };
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let plan = plan(&[failure], &routes(), now);
        assert_eq!(plan.copies.len(), 1);
        assert!(plan.dead_letter_rows.is_empty());
        assert_eq!(plan.retries, [(1, 1)]);
        let copy = &plan.copies[0];
        assert_eq!(copy.topic, "events.retry.1");
        assert_eq!(copy.record.payload.as_ref(), b"not json");
        assert_eq!(copy.record.key.as_deref(), Some(&b"wh-1"[..]));
        assert_eq!(header(copy, record_headers::RETRY_COUNT), Some("2"));
        assert_eq!(header(copy, record_headers::MESSAGE_ID), Some("msg-1"));
        assert_eq!(
            header(copy, record_headers::ORIGIN_OFFSET),
            Some("7"),
            "the first origin is kept"
        );
        assert!(
            header(copy, record_headers::ERROR)
                .unwrap()
                .contains("cannot store")
        );
        let count = |name: &str| {
            copy.record
                .headers
                .iter()
                .filter(|(k, _)| k == name)
                .count()
        };
        assert_eq!(
            (
                count(record_headers::ERROR),
                count(record_headers::RETRY_COUNT)
            ),
            (1, 1)
        );
        let not_before =
            DateTime::parse_from_rfc3339(header(copy, record_headers::NOT_BEFORE).unwrap())
                .unwrap();
        assert_eq!(
            (not_before.with_timezone(&Utc) - now).num_milliseconds(),
            200
        );
    }

    #[test]
    fn a_spent_budget_makes_a_dead_letter_copy_and_row_or_a_counted_drop() {
        let mut event = consumed("not json");
        event
            .record
            .headers
            .push(header_of(record_headers::RETRY_COUNT, b"2"));
        event
            .record
            .headers
            .push(header_of(record_headers::MESSAGE_ID, b"m\0x"));
        let failures = [
            Failure {
                consumed: &event,
                error: EventError::Unstorable("invalid byte sequence".into()),
                policy: policy(2, true),
            },
            Failure {
                consumed: &event,
                error: EventError::Injected,
                policy: policy(2, false),
            },
        ];
        let plan = plan(&failures, &routes(), Utc::now());
        assert_eq!(plan.dropped.len(), 1);
        assert!(plan.retries.is_empty());
        let [copy] = plan.copies.as_slice() else {
            panic!("one dead-letter copy: {:?}", plan.copies);
        };
        assert_eq!(copy.topic, "events.dlq");
        assert_eq!(header(copy, record_headers::ATTEMPTS), Some("3"));
        assert_eq!(
            header(copy, record_headers::ORIGIN_TOPIC),
            Some("hookline.events")
        );
        assert_eq!(header(copy, record_headers::ORIGIN_PARTITION), Some("2"));
        assert_eq!(header(copy, record_headers::ORIGIN_OFFSET), Some("41"));
        let [row] = plan.dead_letter_rows.as_slice() else {
            panic!("one row");
        };
        assert_eq!(row.attempts, 3);
        assert_eq!(
            row.message_id, "m\u{fffd}x",
            "NUL cannot go into PostgreSQL text"
        );
        assert_eq!(row.origin.offset, 41);
        assert_eq!(
            row.headers[record_headers::RECEIVED_AT],
            "2026-03-01T10:00:00.250Z"
        );
        assert!(row.headers.get(record_headers::RETRY_COUNT).is_none());
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let error = EventError::Unstorable("é".repeat(400));
        let text = error_text(&error);
        assert!(text.len() <= 500 && text.starts_with("PostgreSQL cannot store"));
    }
}
