//! Duplicate detection for incoming CON and NON messages (RFC 7252 §4.5): a bounded table
//! of recently seen Message IDs, each remembered for its lifetime, with the response sent
//! to a CON so a duplicate can be answered with it again.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

/// One remembered Message ID.
#[derive(Debug, Clone)]
struct Entry {
    /// When the Message ID may be forgotten (EXCHANGE_LIFETIME or NON_LIFETIME after receipt).
    expires_at_ms: u64,
    /// Insertion number, to tell this entry's slot in the age queue from stale ones.
    generation: u64,
    /// The response sent, once there is one, as it was sent (a few dozen octets, where
    /// the decoded message with its options took several allocations).
    response: Option<Box<[u8]>>,
}

/// What the table knew about a Message ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within its lifetime; now remembered.
    New,
    /// Seen before; carries the response sent to it, if any.
    Duplicate(Option<Bytes>),
}

/// Recently seen Message IDs of one peer, at most `capacity` of them; when full, the
/// oldest entry is forgotten first.
#[derive(Debug, Clone)]
pub struct DedupTable {
    capacity: usize,
    entries: HashMap<u16, Entry>,
    /// Message IDs in insertion order, with the generation they were inserted under.
    age: VecDeque<(u16, u64)>,
    generation: u64,
}

impl DedupTable {
    /// A table remembering at most `capacity` Message IDs (0 disables deduplication).
    pub fn new(capacity: usize) -> DedupTable {
        DedupTable {
            capacity,
            entries: HashMap::new(),
            age: VecDeque::new(),
            generation: 0,
        }
    }

    /// Number of Message IDs remembered (including expired ones not yet purged).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no Message ID is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks `message_id` up at `now_ms`; if it is new, remembers it for `lifetime_ms`.
    pub fn check(&mut self, message_id: u16, now_ms: u64, lifetime_ms: u64) -> Seen {
        if let Some(entry) = self.entries.get(&message_id) {
            if now_ms < entry.expires_at_ms {
                return Seen::Duplicate(entry.response.as_deref().map(Bytes::copy_from_slice));
            }
            self.entries.remove(&message_id);
        }
        if self.capacity == 0 {
            return Seen::New;
        }
        self.purge(now_ms);
        while self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        self.generation += 1;
        self.entries.insert(
            message_id,
            Entry {
                expires_at_ms: now_ms.saturating_add(lifetime_ms),
                generation: self.generation,
                response: None,
            },
        );
        self.age.push_back((message_id, self.generation));
        if self.age.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.age.retain(|(id, generation)| {
                entries.get(id).is_some_and(|e| e.generation == *generation)
            });
        }
        Seen::New
    }

    /// Remembers `response` as the answer to `message_id`; false if it is not remembered.
    pub fn record_response(&mut self, message_id: u16, response: &[u8]) -> bool {
        match self.entries.get_mut(&message_id) {
            Some(entry) => {
                entry.response = Some(response.into());
                true
            }
            None => false,
        }
    }

    /// Forgets the oldest entries while they are expired.
    pub fn purge(&mut self, now_ms: u64) {
        while let Some(&(id, generation)) = self.age.front() {
            match self.entries.get(&id) {
                Some(e) if e.generation == generation && now_ms < e.expires_at_ms => break,
                Some(e) if e.generation == generation => {
                    self.entries.remove(&id);
                }
                _ => {}
            }
            self.age.pop_front();
        }
        if self.entries.is_empty() {
            // An idle peer's table holds no memory (a map keeps its capacity otherwise).
            self.entries = HashMap::new();
            self.age = VecDeque::new();
        }
    }

    /// When the oldest remembered Message ID expires, if any: the next [`purge`] that
    /// frees something.
    ///
    /// [`purge`]: DedupTable::purge
    pub fn next_expiry(&self) -> Option<u64> {
        self.age.iter().find_map(|(id, generation)| {
            self.entries
                .get(id)
                .filter(|e| e.generation == *generation)
                .map(|e| e.expires_at_ms)
        })
    }

    /// Forgets the oldest live entry.
    fn evict_oldest(&mut self) {
        while let Some((id, generation)) = self.age.pop_front() {
            if self
                .entries
                .get(&id)
                .is_some_and(|e| e.generation == generation)
            {
                self.entries.remove(&id);
                return;
            }
        }
        // The age queue lists every live entry, so this is unreachable; keep the bound anyway.
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_a_duplicate_within_its_lifetime_only() {
        let mut table = DedupTable::new(8);
        assert_eq!(table.check(1, 0, 1_000), Seen::New);
        assert_eq!(table.check(1, 999, 1_000), Seen::Duplicate(None));
        assert_eq!(table.check(1, 1_000, 1_000), Seen::New);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn a_recorded_response_comes_back_with_the_duplicate() {
        let mut table = DedupTable::new(8);
        let ack = Bytes::from_static(&[0x60, 0, 0, 5]);
        assert!(!table.record_response(5, &ack));
        table.check(5, 0, 1_000);
        assert!(table.record_response(5, &ack));
        assert_eq!(table.check(5, 10, 1_000), Seen::Duplicate(Some(ack)));
    }

    #[test]
    fn the_oldest_entry_is_evicted_when_full() {
        let mut table = DedupTable::new(3);
        for id in 0..3 {
            table.check(id, u64::from(id), 10_000);
        }
        assert_eq!(table.check(3, 5, 10_000), Seen::New);
        assert_eq!(table.len(), 3);
        assert_eq!(table.check(0, 6, 10_000), Seen::New, "0 was evicted");
        assert_eq!(table.check(3, 7, 10_000), Seen::Duplicate(None));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn churn_keeps_the_age_queue_bounded() {
        let mut table = DedupTable::new(4);
        table.check(100, 0, u64::MAX);
        for round in 0..1_000u64 {
            table.check((round % 3) as u16, round * 10, 5);
        }
        assert!(table.len() <= 4);
        assert!(table.age.len() <= 8);
        assert_eq!(table.check(100, 20_000, 1), Seen::Duplicate(None));
    }

    #[test]
    fn capacity_zero_remembers_nothing() {
        let mut table = DedupTable::new(0);
        assert_eq!(table.check(1, 0, 1_000), Seen::New);
        assert_eq!(table.check(1, 1, 1_000), Seen::New);
        assert!(table.is_empty());
    }
}
