//! Repeated messages (a replay attack, or a sender retrying after a timeout): a message
//! already accepted inside the tolerance window is acknowledged again without being
//! produced twice. ("Replay" in Hookline means re-sending dead letters; see
//! `hookline_store::dead_letter_replay`.)
//!
//! GitHub, Shopify and legacy hex sign neither a timestamp nor the delivery id, so a
//! captured request verifies for ever and its id can be changed at will. For a request
//! verified without a signed timestamp (theirs), the body's digest is a second key, remembered for the longer unsigned-id window: the
//! same body under a new delivery id is a repeat too. (Two distinct events with
//! byte-identical bodies inside the window would be taken for one; their bodies carry
//! ids and timestamps of their own, so real events differ.)
//!
//! The caches are per replica: behind N replicas, a repeat that lands on another
//! replica than the first is produced again (the consumer's unique message id stores
//! a same-id repeat once; a new-id body repeat is stored once per replica it reaches).
//!
//! Memory is bounded: entries expire after the window, and past `capacity` the
//! oldest accepted entries are forgotten first (counted, so an operator sees when
//! the window is effectively shorter than the tolerance).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hookline_core::ids::MessageId;
use hookline_core::provider;
use hookline_core::signature::Scheme;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use sha2::{Digest, Sha256};

/// A fixed-size digest of (webhook id, message id) or, for requests whose provider
/// gives no message id, of (webhook id, signature header, body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey([u8; 16]);

impl MessageKey {
    /// The key of a verified request: its provider's message id (see
    /// `hookline_core::provider`), else `signature_header`, the raw value of the
    /// scheme's signature header (see [`signature_header_name`]), and the body.
    pub fn of(
        webhook_id: &str,
        message_id: Option<&str>,
        signature_header: &[u8],
        body: &[u8],
    ) -> Self {
        let mut hash = Sha256::new();
        hash.update(webhook_id.as_bytes());
        match message_id {
            Some(id) => {
                hash.update(b"\0id\0");
                hash.update(id.as_bytes());
            }
            None => {
                hash.update(b"\0signature\0");
                hash.update(signature_header);
                hash.update(b"\0");
                hash.update(body);
            }
        }
        Self::from_digest(hash)
    }

    /// The first 16 bytes of the digest: collisions stay out of reach, the cache small.
    fn from_digest(hash: Sha256) -> Self {
        let digest = hash.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }

    /// The message id given to events whose sender sent none: the key in hex, so a
    /// repeat gets the same id downstream.
    pub fn message_id(self) -> MessageId {
        let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
        MessageId::parse(hex).expect("32 hex digits are a message id")
    }
}

impl MessageKey {
    /// The key of `body` accepted for `webhook_id`, whatever its delivery id.
    pub fn of_body(webhook_id: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(webhook_id.as_bytes());
        hash.update(b"\0body\0");
        hash.update(body);
        Self::from_digest(hash)
    }
}

/// The header whose value keys repeats of requests of `scheme` without a message id:
/// the name the provider usually gives its signature (the first of
/// `provider::signature_headers`, which is never empty).
pub fn signature_header_name(scheme: Scheme) -> &'static str {
    provider::signature_headers(scheme)[0]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Being produced right now.
    InFlight,
    Accepted {
        at: Instant,
    },
}

/// What the cache knew about a key when a request for it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen inside the window: the caller produces it and then calls
    /// `accepted` or `abandoned`.
    New,
    /// Accepted before, inside the window.
    Accepted,
    /// Another request with this key is being produced right now.
    InFlight,
}

#[derive(Debug)]
pub struct SeenMessages {
    window: Duration,
    capacity: usize,
    slots: HashMap<MessageKey, Slot>,
    /// Accepted keys, oldest first.
    accepted_order: VecDeque<(Instant, MessageKey)>,
    evicted: u64,
}

impl SeenMessages {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity: capacity.max(1),
            slots: HashMap::new(),
            accepted_order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Looks `key` up; a new key is marked in flight.
    pub fn begin(&mut self, key: MessageKey, now: Instant) -> Seen {
        self.expire(now);
        if !self.slots.contains_key(&key) {
            while self.slots.len() >= self.capacity && self.evict_oldest() {}
        }
        match self.slots.entry(key) {
            Entry::Occupied(slot) => match slot.get() {
                Slot::InFlight => Seen::InFlight,
                Slot::Accepted { .. } => Seen::Accepted,
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::InFlight);
                Seen::New
            }
        }
    }

    /// The broker has the message: repeats are acknowledged for the window from now.
    pub fn accepted(&mut self, key: MessageKey, now: Instant) {
        self.slots.insert(key, Slot::Accepted { at: now });
        self.accepted_order.push_back((now, key));
    }

    /// The message was not stored: a retry must be produced.
    pub fn abandoned(&mut self, key: MessageKey) {
        if self.slots.get(&key) == Some(&Slot::InFlight) {
            self.slots.remove(&key);
        }
    }

    /// Keys remembered (in flight or accepted).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Accepted keys forgotten before their window ended, because of the capacity.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.accepted_order.front().copied() {
            if now.saturating_duration_since(at) <= self.window {
                break;
            }
            self.accepted_order.pop_front();
            self.remove_if_accepted_at(key, at);
        }
    }

    /// Forgets the oldest accepted key; false when none is left to forget.
    fn evict_oldest(&mut self) -> bool {
        while let Some((at, key)) = self.accepted_order.pop_front() {
            if self.remove_if_accepted_at(key, at) {
                self.evicted += 1;
                return true;
            }
        }
        false
    }

    /// Removes `key` if it is still the acceptance recorded at `at` (not a later one).
    fn remove_if_accepted_at(&mut self, key: MessageKey, at: Instant) -> bool {
        if self.slots.get(&key) == Some(&Slot::Accepted { at }) {
            self.slots.remove(&key);
            true
        } else {
            false
        }
    }
}

/// A [`SeenMessages`] shared between requests, handing out guards that abandon the
/// key unless the request reports it accepted (so a dropped request frees its key).
#[derive(Debug, Clone)]
pub struct SharedSeenMessages {
    cache: Arc<Mutex<SeenMessages>>,
    entries: Gauge,
    evictions: Counter,
}

impl SharedSeenMessages {
    /// A cache that keeps the gauge `entries` and the counter `evictions` current.
    pub fn new(window: Duration, capacity: usize, entries: Gauge, evictions: Counter) -> Self {
        Self {
            cache: Arc::new(Mutex::new(SeenMessages::new(window, capacity))),
            entries,
            evictions,
        }
    }

    /// `Ok(guard)` for a new key, else what was seen.
    pub fn begin(&self, key: MessageKey) -> Result<InFlightGuard, Seen> {
        let mut cache = self.lock();
        let evicted_before = cache.evicted();
        let seen = cache.begin(key, Instant::now());
        self.evictions.inc_by(cache.evicted() - evicted_before);
        self.entries
            .set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
        drop(cache);
        match seen {
            Seen::New => Ok(InFlightGuard {
                cache: self.clone(),
                key,
                done: false,
            }),
            seen => Err(seen),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeenMessages> {
        // Each method leaves the cache consistent, so a panicked holder harms nothing.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A key being produced. Dropped without [`accepted`](Self::accepted), it is forgotten.
#[derive(Debug)]
pub struct InFlightGuard {
    cache: SharedSeenMessages,
    key: MessageKey,
    done: bool,
}

impl InFlightGuard {
    pub fn accepted(mut self) {
        self.done = true;
        self.cache.lock().accepted(self.key, Instant::now());
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if !self.done {
            self.cache.lock().abandoned(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> MessageKey {
        MessageKey([n; 16])
    }

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn accepted_keys_are_repeats_until_the_window_ends() {
        let mut cache = SeenMessages::new(WINDOW, 10);
        let start = Instant::now();
        assert_eq!(cache.begin(key(1), start), Seen::New);
        assert_eq!(cache.begin(key(1), start), Seen::InFlight);
        cache.accepted(key(1), start);
        assert_eq!(cache.begin(key(1), start + WINDOW), Seen::Accepted);
        assert_eq!(
            cache.begin(key(1), start + WINDOW + Duration::from_secs(1)),
            Seen::New
        );
    }

    #[test]
    fn abandoned_keys_may_be_produced_again() {
        let mut cache = SeenMessages::new(WINDOW, 10);
        let now = Instant::now();
        assert_eq!(cache.begin(key(1), now), Seen::New);
        cache.abandoned(key(1));
        assert_eq!(cache.begin(key(1), now), Seen::New);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn capacity_forgets_the_oldest_accepted_first() {
        let mut cache = SeenMessages::new(WINDOW, 3);
        let now = Instant::now();
        for n in 1..=3 {
            assert_eq!(cache.begin(key(n), now), Seen::New);
            cache.accepted(key(n), now + Duration::from_secs(u64::from(n)));
        }
        assert_eq!(cache.begin(key(4), now), Seen::New);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.evicted(), 1);
        assert_eq!(cache.begin(key(2), now), Seen::Accepted);
        assert_eq!(
            cache.begin(key(1), now),
            Seen::New,
            "the oldest was forgotten"
        );
    }

    #[test]
    fn keys_separate_webhooks_and_fall_back_to_signature_and_body() {
        let with_id = |id| Some(id);
        let without_id = None;
        let a = MessageKey::of("wh-a", with_id("msg_1"), b"sig", b"body");
        assert_eq!(
            a,
            MessageKey::of("wh-a", with_id("msg_1"), b"other", b"other")
        );
        assert_ne!(a, MessageKey::of("wh-b", with_id("msg_1"), b"sig", b"body"));
        assert_ne!(a, MessageKey::of("wh-a", with_id("msg_2"), b"sig", b"body"));
        let b = MessageKey::of("wh-a", without_id, b"sig", b"body");
        assert_eq!(b, MessageKey::of("wh-a", without_id, b"sig", b"body"));
        assert_ne!(b, MessageKey::of("wh-a", without_id, b"sig2", b"body"));
        assert_ne!(b, MessageKey::of("wh-a", without_id, b"sig", b"body2"));
        assert_eq!(b.message_id().len(), 32);
    }

    #[test]
    fn dropped_guards_free_their_key() {
        let (entries, evictions) = (Gauge::default(), Counter::default());
        let cache = SharedSeenMessages::new(WINDOW, 1, entries.clone(), evictions.clone());
        let guard = cache.begin(key(7)).unwrap();
        assert_eq!(cache.begin(key(7)).unwrap_err(), Seen::InFlight);
        drop(guard);
        cache.begin(key(7)).unwrap().accepted();
        assert_eq!(cache.begin(key(7)).unwrap_err(), Seen::Accepted);
        assert_eq!((entries.get(), evictions.get()), (1, 0));
        cache.begin(key(8)).unwrap().accepted();
        assert_eq!((entries.get(), evictions.get()), (1, 1));
    }

    #[test]
    fn a_body_under_a_new_delivery_id_has_the_same_body_key() {
        let body = br#"{"action":"opened"}"#;
        let mut cache = SeenMessages::new(Duration::from_secs(86_400), 10);
        let now = Instant::now();
        let first = MessageKey::of_body("wh-a", body);
        assert_eq!(cache.begin(first, now), Seen::New);
        cache.accepted(first, now);
        // A new delivery id changes the id key, not the body key.
        assert_ne!(
            MessageKey::of("wh-a", Some("delivery-1"), b"sig", body),
            MessageKey::of("wh-a", Some("delivery-2"), b"sig", body)
        );
        let again = MessageKey::of_body("wh-a", body);
        assert_eq!(
            cache.begin(again, now + Duration::from_secs(3_600)),
            Seen::Accepted
        );
        assert_ne!(again, MessageKey::of_body("wh-b", body), "per webhook");
        assert_ne!(again, MessageKey::of_body("wh-a", b"{}"));
        assert_ne!(
            again,
            MessageKey::of("wh-a", None, b"", body),
            "apart from the signature-and-body key"
        );
    }
}
