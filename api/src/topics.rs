//! The Kafka topic layout: which topics exist, their names, partitions and compaction,
//! and the retry tiers. The operator creates exactly [`layout`]; the consumer takes
//! one delay per tier of [`RETRY_TIER_DELAYS`]. Other crates name topics only
//! through these.

use std::time::Duration;

/// Verified events, as the handler received them (key = webhook id).
pub const EVENTS: &str = "hookline.events";
/// Events whose retry budget is spent.
pub const DEAD_LETTERS: &str = "hookline.events.dlq";
/// Log-compacted registry of webhooks (key = webhook id, a versioned deletion record on delete).
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

/// How many retry tiers there are (and so retry topics, and consumer delays).
pub const RETRY_TIER_COUNT: usize = RETRY_TIER_DELAYS.len();

/// Every retry tier's topic, shortest delay first.
pub fn retry_tiers() -> impl Iterator<Item = String> {
    (0..RETRY_TIER_COUNT).map(retry_tier)
}

/// A topic Hookline needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Log compaction keeps the newest value per key (the registry).
    pub compacted: bool,
}

impl TopicSpec {
    /// A topic of records keyed by webhook id, kept for their retention (events, their
    /// retry tiers, dead letters).
    pub fn events(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication,
            compacted: false,
        }
    }

    /// The registry: compacted (the newest entry per webhook stays) on one partition,
    /// since every reader loads it whole.
    pub fn registry(name: impl Into<String>, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            replication,
            compacted: true,
        }
    }
}

/// The names of one install's topics. Two installs sharing a Kafka cluster give theirs
/// different prefixes, so neither reads the other's registry nor takes its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    pub events: String,
    pub dead_letters: String,
    pub registry: String,
}

impl TopicNames {
    /// `<prefix>.hookline.events` and so on; an empty prefix gives the plain names.
    pub fn with_prefix(prefix: &str) -> Self {
        let name = |topic: &str| {
            if prefix.is_empty() {
                topic.to_owned()
            } else {
                format!("{prefix}.{topic}")
            }
        };
        Self {
            events: name(EVENTS),
            dead_letters: name(DEAD_LETTERS),
            registry: name(REGISTRY),
        }
    }

    /// The retry topic of tier `tier` (0-based), named after the events topic.
    pub fn retry_tier(&self, tier: usize) -> String {
        format!("{}.retry.{tier}", self.events)
    }
}

/// Every topic Hookline needs: the events topic, its retry tiers and dead letters with
/// `partitions` each (keyed by webhook id, so one webhook's events keep their order),
/// and the registry, compacted, on one partition (its readers load it whole).
pub fn layout(partitions: i32, replication: i32, names: &TopicNames) -> Vec<TopicSpec> {
    let events = |name: String| TopicSpec::events(name, partitions, replication);
    let mut specs = vec![
        events(names.events.clone()),
        events(names.dead_letters.clone()),
    ];
    specs.extend((0..RETRY_TIER_COUNT).map(|tier| events(names.retry_tier(tier))));
    specs.push(TopicSpec::registry(names.registry.clone(), replication));
    specs
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

    #[test]
    fn the_layout_has_every_topic_once_and_only_the_registry_compacted() {
        let specs = layout(6, 1, &TopicNames::with_prefix(""));
        assert_eq!(specs.len(), 3 + RETRY_TIER_COUNT);
        let compacted: Vec<&str> = specs
            .iter()
            .filter(|s| s.compacted)
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(compacted, [REGISTRY]);
        assert!(
            specs
                .iter()
                .filter(|s| !s.compacted)
                .all(|s| s.partitions == 6)
        );
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), specs.len());
    }

    #[test]
    fn a_prefix_names_every_topic_of_an_install() {
        let names = TopicNames::with_prefix("team-a");
        assert_eq!(names.events, "team-a.hookline.events");
        assert_eq!(names.dead_letters, "team-a.hookline.events.dlq");
        assert_eq!(names.registry, "team-a.hookline.registry");
        assert_eq!(names.retry_tier(0), "team-a.hookline.events.retry.0");
        let other = TopicNames::with_prefix("team-b");
        let ours: Vec<String> = layout(3, 1, &names).into_iter().map(|s| s.name).collect();
        let theirs: Vec<String> = layout(3, 1, &other).into_iter().map(|s| s.name).collect();
        assert!(ours.iter().all(|name| !theirs.contains(name)));
        assert_eq!(TopicNames::with_prefix("").retry_tier(4), retry_tier(4));
    }
}
