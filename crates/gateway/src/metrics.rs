//! Per-gateway counters, named as EMQX names them (`bytes.received`,
//! `packets.<type>.received`, `client.connected`, `delivery.dropped.too_large`, …), in the
//! same typed system as the broker's MQTT counters ([`junction_types::metrics`]).
//!
//! Counting is one relaxed atomic add on a field, or on a slot of the protocol's frame
//! table: no lock and no lookup on the hot path. As in EMQX's `gateway-metrics` listing, a
//! counter is listed from its first increment ([`GatewayMetrics::snapshot`] leaves out the
//! ones still at zero).

use junction_types::metrics::Counter;
use std::borrow::Cow;

junction_types::counters! {
    /// The counters every gateway shares. The frame counters (`packets.<type>.*`) are the
    /// protocol's, see [`Frame`].
    pub struct GatewayCounters {
        bytes_received => "bytes.received",
        bytes_sent => "bytes.sent",
        packets_dropped => "packets.dropped",
        packets_frame_error => "packets.frame_error",
        packets_hello_verify_sent => "packets.dtls.hello_verify.sent",
        packets_publish_inuse => "packets.publish.inuse",
        packets_puback_inuse => "packets.puback.inuse",
        packets_puback_missed => "packets.puback.missed",
        packets_pubrec_inuse => "packets.pubrec.inuse",
        packets_pubrec_missed => "packets.pubrec.missed",
        packets_pubrel_missed => "packets.pubrel.missed",
        packets_pubcomp_inuse => "packets.pubcomp.inuse",
        packets_pubcomp_missed => "packets.pubcomp.missed",
        client_connect => "client.connect",
        client_authenticate => "client.authenticate",
        client_connack => "client.connack",
        client_connected => "client.connected",
        client_disconnected => "client.disconnected",
        client_authorize => "client.authorize",
        authentication_success => "authentication.success",
        authentication_success_anonymous => "authentication.success.anonymous",
        authentication_failure => "authentication.failure",
        authorization_allow => "authorization.allow",
        authorization_deny => "authorization.deny",
        client_subscribe => "client.subscribe",
        client_unsubscribe => "client.unsubscribe",
        session_created => "session.created",
        session_takenover => "session.takenover",
        session_discarded => "session.discarded",
        session_terminated => "session.terminated",
        session_subscribed => "session.subscribed",
        session_unsubscribed => "session.unsubscribed",
        messages_received => "messages.received",
        messages_delivered => "messages.delivered",
        messages_acked => "messages.acked",
        messages_dropped => "messages.dropped",
        messages_dropped_not_authorized => "messages.dropped.not_authorized",
        messages_dropped_receive_maximum => "messages.dropped.receive_maximum",
        messages_dropped_await_pubrel_timeout => "messages.dropped.await_pubrel_timeout",
        delivery_dropped => "delivery.dropped",
        delivery_dropped_too_large => "delivery.dropped.too_large",
        delivery_dropped_no_local => "delivery.dropped.no_local",
        delivery_dropped_no_subid => "delivery.dropped.no_subid",
        delivery_dropped_max_msgs => "delivery.dropped.max_msgs",
        transactions_expired => "transactions.expired",
        send_timeout => "send.timeout",
    }
}

/// A frame type of a protocol: a slot in its table of `packets.<type>.received` and
/// `packets.<type>.sent` counters. Declared with [`frame_types!`](crate::frame_types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame(usize);

impl Frame {
    /// The frame type at `index` of the protocol's name list.
    pub const fn at(index: usize) -> Frame {
        Frame(index)
    }
}

/// Declare a protocol's frame types with EMQX's type names: a module holding `NAMES` (the
/// list the gateway gives its context) and one [`Frame`] constant per type.
///
/// ```
/// junction_gateway::frame_types! {
///     /// Frame types of a line protocol.
///     pub mod frame {
///         HELLO => "hello",
///         LINE => "line",
///     }
/// }
/// assert_eq!(frame::NAMES, &["hello", "line"]);
/// assert_eq!(frame::LINE, junction_gateway::metrics::Frame::at(1));
/// ```
#[macro_export]
macro_rules! frame_types {
    ($(#[$meta:meta])* $vis:vis mod $m:ident { $( $c:ident => $n:literal ),* $(,)? }) => {
        $(#[$meta])*
        $vis mod $m {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
            #[repr(usize)]
            enum Slot { $($c),* }
            /// The type names, in slot order.
            pub const NAMES: &[&str] = &[$($n),*];
            $(
                #[doc = concat!("`packets.", $n, ".*`")]
                pub const $c: $crate::metrics::Frame = $crate::metrics::Frame::at(Slot::$c as usize);
            )*
        }
    };
}

/// The counters of one gateway: the shared ones (through `Deref`) and its frame table.
#[derive(Debug)]
pub struct GatewayMetrics {
    counters: GatewayCounters,
    /// `(packets.<type>.received, packets.<type>.sent)` per slot.
    frame_names: Box<[(String, String)]>,
    received: Box<[Counter]>,
    sent: Box<[Counter]>,
}

impl std::ops::Deref for GatewayMetrics {
    type Target = GatewayCounters;
    fn deref(&self) -> &GatewayCounters {
        &self.counters
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl GatewayMetrics {
    /// Counters for a protocol whose frame types are `frames` (its `NAMES`).
    pub fn new(frames: &[&str]) -> Self {
        GatewayMetrics {
            counters: GatewayCounters::default(),
            frame_names: frames
                .iter()
                .map(|t| (format!("packets.{t}.received"), format!("packets.{t}.sent")))
                .collect(),
            received: frames.iter().map(|_| Counter::default()).collect(),
            sent: frames.iter().map(|_| Counter::default()).collect(),
        }
    }

    /// Count one frame of type `frame` read from a client.
    #[inline]
    pub fn received(&self, frame: Frame) {
        if let Some(c) = self.received.get(frame.0) {
            c.inc();
        }
    }

    /// Count one frame of type `frame` written to a client.
    #[inline]
    pub fn sent(&self, frame: Frame) {
        if let Some(c) = self.sent.get(frame.0) {
            c.inc();
        }
    }

    /// The value of counter `name` (0 if it never moved or does not exist).
    pub fn get(&self, name: &str) -> u64 {
        if let Some(v) = self.counters.get(name) {
            return v;
        }
        self.frame_names
            .iter()
            .zip(self.received.iter().zip(self.sent.iter()))
            .find_map(|((r, s), (rc, sc))| {
                (r == name)
                    .then(|| rc.get())
                    .or_else(|| (s == name).then(|| sc.get()))
            })
            .unwrap_or(0)
    }

    /// Every frame type with its received and sent counts, in the protocol's order.
    pub fn frames(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.frame_names
            .iter()
            .zip(self.received.iter().zip(self.sent.iter()))
            .map(|((r, _), (rc, sc))| {
                let kind = r
                    .strip_prefix("packets.")
                    .and_then(|t| t.strip_suffix(".received"))
                    .unwrap_or(r);
                (kind, rc.get(), sc.get())
            })
    }

    /// Every counter that moved, sorted by name.
    pub fn snapshot(&self) -> Vec<(Cow<'static, str>, u64)> {
        let mut all: Vec<(Cow<'static, str>, u64)> = self
            .counters
            .snapshot()
            .into_iter()
            .map(|(n, v)| (Cow::Borrowed(n), v))
            .collect();
        for ((r, s), (rc, sc)) in self
            .frame_names
            .iter()
            .zip(self.received.iter().zip(self.sent.iter()))
        {
            all.push((Cow::Owned(r.clone()), rc.get()));
            all.push((Cow::Owned(s.clone()), sc.get()));
        }
        all.retain(|(_, v)| *v > 0);
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::frame_types! {
        mod frame {
            CONNECT => "connect",
            CONNACK => "connack",
        }
    }

    #[test]
    fn counters_appear_on_first_increment() {
        let m = GatewayMetrics::new(frame::NAMES);
        assert!(m.snapshot().is_empty());
        m.client_connected.inc();
        m.bytes_received.add(10);
        m.bytes_received.add(5);
        m.received(frame::CONNECT);
        m.sent(frame::CONNACK);
        m.sent(frame::CONNACK);
        assert_eq!(m.get("bytes.received"), 15);
        assert_eq!(m.get("packets.connack.sent"), 2);
        assert_eq!(m.get("packets.connack.received"), 0);
        assert_eq!(m.get("never"), 0);
        let names: Vec<(String, u64)> = m
            .snapshot()
            .into_iter()
            .map(|(n, v)| (n.into_owned(), v))
            .collect();
        assert_eq!(
            names,
            vec![
                ("bytes.received".to_owned(), 15),
                ("client.connected".to_owned(), 1),
                ("packets.connack.sent".to_owned(), 2),
                ("packets.connect.received".to_owned(), 1),
            ]
        );
    }

    #[test]
    fn a_frame_outside_the_table_is_not_counted_and_does_not_panic() {
        let m = GatewayMetrics::new(&["one"]);
        m.received(Frame::at(7));
        m.sent(Frame::at(7));
        assert!(m.snapshot().is_empty());
    }
}
