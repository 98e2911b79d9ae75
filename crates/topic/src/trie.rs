//! A trie of topic filters, one node per level, for routing a topic name to every filter
//! that matches it without scanning all filters.

use ahash::AHashMap;

/// A map from topic filters to values of type `T`, searchable by topic name.
#[derive(Debug)]
pub struct Trie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    /// Children by literal level.
    children: AHashMap<Box<str>, Node<T>>,
    /// Child for a `+` level.
    plus: Option<Box<Node<T>>>,
    /// Value of a filter ending in `#` at this point.
    hash: Option<T>,
    /// Value of a filter ending exactly here.
    value: Option<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: AHashMap::new(),
            plus: None,
            hash: None,
            value: None,
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.value.is_none()
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
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                if node.hash.is_none() {
                    self.len += 1;
                }
                return node.hash.get_or_insert_with(T::default);
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        if node.value.is_none() {
            self.len += 1;
        }
        node.value.get_or_insert_with(T::default)
    }

    /// The value for exactly `filter`, if any.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.as_mut();
            }
            node = if level == "+" {
                node.plus.as_deref_mut()?
            } else {
                node.children.get_mut(level)?
            };
        }
        node.value.as_mut()
    }

    /// The value for exactly `filter`, if any.
    pub fn get(&self, filter: &str) -> Option<&T> {
        let mut node = &self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return node.hash.as_ref();
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        node.value.as_ref()
    }

    /// Remove the value for `filter` and prune empty nodes; returns the removed value.
    pub fn remove(&mut self, filter: &str) -> Option<T> {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Call `f(filter_value)` for every filter that matches topic `name`.
    ///
    /// Names starting with `$` are not matched by a leading `+` or `#` [MQTT-4.7.2-1].
    pub fn for_each_match<'a>(&'a self, name: &str, mut f: impl FnMut(&'a T)) {
        let levels: smallvec_levels::Levels<'_> = smallvec_levels::Levels::new(name);
        let dollar = name.starts_with('$');
        match_node(&self.root, levels.as_slice(), dollar, &mut f);
    }

    /// Visit every (filter, value) pair.
    pub fn for_each(&self, mut f: impl FnMut(&str, &T)) {
        let mut path = String::new();
        walk(&self.root, &mut path, 0, &mut f);
    }
}

fn walk<T>(node: &Node<T>, path: &mut String, depth: usize, f: &mut impl FnMut(&str, &T)) {
    if let Some(v) = &node.value {
        f(path, v);
    }
    let base = path.len();
    let push = |path: &mut String, level: &str| {
        if depth > 0 {
            path.push('/');
        }
        path.push_str(level);
    };
    if let Some(v) = &node.hash {
        push(path, "#");
        f(path, v);
        path.truncate(base);
    }
    if let Some(p) = &node.plus {
        push(path, "+");
        walk(p, path, depth + 1, f);
        path.truncate(base);
    }
    for (level, child) in &node.children {
        push(path, level);
        walk(child, path, depth + 1, f);
        path.truncate(base);
    }
}

fn remove_at<T>(node: &mut Node<T>, levels: &[&str]) -> Option<T> {
    match levels {
        [] => node.value.take(),
        ["#"] => node.hash.take(),
        [first, rest @ ..] => {
            if *first == "+" {
                let child = node.plus.as_deref_mut()?;
                let removed = remove_at(child, rest);
                if child.is_empty() {
                    node.plus = None;
                }
                removed
            } else {
                let child = node.children.get_mut(*first)?;
                let removed = remove_at(child, rest);
                if child.is_empty() {
                    node.children.remove(*first);
                }
                removed
            }
        }
    }
}

fn match_node<'a, T>(
    node: &'a Node<T>,
    levels: &[&str],
    skip_wild: bool,
    f: &mut impl FnMut(&'a T),
) {
    if !skip_wild {
        // `a/#` also matches `a` itself [MQTT-4.7.1-2].
        if let Some(v) = &node.hash {
            f(v);
        }
    }
    match levels.split_first() {
        None => {
            if let Some(v) = &node.value {
                f(v);
            }
        }
        Some((first, rest)) => {
            if !skip_wild {
                if let Some(p) = &node.plus {
                    match_node(p, rest, false, f);
                }
            }
            if let Some(c) = node.children.get(*first) {
                match_node(c, rest, false, f);
            }
        }
    }
}

/// Splitting a topic into levels without allocating for the common short topics.
mod smallvec_levels {
    const INLINE: usize = 16;

    // Lives on the stack for one lookup; the inline variant is the point.
    #[allow(clippy::large_enum_variant)]
    pub(crate) enum Levels<'a> {
        Inline([&'a str; INLINE], usize),
        Heap(Vec<&'a str>),
    }

    impl<'a> Levels<'a> {
        pub(crate) fn new(name: &'a str) -> Self {
            let mut arr = [""; INLINE];
            let mut n = 0;
            for level in name.split('/') {
                if n == INLINE {
                    return Levels::Heap(name.split('/').collect());
                }
                arr[n] = level;
                n += 1;
            }
            Levels::Inline(arr, n)
        }

        pub(crate) fn as_slice(&self) -> &[&'a str] {
            match self {
                Levels::Inline(arr, n) => &arr[..*n],
                Levels::Heap(v) => v,
            }
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
    }
}
