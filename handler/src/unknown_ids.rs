//! A short negative cache of webhook ids: an id found unknown after reading the
//! registry to its end is answered 404 at once for `interval`, instead of reading the
//! registry's end again for every request (a flood of one unknown id costs one broker
//! query per interval). The registry view is still asked first, so an id the follower
//! has applied meanwhile is served at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Ids remembered at most; past it, the expired ones go, and if none has expired the
/// id is not remembered (its next request reads the registry's end again).
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct UnknownIds {
    interval: Duration,
    checked_at: Mutex<HashMap<String, Instant>>,
}

impl UnknownIds {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            checked_at: Mutex::default(),
        }
    }

    /// Whether `webhook_id` was found unknown less than the interval ago.
    pub fn recently_checked(&self, webhook_id: &str) -> bool {
        self.recently_checked_at(webhook_id, Instant::now())
    }

    /// Records that `webhook_id` was found unknown with the registry read to its end.
    pub fn checked(&self, webhook_id: &str) {
        self.checked_at_time(webhook_id, Instant::now());
    }

    fn recently_checked_at(&self, webhook_id: &str, now: Instant) -> bool {
        self.lock()
            .get(webhook_id)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.interval)
    }

    fn checked_at_time(&self, webhook_id: &str, now: Instant) {
        let mut checked_at = self.lock();
        if checked_at.len() >= CAPACITY {
            checked_at.retain(|_, at| now.saturating_duration_since(*at) < self.interval);
        }
        if checked_at.len() < CAPACITY {
            checked_at.insert(webhook_id.to_owned(), now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // Each update is one insert or retain, so a panicked holder harms nothing.
        self.checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_id_is_remembered_for_the_interval_only() {
        let ids = UnknownIds::new(Duration::from_secs(2));
        let now = Instant::now();
        assert!(!ids.recently_checked_at("a", now));
        ids.checked_at_time("a", now);
        assert!(ids.recently_checked_at("a", now + Duration::from_millis(1_999)));
        assert!(!ids.recently_checked_at("a", now + Duration::from_secs(2)));
        assert!(!ids.recently_checked_at("b", now));
    }

    #[test]
    fn memory_is_bounded() {
        let ids = UnknownIds::new(Duration::from_secs(2));
        let now = Instant::now();
        for n in 0..=CAPACITY {
            ids.checked_at_time(&n.to_string(), now);
        }
        assert_eq!(ids.lock().len(), CAPACITY);
        // Once the first ones expired, room is made.
        let later = now + Duration::from_secs(3);
        ids.checked_at_time("fresh", later);
        assert!(ids.recently_checked_at("fresh", later));
        assert_eq!(ids.lock().len(), 1);
    }
}
