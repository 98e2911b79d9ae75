//! The one metrics system: typed counters with EMQX's names, shared by the broker's MQTT
//! counters and every gateway's.
//!
//! A counter is a field of a struct declared with [`counters!`](crate::counters): counting
//! is one relaxed atomic add on a field the caller names at compile time, with no lock and
//! no lookup. The names exist for reading (`snapshot`, the CLI, Prometheus).

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonic counter (or, for the few gauges, a value that also goes down).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Add `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtract one (gauges only).
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declare a struct of [`Counter`]s, each with its EMQX name:
///
/// ```
/// junction_types::counters! {
///     /// Example counters.
///     pub struct Example {
///         bytes_received => "bytes.received",
///         client_connected => "client.connected",
///     }
/// }
/// let m = Example::default();
/// m.bytes_received.add(10);
/// assert_eq!(m.snapshot(), vec![("bytes.received", 10), ("client.connected", 0)]);
/// assert_eq!(m.get("bytes.received"), Some(10));
/// ```
#[macro_export]
macro_rules! counters {
    ($(#[$meta:meta])* $vis:vis struct $ty:ident { $( $field:ident => $name:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        $vis struct $ty {
            $(
                #[doc = concat!("`", $name, "`")]
                pub $field: $crate::metrics::Counter,
            )*
        }

        impl $ty {
            /// Every counter's EMQX name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Every counter with its EMQX name, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( ($name, self.$field.get()), )*]
            }

            /// The value of the counter named `name`, `None` if there is none.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $( $name => Some(self.$field.get()), )*
                    _ => None,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::counters! {
        /// Two counters.
        struct Two {
            first => "a.first",
            second => "a.second",
        }
    }

    #[test]
    fn counters_count_and_read_by_name() {
        let t = Two::default();
        t.first.inc();
        t.second.add(5);
        t.second.dec();
        assert_eq!(t.snapshot(), vec![("a.first", 1), ("a.second", 4)]);
        assert_eq!(t.get("a.second"), Some(4));
        assert_eq!(t.get("a.third"), None);
        assert_eq!(Two::NAMES, &["a.first", "a.second"]);
    }
}
