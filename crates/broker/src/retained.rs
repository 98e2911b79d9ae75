//! Retained messages: the last retained message per topic name.

use ahash::AHashMap;
use bytestring::ByteString;
use junction_types::SharedMessage;

/// The retained-message table.
#[derive(Debug, Default)]
pub struct Retained {
    by_topic: AHashMap<ByteString, SharedMessage>,
}

impl Retained {
    /// Store `msg` as the retained message of its topic; an empty payload clears it
    /// [MQTT-3.3.1-6], [MQTT-3.3.1-7]. Returns true if the table changed.
    pub fn put(&mut self, msg: SharedMessage) -> bool {
        if msg.payload.is_empty() {
            self.by_topic.remove(&msg.topic).is_some()
        } else {
            // Retained messages live long: keep them out of the publishers' read buffers.
            let msg = SharedMessage::new(msg.detached());
            self.by_topic.insert(msg.topic.clone(), msg);
            true
        }
    }

    /// Number of retained messages (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// True if nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// The retained messages whose topic matches `filter`, unexpired at `now_ms`.
    pub fn matching(&self, filter: &str, now_ms: u64) -> Vec<SharedMessage> {
        if !junction_topic::is_wildcard(filter) {
            return self
                .by_topic
                .get(filter)
                .filter(|m| !m.is_expired(now_ms))
                .cloned()
                .into_iter()
                .collect();
        }
        let mut out: Vec<SharedMessage> = self
            .by_topic
            .values()
            .filter(|m| !m.is_expired(now_ms) && junction_topic::matches(filter, &m.topic))
            .cloned()
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// The retained message of one topic.
    pub fn get(&self, topic: &str) -> Option<&SharedMessage> {
        self.by_topic.get(topic)
    }

    /// Remove expired messages; returns how many.
    pub fn sweep_expired(&mut self, now_ms: u64) -> usize {
        let before = self.by_topic.len();
        self.by_topic.retain(|_, m| !m.is_expired(now_ms));
        before - self.by_topic.len()
    }

    /// Every retained message.
    pub fn all(&self) -> impl Iterator<Item = &SharedMessage> {
        self.by_topic.values()
    }
}
