//! Failed sign-ins counted per username and per source address: after too many within
//! the window, that username (or address) is locked for the window, and every attempt
//! answers 429 with Retry-After, the right password too, so a locked account cannot
//! be used to test guesses.
//!
//! Memory is bounded: at most `MAX_ENTRIES` counters; when full, finished ones go
//! first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_ENTRIES: usize = 65_536;
/// Usernames are counted by their first bytes only: a long made-up name costs no more.
const MAX_USERNAME_BYTES: usize = 128;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    pub max_failures_per_user: u32,
    pub max_failures_per_source: u32,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Source(IpAddr),
}

struct Counter {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

impl Counter {
    fn finished(&self, now: Instant, window: Duration) -> bool {
        match self.locked_until {
            Some(until) => until <= now,
            None => self.since + window <= now,
        }
    }
}

pub struct Throttle {
    settings: ThrottleSettings,
    counters: Mutex<HashMap<Key, Counter>>,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while the username or the source is locked.
    pub fn check(&self, username: &str, source: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let counters = self.lock();
        [user_key(username), Key::Source(source)]
            .iter()
            .filter_map(|key| counters.get(key)?.locked_until)
            .filter(|until| *until > now)
            .max()
            .map_or(Ok(()), |until| Err(until - now))
    }

    /// Counts a failed attempt against the username and the source.
    pub fn failed(&self, username: &str, source: IpAddr) {
        let now = Instant::now();
        let window = self.settings.window;
        let mut counters = self.lock();
        for (key, max) in [
            (user_key(username), self.settings.max_failures_per_user),
            (Key::Source(source), self.settings.max_failures_per_source),
        ] {
            if !counters.contains_key(&key) && counters.len() >= MAX_ENTRIES {
                make_room(&mut counters, now, window);
            }
            let counter = counters.entry(key).or_insert(Counter {
                failures: 0,
                since: now,
                locked_until: None,
            });
            if counter.finished(now, window) {
                *counter = Counter {
                    failures: 0,
                    since: now,
                    locked_until: None,
                };
            }
            counter.failures = counter.failures.saturating_add(1);
            if counter.failures >= max {
                counter.locked_until = Some(now + window);
            }
        }
    }

    /// A right password clears the username's count (not the source's: an attacker
    /// could otherwise interleave sign-ins of their own to keep guessing).
    pub fn succeeded(&self, username: &str) {
        self.lock().remove(&user_key(username));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Counter>> {
        // A panic while holding the lock leaves counters that are still counters.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn user_key(username: &str) -> Key {
    let mut end = username.len().min(MAX_USERNAME_BYTES);
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    Key::User(username[..end].to_owned())
}

fn make_room(counters: &mut HashMap<Key, Counter>, now: Instant, window: Duration) {
    counters.retain(|_, counter| !counter.finished(now, window));
    if counters.len() >= MAX_ENTRIES
        && let Some(oldest) = counters
            .iter()
            .min_by_key(|(_, counter)| counter.since)
            .map(|(key, _)| key.clone())
    {
        counters.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn throttle() -> Throttle {
        Throttle::new(ThrottleSettings {
            max_failures_per_user: 3,
            max_failures_per_source: 5,
            window: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_user_is_locked_after_its_failures_from_any_source() {
        let throttle = throttle();
        throttle.failed("alice", A);
        throttle.failed("alice", B);
        assert!(throttle.check("alice", A).is_ok());
        throttle.failed("alice", B);
        let retry = throttle.check("alice", A).expect_err("locked");
        assert!(retry <= Duration::from_secs(60) && retry > Duration::from_secs(50));
        assert!(throttle.check("bob", A).is_ok(), "another user");
    }

    #[test]
    fn a_source_is_locked_after_its_failures_for_any_user() {
        let throttle = throttle();
        for user in ["a", "b", "c", "d", "e"] {
            throttle.failed(user, A);
        }
        assert!(throttle.check("f", A).is_err());
        assert!(throttle.check("f", B).is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let throttle = throttle();
        for n in 0..(MAX_ENTRIES + 10) {
            throttle.failed(&format!("user{n}"), A);
        }
        assert!(throttle.lock().len() <= MAX_ENTRIES);
        throttle.failed(&"x".repeat(10_000), A);
        assert!(throttle.lock().keys().all(|key| match key {
            Key::User(name) => name.len() <= MAX_USERNAME_BYTES,
            Key::Source(_) => true,
        }));
    }
}
