//! A trie node's children by literal level, sized for the common shapes: most nodes of a
//! large trie have one child (`devices/<id>/cmd`, `lwm2m/<ep>/dn/#`: every level under a
//! per-client level leads to one place), and a hash map holds at least four buckets.

use crate::SeededMap;

/// Children by level: none, one (boxed with its level), or a map.
#[derive(Debug, Default)]
pub(crate) enum Children<N> {
    #[default]
    Empty,
    One(Box<(Box<str>, N)>),
    Many(SeededMap<Box<str>, N>),
}

impl<N: Default> Children<N> {
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Children::Empty => 0,
            Children::One(_) => 1,
            Children::Many(m) => m.len(),
        }
    }

    pub(crate) fn get(&self, level: &str) -> Option<&N> {
        match self {
            Children::Empty => None,
            Children::One(one) => (*one.0 == *level).then_some(&one.1),
            Children::Many(m) => m.get(level),
        }
    }

    pub(crate) fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        match self {
            Children::Empty => None,
            Children::One(one) => (*one.0 == *level).then_some(&mut one.1),
            Children::Many(m) => m.get_mut(level),
        }
    }

    /// The child at `level`, made empty if absent.
    pub(crate) fn get_or_insert(&mut self, level: &str) -> &mut N {
        let grow = match self {
            Children::Empty => {
                *self = Children::One(Box::new((level.into(), N::default())));
                false
            }
            Children::One(one) => *one.0 != *level,
            Children::Many(_) => false,
        };
        if grow {
            if let Children::One(one) = std::mem::take(self) {
                let (k, n) = *one;
                let mut m = SeededMap::default();
                m.insert(k, n);
                *self = Children::Many(m);
            }
        }
        match self {
            Children::One(one) => &mut one.1,
            Children::Many(m) => m.entry(level.into()).or_default(),
            // Made `One` above when it was empty.
            Children::Empty => unreachable!("a child was just inserted"),
        }
    }

    /// Detach the child at `level`.
    pub(crate) fn remove(&mut self, level: &str) -> Option<N> {
        match self {
            Children::Empty => None,
            Children::One(one) if *one.0 == *level => match std::mem::take(self) {
                Children::One(one) => Some(one.1),
                _ => None,
            },
            Children::One(_) => None,
            Children::Many(m) => {
                let removed = m.remove(level);
                if m.is_empty() {
                    // An emptied map keeps its buckets: give them back.
                    *self = Children::Empty;
                }
                removed
            }
        }
    }

    /// Move every child out into `into`.
    pub(crate) fn drain_into(&mut self, into: &mut Vec<N>) {
        match std::mem::take(self) {
            Children::Empty => {}
            Children::One(one) => into.push(one.1),
            Children::Many(m) => into.extend(m.into_values()),
        }
    }

    /// Every (level, child).
    pub(crate) fn for_each<'a>(&'a self, mut f: impl FnMut(&'a str, &'a N)) {
        match self {
            Children::Empty => {}
            Children::One(one) => f(&one.0, &one.1),
            Children::Many(m) => m.iter().for_each(|(k, n)| f(k, n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_grow_from_none_to_one_to_a_map_and_shrink_back() {
        let mut c: Children<u32> = Children::default();
        assert!(c.is_empty());
        *c.get_or_insert("a") = 1;
        assert!(matches!(c, Children::One(_)));
        *c.get_or_insert("a") += 1;
        assert_eq!(c.get("a"), Some(&2));
        assert_eq!(c.get("b"), None);
        *c.get_or_insert("b") = 3;
        assert!(matches!(c, Children::Many(_)));
        assert_eq!((c.len(), c.get("a"), c.get("b")), (2, Some(&2), Some(&3)));
        assert_eq!(c.remove("a"), Some(2));
        assert_eq!(c.remove("a"), None);
        assert_eq!(c.remove("b"), Some(3));
        assert!(matches!(c, Children::Empty));
        *c.get_or_insert("x") = 9;
        assert_eq!(c.remove("y"), None);
        let mut out = Vec::new();
        c.drain_into(&mut out);
        assert_eq!(out, vec![9]);
        assert!(c.is_empty());
    }
}
