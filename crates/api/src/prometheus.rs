//! `GET /prometheus/stats`: the node's counters in the Prometheus text format (0.0.4).
//!
//! MQTT's figures are EMQX's families (`emqx_messages_received`, `emqx_connections_count`,
//! …): the broker's counters, `.` turned into `_`. Beyond EMQX, every gateway's counters
//! (reference §4.1) are families with a `gateway` label, `junction_gateway_<counter>`,
//! and its frames `junction_gateway_packets_received|sent{gateway, type}`, so each
//! protocol's traffic is visible. Every value is read from a counter the traffic moves;
//! nothing is recomputed per scrape beyond the few table sizes EMQX also reports
//! (sessions, topics, subscriptions, retained messages).

use crate::ApiState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use junction_broker::Metrics;
use junction_gateway::metrics::GatewayCounters;
use junction_gateway::GatewayCtx;
use std::fmt::Write;
use std::sync::Arc;

/// The text format's writer: a family's `# TYPE` line, then its samples.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the text format quotes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `a.b.c` as a metric name part, `a_b_c`.
fn metric_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Counters of the broker that are gauges.
const BROKER_GAUGES: &[&str] = &["connections.count"];

fn broker(text: &mut Text, m: &Metrics, state: &ApiState) {
    // Counters first, then the gauges.
    for (name, value) in m.snapshot() {
        if BROKER_GAUGES.contains(&name) {
            continue;
        }
        let metric = format!("emqx_{}", metric_name(name));
        text.family(&metric, "counter", &format!("MQTT: {name}"));
        text.sample(&metric, &[], value);
    }
    let b = state.mqtt.broker_stats();
    let connections = m.connections_count.get();
    let gauges: [(&str, &str, u64); 6] = [
        ("emqx_connections_count", "MQTT connections", connections),
        (
            "emqx_live_connections_count",
            "MQTT connections alive",
            connections,
        ),
        (
            "emqx_sessions_count",
            "Sessions, online and offline, of every protocol",
            b.sessions as u64,
        ),
        (
            "emqx_topics_count",
            "Distinct subscribed filters",
            b.topics as u64,
        ),
        (
            "emqx_subscriptions_count",
            "Subscriptions of every protocol",
            b.subscriptions as u64,
        ),
        (
            "emqx_retained_count",
            "Retained messages",
            b.retained as u64,
        ),
    ];
    for (metric, help, value) in gauges {
        text.family(metric, "gauge", help);
        text.sample(metric, &[], value);
    }
}

fn gateways(text: &mut Text, all: &[(&'static str, Arc<GatewayCtx>)]) {
    if all.is_empty() {
        return;
    }
    let metric = "junction_gateway_connections_count";
    text.family(metric, "gauge", "Connected clients of a gateway");
    for (name, ctx) in all {
        text.sample(metric, &[("gateway", name)], ctx.clients.len() as u64);
    }
    let snapshots: Vec<Vec<(&str, u64)>> = all
        .iter()
        .map(|(_, ctx)| GatewayCounters::snapshot(&ctx.metrics))
        .collect();
    for (i, counter) in GatewayCounters::NAMES.iter().enumerate() {
        let metric = format!("junction_gateway_{}", metric_name(counter));
        text.family(&metric, "counter", &format!("Gateway: {counter}"));
        for ((name, _), snapshot) in all.iter().zip(&snapshots) {
            text.sample(&metric, &[("gateway", name)], snapshot[i].1);
        }
    }
    for (direction, pick) in [("received", 0usize), ("sent", 1)] {
        let metric = format!("junction_gateway_packets_{direction}");
        text.family(
            &metric,
            "counter",
            &format!("Gateway: frames {direction}, by frame type"),
        );
        for (name, ctx) in all {
            for (kind, received, sent) in ctx.metrics.frames() {
                let value = if pick == 0 { received } else { sent };
                text.sample(&metric, &[("gateway", name), ("type", kind)], value);
            }
        }
    }
}

/// `GET /prometheus/stats`.
pub(crate) async fn stats(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let mut text = Text::default();
    broker(&mut text, state.mqtt.broker_metrics(), &state);
    let mut all = Vec::new();
    for name in state.gateways.registry().names() {
        if let Some(ctx) = state.gateways.registry().gateway(name).await {
            all.push((name, ctx));
        }
    }
    gateways(&mut text, &all);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_names_are_metric_names() {
        let mut t = Text::default();
        t.family("m", "counter", "help");
        t.sample("m", &[("a", "x\"y\\z\n")], 3);
        assert_eq!(
            t.0,
            "# HELP m help\n# TYPE m counter\nm{a=\"x\\\"y\\\\z\\n\"} 3\n"
        );
        assert_eq!(
            metric_name("delivery.dropped.too_large"),
            "delivery_dropped_too_large"
        );
    }
}
