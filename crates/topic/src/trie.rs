//! A trie of topic filters, one node per level, for routing a topic name to every filter
//! that matches it without scanning all filters.
//!
//! Nothing here recurses: a filter's depth comes from the network, and a filter of 65,000
//! `/` levels must not overflow a stack when it is inserted, matched, removed, visited or
//! dropped. Walks keep their own stack on the heap (inline for the common shallow case).

use crate::children::Children;
use smallvec::SmallVec;

/// A map from topic filters to values of type `T`, searchable by topic name.
#[derive(Debug)]
pub struct Trie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    /// Children by literal level.
    children: Children<Node<T>>,
    /// Child for a `+` level.
    plus: Option<Box<Node<T>>>,
    /// Value of a filter ending in `#` at this point. Values are boxed: a node is stored
    /// inline in its parent's map, whose buckets (at least four) would otherwise each
    /// hold two values' room, filled or not.
    hash: Option<Box<T>>,
    /// Value of a filter ending exactly here.
    value: Option<Box<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: Children::default(),
            plus: None,
            hash: None,
            value: None,
        }
    }
}

impl<T> Node<T> {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.value.is_none()
    }

    /// True if the node holds nothing but possibly the one child at `level`.
    fn only_leads_to(&self, level: &str) -> bool {
        self.hash.is_none()
            && self.value.is_none()
            && if level == "+" {
                self.children.is_empty()
            } else {
                self.plus.is_none() && self.children.len() == 1
            }
    }

    fn child(&self, level: &str) -> Option<&Node<T>> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<T>> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level)
        }
    }

    /// Detach the child at `level` (dropped by the caller, without recursion).
    fn take_child(&mut self, level: &str) -> Option<Node<T>> {
        if level == "+" {
            self.plus.take().map(|b| *b)
        } else {
            self.children.remove(level)
        }
    }
}

impl<T> Drop for Node<T> {
    /// Frees the subtree with a heap stack: the default drop glue recurses once per level.
    fn drop(&mut self) {
        if self.children.is_empty() && self.plus.is_none() {
            return;
        }
        let mut stack: Vec<Node<T>> = Vec::new();
        self.children.drain_into(&mut stack);
        stack.extend(self.plus.take().map(|b| *b));
        while let Some(mut node) = stack.pop() {
            node.children.drain_into(&mut stack);
            stack.extend(node.plus.take().map(|b| *b));
            // `node` now has no children: its drop returns at once.
        }
    }
}

impl<T> Default for Trie<T> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }
}

/// Split a filter into its path levels and whether it ends in `#`.
fn path_of(filter: &str) -> (SmallVec<[&str; 16]>, bool) {
    let mut levels: SmallVec<[&str; 16]> = filter.split('/').collect();
    let hash = levels.last() == Some(&"#");
    if hash {
        levels.pop();
    }
    (levels, hash)
}

impl<T> Trie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of filters with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no filter has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value for `filter`, inserting `T::default()` if absent. The filter must be valid.
    pub fn entry(&mut self, filter: &str) -> &mut T
    where
        T: Default,
    {
        let (levels, hash) = path_of(filter);
        let mut node = &mut self.root;
        for level in levels {
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.get_or_insert(level)
            };
        }
        let slot = if hash {
            &mut node.hash
        } else {
            &mut node.value
        };
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(Box::default)
    }

    /// The value for exactly `filter`, if any.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let (levels, hash) = path_of(filter);
        let mut node = &mut self.root;
        for level in levels {
            node = node.child_mut(level)?;
        }
        if hash {
            node.hash.as_deref_mut()
        } else {
            node.value.as_deref_mut()
        }
    }

    /// The value for exactly `filter`, if any.
    pub fn get(&self, filter: &str) -> Option<&T> {
        let (levels, hash) = path_of(filter);
        let mut node = &self.root;
        for level in levels {
            node = node.child(level)?;
        }
        if hash {
            node.hash.as_deref()
        } else {
            node.value.as_deref()
        }
    }

    /// Remove the value for `filter` and prune empty nodes; returns the removed value.
    pub fn remove(&mut self, filter: &str) -> Option<T> {
        let (levels, hash) = path_of(filter);
        // First pass, read-only: does the filter exist, and from which node down is
        // the path left empty once its value goes? `prune_from` is the depth of the
        // deepest node that must stay; its child on the path is cut off whole.
        let mut node = &self.root;
        let mut prune_from = 0;
        for (depth, level) in levels.iter().enumerate() {
            if !node.only_leads_to(level) {
                prune_from = depth;
            }
            node = node.child(level)?;
        }
        let leaf_keeps_something = if hash {
            node.hash.as_ref()?;
            node.value.is_some() || node.plus.is_some() || !node.children.is_empty()
        } else {
            node.value.as_ref()?;
            node.hash.is_some() || node.plus.is_some() || !node.children.is_empty()
        };
        self.len -= 1;
        if leaf_keeps_something || levels.is_empty() {
            let mut node = &mut self.root;
            for level in levels.iter() {
                node = node.child_mut(level)?;
            }
            let value = if hash {
                node.hash.take()
            } else {
                node.value.take()
            };
            return value.map(|b| *b);
        }
        // Second pass: detach the now useless branch below `prune_from`, then take the
        // value out of its deepest node. The branch's remaining nodes are empty and are
        // freed by `Node::drop` without recursion.
        let mut node = &mut self.root;
        for level in &levels[..prune_from] {
            node = node.child_mut(level)?;
        }
        let mut branch = node.take_child(levels[prune_from])?;
        let mut leaf = &mut branch;
        for level in &levels[prune_from + 1..] {
            leaf = leaf.child_mut(level)?;
        }
        let value = if hash {
            leaf.hash.take()
        } else {
            leaf.value.take()
        };
        value.map(|b| *b)
    }

    /// Call `f(filter_value)` for every filter that matches topic `name`.
    ///
    /// Names starting with `$` are not matched by a leading `+` or `#` [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, name: &str, mut f: impl FnMut(&'a T)) {
        let levels: SmallVec<[&str; 16]> = name.split('/').collect();
        let dollar = name.starts_with('$');
        // (node, depth of the node = levels consumed)
        let mut stack: SmallVec<[(&'a Node<T>, usize); 16]> = SmallVec::new();
        stack.push((&self.root, 0));
        while let Some((node, depth)) = stack.pop() {
            let skip_wild = dollar && depth == 0;
            if !skip_wild {
                // `a/#` also matches `a` itself [MQTT-4.7.1-2].
                if let Some(v) = &node.hash {
                    f(v);
                }
            }
            match levels.get(depth) {
                None => {
                    if let Some(v) = &node.value {
                        f(v);
                    }
                }
                Some(level) => {
                    if let Some(c) = node.children.get(level) {
                        stack.push((c, depth + 1));
                    }
                    if !skip_wild {
                        if let Some(p) = &node.plus {
                            stack.push((p, depth + 1));
                        }
                    }
                }
            }
        }
    }

    /// Visit every (filter, value) pair.
    pub fn for_each(&self, mut f: impl FnMut(&str, &T)) {
        // (node, its depth, the length of `path` at its parent, the level that leads to it)
        let mut stack: Vec<(&Node<T>, usize, usize, &str)> = vec![(&self.root, 0, 0, "")];
        let mut path = String::new();
        while let Some((node, depth, base, level)) = stack.pop() {
            path.truncate(base);
            if depth > 1 {
                path.push('/');
            }
            path.push_str(level);
            let here = path.len();
            if let Some(v) = &node.value {
                f(&path, v);
            }
            if let Some(v) = &node.hash {
                if depth > 0 {
                    path.push('/');
                }
                path.push('#');
                f(&path, v);
                path.truncate(here);
            }
            if let Some(p) = &node.plus {
                stack.push((p, depth + 1, here, "+"));
            }
            node.children
                .for_each(|l, child| stack.push((child, depth + 1, here, l)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matches;
    use proptest::prelude::*;

    fn matched(trie: &Trie<String>, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        trie.for_each_match(name, |v| out.push(v.clone()));
        out.sort();
        out
    }

    #[test]
    fn trie_finds_all_matching_filters() {
        let mut t: Trie<String> = Trie::new();
        for f in ["a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "$SYS/#", "+"] {
            *t.entry(f) = f.to_string();
        }
        assert_eq!(matched(&t, "a/b"), vec!["#", "+/b", "a/#", "a/+", "a/b"]);
        assert_eq!(matched(&t, "a"), vec!["#", "+", "a/#"]);
        assert_eq!(matched(&t, "$SYS/x"), vec!["$SYS/#"]);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut t: Trie<u32> = Trie::new();
        *t.entry("a/+/c") = 1;
        *t.entry("a/#") = 2;
        assert_eq!(t.remove("a/+/c"), Some(1));
        assert_eq!(t.remove("a/+/c"), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove("a/#"), Some(2));
        assert!(t.root.is_empty());
    }

    #[test]
    fn for_each_reconstructs_filters() {
        let mut t: Trie<u32> = Trie::new();
        let filters = ["a/b", "a/+", "#", "+/x/#", "/lead", "a//b"];
        for (i, f) in filters.iter().enumerate() {
            *t.entry(f) = i as u32;
        }
        let mut seen = Vec::new();
        t.for_each(|f, v| seen.push((f.to_string(), *v)));
        seen.sort();
        let mut want: Vec<_> = filters
            .iter()
            .enumerate()
            .map(|(i, f)| (f.to_string(), i as u32))
            .collect();
        want.sort();
        assert_eq!(seen, want);
    }

    /// Far deeper than any thread's stack allows with one frame per level.
    const DEEP: usize = 200_000;

    #[test]
    fn a_filter_deeper_than_any_stack_is_inserted_matched_visited_removed_and_dropped() {
        let deep_filter = "/".repeat(DEEP);
        let deep_wild = format!("{}#", "+/".repeat(DEEP));
        let mut t: Trie<u32> = Trie::new();
        *t.entry(&deep_filter) = 1;
        *t.entry(&deep_wild) = 2;
        *t.entry("a/b") = 3;
        let mut hits = Vec::new();
        t.for_each_match(&deep_filter, |v| hits.push(*v));
        hits.sort();
        assert_eq!(hits, vec![1, 2]);
        let mut seen = 0;
        t.for_each(|_, _| seen += 1);
        assert_eq!(seen, 3);
        assert_eq!(t.remove(&deep_filter), Some(1));
        assert_eq!(t.get(&deep_wild), Some(&2));
        // The deep `+` chain is dropped with the trie.
        drop(t);

        let mut t: Trie<u32> = Trie::new();
        *t.entry(&deep_wild) = 2;
        assert_eq!(t.remove(&deep_wild), Some(2));
        assert!(t.root.is_empty());
    }

    #[test]
    fn remove_keeps_the_nodes_other_filters_still_use() {
        let mut t: Trie<u32> = Trie::new();
        for (i, f) in ["a/b/c/d", "a/b", "a/b/#", "a/+/c", "#"].iter().enumerate() {
            *t.entry(f) = i as u32;
        }
        assert_eq!(t.remove("a/b/c/d"), Some(0));
        assert_eq!(t.get("a/b"), Some(&1));
        assert_eq!(t.get("a/b/#"), Some(&2));
        assert_eq!(t.remove("a/b"), Some(1));
        assert_eq!(t.get("a/b/#"), Some(&2));
        assert_eq!(t.remove("a/b/#"), Some(2));
        assert!(t.root.children.get("a").unwrap().children.is_empty());
        assert_eq!(t.remove("#"), Some(4));
        assert_eq!(t.remove("a/+/c"), Some(3));
        assert!(t.root.is_empty());
        assert_eq!(t.len(), 0);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("".to_string()),
            Just("$x".to_string())
        ]
    }

    fn filter_level() -> impl Strategy<Value = String> {
        prop_oneof![level(), Just("+".to_string())]
    }

    proptest! {
        #[test]
        fn trie_agrees_with_matches(
            filters in proptest::collection::vec(
                (proptest::collection::vec(filter_level(), 1..4), any::<bool>()), 1..8),
            name in proptest::collection::vec(level(), 1..5),
        ) {
            let name = name.join("/");
            let mut t: Trie<String> = Trie::new();
            let mut all = Vec::new();
            for (levels, hash) in filters {
                let mut f = levels.join("/");
                if hash { f.push_str("/#"); }
                *t.entry(&f) = f.clone();
                all.push(f);
            }
            all.sort();
            all.dedup();
            let want: Vec<String> = all.into_iter().filter(|f| matches(f, &name)).collect();
            prop_assert_eq!(matched(&t, &name), want);
        }

        #[test]
        fn removing_filters_leaves_what_inserting_the_rest_builds(
            filters in proptest::collection::vec(
                (proptest::collection::vec(filter_level(), 1..5), any::<bool>()), 1..10),
            keep in proptest::collection::vec(any::<bool>(), 10),
        ) {
            let filters: Vec<String> = filters.into_iter().map(|(levels, hash)| {
                let mut f = levels.join("/");
                if hash { f.push_str("/#"); }
                f
            }).collect();
            let mut t: Trie<String> = Trie::new();
            for f in &filters { *t.entry(f) = f.clone(); }
            for (i, f) in filters.iter().enumerate() {
                if !keep[i] { t.remove(f); }
            }
            // A filter stays when none of its copies was removed.
            let mut kept: Vec<String> = filters.iter().enumerate()
                .filter(|(_, f)| filters.iter().zip(&keep).all(|(g, k)| g != *f || *k))
                .map(|(_, f)| f.clone())
                .collect();
            kept.sort();
            kept.dedup();
            let mut seen = Vec::new();
            t.for_each(|f, v| { assert_eq!(f, v); seen.push(f.to_string()); });
            seen.sort();
            prop_assert_eq!(&seen, &kept);
            prop_assert_eq!(t.len(), kept.len());
            for f in &filters { t.remove(f); }
            prop_assert!(t.root.is_empty());
            prop_assert_eq!(t.len(), 0);
        }
    }
}
