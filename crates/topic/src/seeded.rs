//! A hasher state that costs a map nothing: `ahash`'s `RandomState` is 32 bytes in every
//! map that holds one, and the broker keeps a map in every trie node and every filter's
//! subscriber list. [`Seeded`] takes its keys from one process-wide random state instead,
//! so keys that come from the network (topic levels) still cannot be chosen to collide.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// The process-wide `ahash` state, as a zero-sized `BuildHasher`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seeded;

impl BuildHasher for Seeded {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
        STATE.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

/// A `HashMap` hashed with [`Seeded`]: 32 bytes where an `AHashMap` is 64.
pub type SeededMap<K, V> = HashMap<K, V, Seeded>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash_of(s: &str) -> u64 {
        Seeded.hash_one(s)
    }

    #[test]
    fn one_key_hashes_the_same_from_every_map_and_the_map_is_half_the_size() {
        assert_eq!(hash_of("a/b"), hash_of("a/b"));
        assert_ne!(hash_of("a/b"), hash_of("a/c"));
        assert_eq!(std::mem::size_of::<Seeded>(), 0);
        assert!(
            std::mem::size_of::<SeededMap<u64, u64>>()
                < std::mem::size_of::<ahash::AHashMap<u64, u64>>()
        );
        let mut m: SeededMap<&str, u32> = SeededMap::default();
        m.insert("x", 1);
        assert_eq!(m.get("x"), Some(&1));
    }
}
