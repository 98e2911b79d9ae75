//! A filter's plain subscribers. Most filters in a large fleet have one (each device's own
//! command topic), and a hash map holds at least four buckets: one subscriber is kept
//! inline, a second turns the set into a map by session id.

use crate::router::Subscriber;
use junction_topic::SeededMap;

/// The plain subscribers of one filter, by session id.
#[derive(Debug, Default)]
pub enum Subscribers {
    /// None.
    #[default]
    Empty,
    /// One.
    One(Subscriber),
    /// Two or more, by session id.
    Many(SeededMap<u64, Subscriber>),
}

impl Subscribers {
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        match self {
            Subscribers::Empty => true,
            Subscribers::One(_) => false,
            Subscribers::Many(m) => m.is_empty(),
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        match self {
            Subscribers::Empty => 0,
            Subscribers::One(_) => 1,
            Subscribers::Many(m) => m.len(),
        }
    }

    /// Add or replace the subscription of `sub`'s session. True if it was there.
    pub fn insert(&mut self, sub: Subscriber) -> bool {
        match self {
            Subscribers::Empty => {
                *self = Subscribers::One(sub);
                false
            }
            Subscribers::One(one) if one.cell.id == sub.cell.id => {
                *one = sub;
                true
            }
            Subscribers::One(_) => {
                let mut m = SeededMap::default();
                if let Subscribers::One(one) = std::mem::take(self) {
                    m.insert(one.cell.id, one);
                }
                m.insert(sub.cell.id, sub);
                *self = Subscribers::Many(m);
                false
            }
            Subscribers::Many(m) => m.insert(sub.cell.id, sub).is_some(),
        }
    }

    /// Remove session `id`'s subscription. True if it was there.
    pub fn remove(&mut self, id: u64) -> bool {
        match self {
            Subscribers::One(one) if one.cell.id == id => {
                *self = Subscribers::Empty;
                true
            }
            Subscribers::Empty | Subscribers::One(_) => false,
            Subscribers::Many(m) => {
                let removed = m.remove(&id).is_some();
                if m.is_empty() {
                    *self = Subscribers::Empty;
                }
                removed
            }
        }
    }

    /// Every subscriber.
    pub fn values(&self) -> impl Iterator<Item = &Subscriber> {
        let (one, many) = match self {
            Subscribers::Empty => (None, None),
            Subscribers::One(s) => (Some(s), None),
            Subscribers::Many(m) => (None, Some(m.values())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::SessionCell;
    use junction_session::{Session, SubOptions};

    fn sub(id: u64) -> Subscriber {
        let session = Session::new(format!("c{id}").into(), Default::default(), 0);
        Subscriber {
            cell: SessionCell::new(id, "".into(), session, 10, 1 << 20, None),
            opts: SubOptions::default(),
        }
    }

    fn ids(s: &Subscribers) -> Vec<u64> {
        let mut v: Vec<u64> = s.values().map(|s| s.cell.id).collect();
        v.sort();
        v
    }

    #[test]
    fn one_subscriber_is_inline_and_a_second_makes_a_map() {
        let mut s = Subscribers::default();
        assert!(s.is_empty());
        assert!(!s.insert(sub(1)));
        assert!(matches!(s, Subscribers::One(_)));
        assert!(s.insert(sub(1)), "replacing the same session");
        assert!(!s.insert(sub(2)));
        assert!(matches!(s, Subscribers::Many(_)));
        assert_eq!((s.len(), ids(&s)), (2, vec![1, 2]));
        assert!(!s.remove(3));
        assert!(s.remove(1));
        assert!(s.remove(2));
        assert!(matches!(s, Subscribers::Empty));
        assert!(!s.insert(sub(4)));
        assert!(!s.remove(5));
        assert!(s.remove(4));
        assert!(s.is_empty() && ids(&s).is_empty());
    }
}
