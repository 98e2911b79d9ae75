//! The router: which sessions subscribe to which filters, including shared subscriptions.

use crate::cell::SessionCell;
use crate::subscribers::Subscribers;
use junction_session::SubOptions;
use junction_topic::{SeededMap, Trie};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How a message for a shared subscription picks one member of the group
/// (`mqtt.shared_subscription_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Each member in turn.
    #[default]
    RoundRobin,
    /// Each member in turn, one counter per group (same as round_robin here).
    RoundRobinPerGroup,
    /// A random member.
    Random,
    /// The same member until it leaves.
    Sticky,
    /// Local members first (one node: same as random).
    Local,
    /// A member chosen by a hash of the publisher's client id.
    HashClientid,
    /// A member chosen by a hash of the topic.
    HashTopic,
}

/// One subscriber of a filter.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The session.
    pub cell: Arc<SessionCell>,
    /// Its options.
    pub opts: SubOptions,
}

/// A share group of a filter.
#[derive(Debug, Default)]
pub struct ShareGroup {
    /// Members in join order.
    pub members: Vec<Subscriber>,
    next: AtomicUsize,
    sticky: AtomicU64,
}

/// Everything subscribed to one filter.
#[derive(Debug, Default)]
pub struct FilterEntry {
    /// Plain subscribers by session id.
    pub subscribers: Subscribers,
    /// Share groups by name.
    pub groups: SeededMap<Box<str>, ShareGroup>,
}

impl FilterEntry {
    fn is_empty(&self) -> bool {
        self.subscribers.is_empty() && self.groups.is_empty()
    }
}

/// The subscription table.
#[derive(Debug, Default)]
pub struct Router {
    trie: Trie<FilterEntry>,
    subscriptions: usize,
}

fn hash_str(s: &str) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
    h.write(s.as_bytes());
    h.finish() as usize
}

impl Router {
    /// Number of distinct filters (topics.count).
    pub fn filter_count(&self) -> usize {
        self.trie.len()
    }

    /// Number of subscriptions (subscriptions.count).
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// Add or replace a subscription. Returns true if it already existed.
    pub fn add(&mut self, filter: &str, group: Option<&str>, sub: Subscriber) -> bool {
        let entry = self.trie.entry(filter);
        let existed = match group {
            None => entry.subscribers.insert(sub),
            Some(g) => {
                let group = entry.groups.entry(g.into()).or_default();
                match group.members.iter_mut().find(|m| m.cell.id == sub.cell.id) {
                    Some(m) => {
                        *m = sub;
                        true
                    }
                    None => {
                        group.members.push(sub);
                        false
                    }
                }
            }
        };
        if !existed {
            self.subscriptions += 1;
        }
        existed
    }

    /// Remove a subscription of session `session_id`. Returns true if it existed.
    pub fn remove(&mut self, filter: &str, group: Option<&str>, session_id: u64) -> bool {
        let Some(entry) = self.trie.get_mut(filter) else {
            return false;
        };
        let removed = match group {
            None => entry.subscribers.remove(session_id),
            Some(g) => match entry.groups.get_mut(g) {
                Some(grp) => {
                    let before = grp.members.len();
                    grp.members.retain(|m| m.cell.id != session_id);
                    let removed = grp.members.len() != before;
                    if grp.members.is_empty() {
                        entry.groups.remove(g);
                    }
                    removed
                }
                None => false,
            },
        };
        if entry.is_empty() {
            self.trie.remove(filter);
        }
        if removed {
            self.subscriptions -= 1;
        }
        removed
    }

    /// Call `f` for every subscription that should receive a message on `topic`: every plain
    /// subscriber of every matching filter, and one member of every matching share group.
    pub fn route(
        &self,
        topic: &str,
        publisher: &str,
        strategy: SharedStrategy,
        mut f: impl FnMut(&Subscriber, bool),
    ) {
        self.trie.for_each_match(topic, |entry| {
            for sub in entry.subscribers.values() {
                f(sub, false);
            }
            for group in entry.groups.values() {
                if let Some(sub) = pick(group, topic, publisher, strategy) {
                    f(sub, true);
                }
            }
        });
    }

    /// Every filter with its plain subscriber count and group count.
    pub fn for_each_filter(&self, mut f: impl FnMut(&str, &FilterEntry)) {
        self.trie.for_each(|filter, entry| f(filter, entry));
    }
}

/// Choose the member of a share group that gets this message. Members whose client is
/// connected are preferred; an offline member is chosen only if no member is online.
fn pick<'a>(
    group: &'a ShareGroup,
    topic: &str,
    publisher: &str,
    strategy: SharedStrategy,
) -> Option<&'a Subscriber> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = match strategy {
        SharedStrategy::RoundRobin | SharedStrategy::RoundRobinPerGroup => {
            group.next.fetch_add(1, Ordering::Relaxed) % n
        }
        SharedStrategy::Random | SharedStrategy::Local => rand::random_range(0..n),
        SharedStrategy::HashClientid => hash_str(publisher) % n,
        SharedStrategy::HashTopic => hash_str(topic) % n,
        SharedStrategy::Sticky => {
            let want = group.sticky.load(Ordering::Relaxed);
            match group
                .members
                .iter()
                .position(|m| m.cell.id == want && m.cell.is_online())
            {
                Some(i) => i,
                None => rand::random_range(0..n),
            }
        }
    };
    let chosen = (0..n)
        .map(|k| &group.members[(start + k) % n])
        .find(|m| m.cell.is_online())
        .unwrap_or(&group.members[start]);
    if strategy == SharedStrategy::Sticky {
        group.sticky.store(chosen.cell.id, Ordering::Relaxed);
    }
    Some(chosen)
}
