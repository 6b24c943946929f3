//! The simulated events, shaped as Standard Webhooks recommends:
//! `{"type", "timestamp", "data": {"invoice_id"}}`; the event's id is its message id
//! (`webhook-id`), the same on every retry.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use serde_json::json;

/// One event to deliver: its message id stays the same across retries.
#[derive(Debug, Clone)]
pub struct SimulatedEvent {
    pub message_id: String,
    pub body: Vec<u8>,
}

/// An invoice event of a type drawn from `event_types`.
pub fn invoice_event(
    event_types: &[String],
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> SimulatedEvent {
    let event_id = uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .simple()
        .to_string();
    let invoice_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
    let event_type = if event_types.is_empty() {
        "CREATED"
    } else {
        event_types[rng.random_range(0..event_types.len())].as_str()
    };
    let body = json!({
        "type": event_type,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {"invoice_id": invoice_id},
    });
    SimulatedEvent {
        message_id: format!("msg_{event_id}"),
        body: body.to_string().into_bytes(),
    }
}

/// How many events are due `elapsed` after the start at `rate` per second (the first at
/// the start itself), so the rate holds over time however late a tick comes.
pub fn due(elapsed: Duration, rate_per_second: f64) -> u64 {
    (elapsed.as_secs_f64() * rate_per_second).floor() as u64 + 1
}

/// When event number `n` (0-based) is due after the start.
pub fn due_at(n: u64, rate_per_second: f64) -> Duration {
    Duration::from_secs_f64(n as f64 / rate_per_second)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn events_have_the_standard_webhooks_shape_and_a_message_id() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let types = vec!["PAID".to_owned()];
        let event = invoice_event(&types, Utc::now(), &mut rng);
        let value: serde_json::Value = serde_json::from_slice(&event.body).expect("JSON");
        assert_eq!(value["type"], "PAID");
        assert!(
            value["data"]["invoice_id"]
                .as_str()
                .is_some_and(|id| id.len() == 36)
        );
        assert!(DateTime::parse_from_rfc3339(value["timestamp"].as_str().unwrap()).is_ok());
        assert!(event.message_id.starts_with("msg_") && event.message_id.len() == 36);
        let other = invoice_event(&types, Utc::now(), &mut rng);
        assert_ne!(other.message_id, event.message_id);
    }

    #[test]
    fn the_schedule_holds_the_rate_at_any_tick() {
        assert_eq!(due(Duration::ZERO, 0.2), 1);
        assert_eq!(due(Duration::from_millis(4_999), 0.2), 1);
        assert_eq!(due(Duration::from_secs(5), 0.2), 2);
        assert_eq!(due(Duration::from_secs(60), 1_000.0), 60_001);
        assert_eq!(due(Duration::from_millis(1_500), 1_000.0), 1_501);
        assert_eq!(due_at(3, 0.2), Duration::from_secs(15));
        assert_eq!(due_at(1_000, 1_000.0), Duration::from_secs(1));
    }
}
