//! Per-gateway counters, named as EMQX names them (`bytes.received`,
//! `packets.<type>.received`, `client.connected`, `delivery.dropped.too_large`, …).
//!
//! A counter exists from its first increment, as in EMQX's `gateway-metrics` listing. The
//! names are `&'static str` chosen by the code, never by the network, so the set is bounded.

use ahash::AHashMap;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The counters of one gateway.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    counters: RwLock<AHashMap<&'static str, Arc<AtomicU64>>>,
}

impl GatewayMetrics {
    /// Add `n` to counter `name`, creating it at 0 first if needed.
    pub fn add(&self, name: &'static str, n: u64) {
        if let Some(c) = self.counters.read().get(name) {
            c.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.counters
            .write()
            .entry(name)
            .or_default()
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Add one to counter `name`.
    pub fn inc(&self, name: &'static str) {
        self.add(name, 1);
    }

    /// The value of a counter (0 if it never moved).
    pub fn get(&self, name: &str) -> u64 {
        self.counters
            .read()
            .get(name)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every counter that moved, sorted by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut all: Vec<(&'static str, u64)> = self
            .counters
            .read()
            .iter()
            .map(|(k, v)| (*k, v.load(Ordering::Relaxed)))
            .collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_on_first_increment() {
        let m = GatewayMetrics::default();
        assert!(m.snapshot().is_empty());
        m.inc("client.connected");
        m.add("bytes.received", 10);
        m.add("bytes.received", 5);
        assert_eq!(m.get("bytes.received"), 15);
        assert_eq!(m.get("never"), 0);
        assert_eq!(
            m.snapshot(),
            vec![("bytes.received", 15), ("client.connected", 1)]
        );
    }
}
