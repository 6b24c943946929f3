//! Concurrency caps per key (a webhook id, a client address) below the global one, so
//! that slow or hostile senders on one URL, or from one address, cannot hold every
//! slot of a replica while their bodies trickle in.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Requests in progress per key, each key at most `cap`. A key with none is dropped,
/// so the map holds only keys with a request in progress (bounded by the global cap).
#[derive(Debug)]
pub struct KeyedCap<K> {
    cap: u32,
    in_progress: Arc<Mutex<HashMap<K, u32>>>,
}

impl<K: Hash + Eq + Clone> KeyedCap<K> {
    pub fn new(cap: u32) -> Self {
        Self {
            cap: cap.max(1),
            in_progress: Arc::default(),
        }
    }

    /// A slot for `key`, held until the guard drops; `None` when `key` has `cap` already.
    pub fn enter(&self, key: K) -> Option<KeyedSlot<K>> {
        let mut in_progress = self.lock();
        let count = in_progress.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(KeyedSlot {
            in_progress: self.in_progress.clone(),
            key,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, u32>> {
        // Every update is one step on one count, so a panicked holder harms nothing.
        self.in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request's slot under a [`KeyedCap`].
#[derive(Debug)]
pub struct KeyedSlot<K: Hash + Eq> {
    in_progress: Arc<Mutex<HashMap<K, u32>>>,
    key: K,
}

impl<K: Hash + Eq> Drop for KeyedSlot<K> {
    fn drop(&mut self) {
        let mut in_progress = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_progress.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                in_progress.remove(&self.key);
            }
        }
    }
}

/// The key a client address is capped under: an IPv4 address, or an IPv6 address's
/// /64 (one subscriber usually holds a whole /64, so single addresses are free to it).
pub fn source_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_cap_and_a_slot_back_when_dropped() {
        let cap = KeyedCap::new(2);
        let first = cap.enter("a").unwrap();
        let _second = cap.enter("a").unwrap();
        assert!(cap.enter("a").is_none());
        assert!(cap.enter("b").is_some(), "other keys have their own cap");
        drop(first);
        assert!(cap.enter("a").is_some());
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let cap = KeyedCap::new(1);
        drop(cap.enter(1).unwrap());
        assert!(cap.lock().is_empty());
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(source_key(v4), v4);
        assert_eq!(source_key("::ffff:192.0.2.1".parse().unwrap()), v4);
    }
}
