//! Kafka topic names. Other crates name topics only through these.

use std::time::Duration;

/// Verified events, as the handler received them (key = webhook id).
pub const EVENTS: &str = "hookline.events";
/// Events whose retry budget is spent.
pub const DEAD_LETTERS: &str = "hookline.events.dlq";
/// Log-compacted registry of webhooks (key = webhook id, tombstone on delete).
pub const REGISTRY: &str = "hookline.registry";

/// The delay each retry tier stands for. A retry waits in the first tier whose delay
/// covers it, so within one tier waits differ by at most that tier's delay: a message
/// waiting an hour never sits in front of one waiting a second.
pub const RETRY_TIER_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(3_600),
];

/// The retry topic of tier `tier` (0-based), e.g. `hookline.events.retry.0`.
pub fn retry_tier(tier: usize) -> String {
    format!("{EVENTS}.retry.{tier}")
}

/// Every retry tier's topic, shortest delay first.
pub fn retry_tiers() -> impl Iterator<Item = String> {
    (0..RETRY_TIER_DELAYS.len()).map(retry_tier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_tiers_are_named_after_the_events_topic_in_delay_order() {
        assert_eq!(retry_tier(0), "hookline.events.retry.0");
        let all: Vec<String> = retry_tiers().collect();
        assert_eq!(all.len(), RETRY_TIER_DELAYS.len());
        assert_eq!(all[4], "hookline.events.retry.4");
        assert!(RETRY_TIER_DELAYS.windows(2).all(|w| w[0] < w[1]));
    }
}
