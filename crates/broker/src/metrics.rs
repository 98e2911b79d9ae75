//! Broker-wide counters and gauges, named as EMQX names them (`messages.received`, …).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! metrics {
    ($( $field:ident => $name:literal ),* $(,)?) => {
        /// Broker-wide counters. Every field is a monotonically increasing count unless its
        /// name says otherwise; read them with [`Metrics::snapshot`].
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(
                #[doc = concat!("`", $name, "`")]
                pub $field: AtomicU64,
            )*
        }

        impl Metrics {
            /// Every counter with its EMQX name, in a stable order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( ($name, self.$field.load(Ordering::Relaxed)), )*]
            }
        }
    };
}

metrics! {
    bytes_received => "bytes.received",
    bytes_sent => "bytes.sent",
    packets_received => "packets.received",
    packets_sent => "packets.sent",
    packets_connect => "packets.connect.received",
    packets_connack_sent => "packets.connack.sent",
    packets_connack_error => "packets.connack.error",
    packets_publish_received => "packets.publish.received",
    packets_publish_sent => "packets.publish.sent",
    packets_publish_error => "packets.publish.error",
    packets_publish_dropped => "packets.publish.dropped",
    packets_subscribe_received => "packets.subscribe.received",
    packets_subscribe_error => "packets.subscribe.error",
    packets_unsubscribe_received => "packets.unsubscribe.received",
    packets_pingreq_received => "packets.pingreq.received",
    packets_disconnect_received => "packets.disconnect.received",
    packets_disconnect_sent => "packets.disconnect.sent",
    messages_received => "messages.received",
    messages_sent => "messages.sent",
    messages_qos0_received => "messages.qos0.received",
    messages_qos1_received => "messages.qos1.received",
    messages_qos2_received => "messages.qos2.received",
    messages_qos0_sent => "messages.qos0.sent",
    messages_qos1_sent => "messages.qos1.sent",
    messages_qos2_sent => "messages.qos2.sent",
    messages_publish => "messages.publish",
    messages_delivered => "messages.delivered",
    messages_acked => "messages.acked",
    messages_dropped => "messages.dropped",
    messages_dropped_no_subscribers => "messages.dropped.no_subscribers",
    messages_dropped_expired => "messages.dropped.expired",
    messages_dropped_queue_full => "delivery.dropped.queue_full",
    messages_dropped_qos0_offline => "delivery.dropped.qos0_msg",
    messages_dropped_too_large => "delivery.dropped.too_large",
    messages_dropped_await_pubrel_timeout => "messages.dropped.await_pubrel_timeout",
    messages_dropped_not_authorized => "messages.dropped.not_authorized",
    messages_retained => "messages.retained",
    client_connect => "client.connect",
    client_connected => "client.connected",
    client_connack => "client.connack",
    client_disconnected => "client.disconnected",
    client_auth_anonymous => "client.auth.anonymous",
    session_created => "session.created",
    session_resumed => "session.resumed",
    session_takenover => "session.takenover",
    session_discarded => "session.discarded",
    session_terminated => "session.terminated",
    connections_count => "connections.count",
    send_timeout => "send.timeout",
}

impl Metrics {
    /// Add `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Add one to a counter.
    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtract one from a gauge.
    #[inline]
    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}
