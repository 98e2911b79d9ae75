//! Duplicate detection for incoming CON and NON messages (RFC 7252 §4.5): a bounded table
//! of recently seen Message IDs, each remembered for its lifetime, with the response sent
//! to a CON so a duplicate can be answered with it again.

use std::collections::VecDeque;

use bytes::Bytes;

/// One remembered Message ID.
#[derive(Debug, Clone)]
struct Entry {
    message_id: u16,
    /// When the Message ID may be forgotten (EXCHANGE_LIFETIME or NON_LIFETIME after receipt).
    expires_at_ms: u64,
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

/// Recently seen Message IDs of one peer, at most `capacity` of them, in the order they
/// arrived; when full, the oldest is forgotten first.
///
/// One queue, searched from the newest: a peer's table holds a handful of entries (an
/// LwM2M device, 16 at most; a CoAP client, 256), and one small allocation per peer is
/// what matters with tens of thousands of mostly idle peers, where a hash map and an age
/// queue took two, and four buckets each at least.
#[derive(Debug, Clone)]
pub struct DedupTable {
    capacity: usize,
    entries: VecDeque<Entry>,
}

impl DedupTable {
    /// A table remembering at most `capacity` Message IDs (0 disables deduplication).
    pub fn new(capacity: usize) -> DedupTable {
        DedupTable {
            capacity,
            entries: VecDeque::new(),
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

    fn position(&self, message_id: u16) -> Option<usize> {
        self.entries
            .iter()
            .rposition(|e| e.message_id == message_id)
    }

    /// Looks `message_id` up at `now_ms`; if it is new, remembers it for `lifetime_ms`.
    pub fn check(&mut self, message_id: u16, now_ms: u64, lifetime_ms: u64) -> Seen {
        if let Some(i) = self.position(message_id) {
            let entry = &self.entries[i];
            if now_ms < entry.expires_at_ms {
                return Seen::Duplicate(entry.response.as_deref().map(Bytes::copy_from_slice));
            }
            self.entries.remove(i);
        }
        if self.capacity == 0 {
            return Seen::New;
        }
        self.purge(now_ms);
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            message_id,
            expires_at_ms: now_ms.saturating_add(lifetime_ms),
            response: None,
        });
        Seen::New
    }

    /// Remembers `response` as the answer to `message_id`; false if it is not remembered.
    pub fn record_response(&mut self, message_id: u16, response: &[u8]) -> bool {
        match self.position(message_id) {
            Some(i) => {
                self.entries[i].response = Some(response.into());
                true
            }
            None => false,
        }
    }

    /// Forgets the oldest entries while they are expired.
    pub fn purge(&mut self, now_ms: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| now_ms >= e.expires_at_ms)
        {
            self.entries.pop_front();
        }
        if self.entries.is_empty() {
            // An idle peer's table holds no memory (a queue keeps its capacity otherwise).
            self.entries = VecDeque::new();
        }
    }

    /// When the oldest remembered Message ID expires, if any: the next [`purge`] that
    /// frees something.
    ///
    /// [`purge`]: DedupTable::purge
    pub fn next_expiry(&self) -> Option<u64> {
        self.entries.front().map(|e| e.expires_at_ms)
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
    fn churn_keeps_the_table_bounded_and_the_long_lived_entry() {
        let mut table = DedupTable::new(4);
        table.check(100, 0, u64::MAX);
        for round in 0..1_000u64 {
            table.check((round % 3) as u16, round * 10, 5);
        }
        assert!(table.len() <= 4);
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
