//! Kafka topic names. Other crates name topics only through these.

/// Verified events, as the handler received them (key = webhook id).
pub const EVENTS: &str = "hookline.events";
/// Events whose retry budget is spent.
pub const DEAD_LETTERS: &str = "hookline.events.dlq";
/// Log-compacted registry of webhooks (key = webhook id, tombstone on delete).
pub const REGISTRY: &str = "hookline.registry";

/// The retry topic of tier `tier` (0-based), e.g. `hookline.events.retry.0`.
pub fn retry_tier(tier: usize) -> String {
    format!("{EVENTS}.retry.{tier}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_tiers_are_named_after_the_events_topic() {
        assert_eq!(retry_tier(0), "hookline.events.retry.0");
        assert_eq!(retry_tier(2), "hookline.events.retry.2");
    }
}
