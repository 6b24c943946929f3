//! Holds retry copies until their not-before time, one partition at a time.
//!
//! A partition whose next record is not due yet is paused (by the caller) and its
//! records wait here; every other partition keeps flowing. Records that were already
//! on their way when the pause took effect wait behind the first one, in order, so the
//! consumer's position stays exactly after the last record it received and resuming
//! needs no seek. Pure: the caller pauses, resumes and supplies the clock.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::event::{Consumed, PartitionKey};

#[derive(Debug, Default)]
pub struct DelayGate {
    waiting: HashMap<PartitionKey, Waiting>,
}

#[derive(Debug)]
struct Waiting {
    until: DateTime<Utc>,
    held: VecDeque<Consumed>,
}

/// What to do with an offered record.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Due: process it now.
    Ready(Consumed),
    /// Not due: it waits here. `pause` is true when its partition just started waiting.
    Held { pause: bool },
}

/// Records that came due, and the partitions with nothing left waiting.
#[derive(Debug, Default, PartialEq)]
pub struct Released {
    pub ready: Vec<Consumed>,
    pub resume: Vec<PartitionKey>,
}

impl DelayGate {
    pub fn offer(&mut self, record: Consumed, now: DateTime<Utc>) -> Admission {
        let key = record.partition_key();
        if let Some(waiting) = self.waiting.get_mut(&key) {
            waiting.held.push_back(record);
            return Admission::Held { pause: false };
        }
        match record.record.not_before() {
            Some(until) if until > now => {
                self.waiting.insert(
                    key,
                    Waiting {
                        until,
                        held: VecDeque::from([record]),
                    },
                );
                Admission::Held { pause: true }
            }
            _ => Admission::Ready(record),
        }
    }

    /// Takes every record that is due, in partition order, stopping in each partition
    /// at the first one that is not.
    pub fn release_due(&mut self, now: DateTime<Utc>) -> Released {
        let mut released = Released::default();
        for (key, waiting) in &mut self.waiting {
            if waiting.until > now {
                continue;
            }
            while let Some(front) = waiting.held.front() {
                match front.record.not_before() {
                    Some(until) if until > now => {
                        waiting.until = until;
                        break;
                    }
                    _ => released.ready.extend(waiting.held.pop_front()),
                }
            }
            if waiting.held.is_empty() {
                released.resume.push(key.clone());
            }
        }
        for key in &released.resume {
            self.waiting.remove(key);
        }
        released
    }

    /// When the next partition comes due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.waiting.values().map(|w| w.until).min()
    }

    pub fn is_waiting(&self, key: &PartitionKey) -> bool {
        self.waiting.contains_key(key)
    }

    /// Forgets partitions that are no longer assigned; their records are read again by
    /// whoever owns them now.
    pub fn retain(&mut self, mut keep: impl FnMut(&PartitionKey) -> bool) {
        self.waiting.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::consumed;
    use chrono::TimeZone;
    use hookline_core::record_headers;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, second).unwrap()
    }

    fn record(partition: i32, offset: i64, not_before: Option<u32>) -> Consumed {
        let mut record = consumed("{}");
        record.partition = partition;
        record.offset = offset;
        if let Some(second) = not_before {
            record.record.headers.push((
                record_headers::NOT_BEFORE.into(),
                at(second).to_rfc3339().into_bytes().into(),
            ));
        }
        record
    }

    #[test]
    fn due_records_pass_and_a_waiting_partition_does_not_hold_up_another() {
        let mut gate = DelayGate::default();
        assert!(matches!(
            gate.offer(record(0, 1, None), at(0)),
            Admission::Ready(_)
        ));
        assert!(matches!(
            gate.offer(record(0, 2, Some(0)), at(0)),
            Admission::Ready(_)
        ));
        assert_eq!(
            gate.offer(record(0, 3, Some(50)), at(0)),
            Admission::Held { pause: true }
        );
        assert_eq!(
            gate.offer(record(0, 4, Some(1)), at(0)),
            Admission::Held { pause: false }
        );
        assert!(matches!(
            gate.offer(record(1, 1, Some(1)), at(2)),
            Admission::Ready(_)
        ));
        assert!(gate.is_waiting(&("hookline.events".into(), 0)));
        assert_eq!(gate.next_due(), Some(at(50)));
        assert_eq!(gate.release_due(at(49)), Released::default());

        let released = gate.release_due(at(50));
        let offsets: Vec<i64> = released.ready.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [3, 4], "held records come out in order");
        assert_eq!(released.resume, [("hookline.events".to_owned(), 0)]);
        assert_eq!(gate.next_due(), None);
    }

    #[test]
    fn a_partition_stays_paused_while_its_next_record_is_not_due() {
        let mut gate = DelayGate::default();
        gate.offer(record(0, 1, Some(10)), at(0));
        gate.offer(record(0, 2, Some(20)), at(0));
        let released = gate.release_due(at(10));
        assert_eq!(released.ready.len(), 1);
        assert!(released.resume.is_empty());
        assert_eq!(gate.next_due(), Some(at(20)));
        let released = gate.release_due(at(20));
        assert_eq!(released.ready[0].offset, 2);
        assert_eq!(released.resume.len(), 1);
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut gate = DelayGate::default();
        gate.offer(record(0, 1, Some(10)), at(0));
        gate.offer(record(1, 1, Some(10)), at(0));
        gate.retain(|(_, partition)| *partition == 1);
        let released = gate.release_due(at(10));
        assert_eq!(released.ready.len(), 1);
        assert_eq!(released.ready[0].partition, 1);
    }
}
