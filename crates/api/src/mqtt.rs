//! The node and its MQTT space with EMQX's paths: `status`, `stats`, `metrics`, `nodes`,
//! `listeners`, `subscriptions`, `topics`, `publish` (and `publish/bulk`) and the
//! retained messages, `mqtt/retainer/…`.

use crate::error::ApiError;
use crate::extract::{Body, Q};
use crate::page::{page_of, paging};
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine;
use bytestring::ByteString;
use junction_broker::SubscriptionRow;
use junction_types::time::rfc3339_ms;
use junction_types::{Message, MessageProperties, QoS, SharedMessage};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// An MQTT listener as the API reports it.
#[derive(Debug, Clone)]
pub struct MqttListener {
    /// `<type>:<name>`.
    pub id: String,
    /// Its address.
    pub bind: SocketAddr,
    /// `max_connections`, `None`: infinity.
    pub max_connections: Option<u64>,
}

/// `GET /status` (no key, as EMQX): is the node up?
pub(crate) async fn status(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("Node {} is started\njunction is running\n", state.node),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Aggregate {
    aggregate: Option<bool>,
}

/// One object for `aggregate=true`, else a list of one per node.
fn per_node(state: &ApiState, q: &Aggregate, mut obj: Map<String, Value>) -> Json<Value> {
    if q.aggregate == Some(true) {
        Json(Value::Object(obj))
    } else {
        obj.insert("node".into(), json!(state.node));
        Json(json!([obj]))
    }
}

fn stats_of(state: &ApiState) -> Map<String, Value> {
    let b = state.mqtt.broker_stats();
    let connections = state.mqtt.broker_metrics().connections_count.get();
    let mut m = Map::new();
    m.insert("connections.count".into(), json!(connections));
    m.insert("live_connections.count".into(), json!(connections));
    m.insert("sessions.count".into(), json!(b.sessions));
    m.insert("topics.count".into(), json!(b.topics));
    m.insert("subscriptions.count".into(), json!(b.subscriptions));
    m.insert("suboptions.count".into(), json!(b.subscriptions));
    m.insert("retained.count".into(), json!(b.retained));
    m
}

/// `GET /stats[?aggregate=true]`.
pub(crate) async fn stats(State(state): State<Arc<ApiState>>, Q(q): Q<Aggregate>) -> Json<Value> {
    per_node(&state, &q, stats_of(&state))
}

/// `GET /metrics[?aggregate=true]`: the broker's counters by EMQX name.
pub(crate) async fn metrics(State(state): State<Arc<ApiState>>, Q(q): Q<Aggregate>) -> Json<Value> {
    let obj = state
        .mqtt
        .broker_metrics()
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    per_node(&state, &q, obj)
}

fn node_json(state: &ApiState) -> Value {
    let connections = state.mqtt.broker_metrics().connections_count.get();
    json!({
        "node": state.node,
        "node_status": "running",
        "version": env!("CARGO_PKG_VERSION"),
        "edition": "Opensource",
        "role": "core",
        "uptime": state.mqtt.uptime().as_millis() as u64,
        "connections": connections,
        "live_connections": connections,
    })
}

/// `GET /nodes`.
pub(crate) async fn nodes(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!([node_json(&state)]))
}

/// `GET /nodes/{node}`.
pub(crate) async fn node(
    State(state): State<Arc<ApiState>>,
    Path(node): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if node != state.node {
        return Err(ApiError::not_found(format!("node {node} not found")));
    }
    Ok(Json(node_json(&state)))
}

/// `GET /listeners`: the MQTT listeners.
pub(crate) async fn listeners(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let clients = state.mqtt.clients.list();
    Json(
        state
            .mqtt_listeners
            .read()
            .iter()
            .map(|l| {
                let (kind, name) = l.id.split_once(':').unwrap_or((&l.id, ""));
                let current = clients.iter().filter(|c| *c.listener == *l.id).count();
                let max = l.max_connections.map_or(json!("infinity"), |n| json!(n));
                json!({
                    "id": l.id, "type": kind, "name": name,
                    "bind": l.bind.to_string(), "enable": true, "running": true,
                    "max_connections": max,
                    "current_connections": current,
                    "node_status": [{
                        "node": state.node,
                        "status": { "running": true, "current_connections": current, "max_connections": max },
                    }],
                })
            })
            .collect(),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SubscriptionQuery {
    page: Option<String>,
    limit: Option<String>,
    node: Option<String>,
    clientid: Option<String>,
    qos: Option<u8>,
    share_group: Option<String>,
    topic: Option<String>,
    match_topic: Option<String>,
}

fn sub_json(node: &str, r: &SubscriptionRow) -> Value {
    json!({
        "node": node,
        "clientid": &*r.client_id,
        "topic": r.filter,
        "qos": r.opts.qos as u8,
        "nl": u8::from(r.opts.no_local),
        "rap": u8::from(r.opts.retain_as_published),
        "rh": r.opts.retain_handling,
    })
}

/// `GET /subscriptions`: every client's, MQTT's and the gateways' (mounted topics).
pub(crate) async fn subscriptions(
    State(state): State<Arc<ApiState>>,
    Q(q): Q<SubscriptionQuery>,
) -> Result<Json<Value>, ApiError> {
    let paging = paging(q.page.as_deref(), q.limit.as_deref())?;
    if q.qos.is_some_and(|n| n > 2) {
        return Err(ApiError::bad_request("qos: 0, 1 or 2"));
    }
    let mut all: Vec<SubscriptionRow> = state
        .mqtt
        .broker_subscriptions()
        .into_iter()
        .filter(|r| {
            let (group, filter) = match r.filter.strip_prefix("$share/") {
                Some(rest) => rest
                    .split_once('/')
                    .map_or((None, rest), |(g, f)| (Some(g), f)),
                None => (None, r.filter.as_str()),
            };
            q.node.as_deref().is_none_or(|n| n == state.node)
                && q.clientid.as_deref().is_none_or(|c| c == &*r.client_id)
                && q.qos.is_none_or(|n| n == r.opts.qos as u8)
                && q.share_group.as_deref().is_none_or(|g| Some(g) == group)
                && q.topic.as_deref().is_none_or(|t| t == r.filter)
                && q.match_topic
                    .as_deref()
                    .is_none_or(|t| junction_topic::matches(filter, t))
        })
        .collect();
    all.sort_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
    let filtered = q.node.is_some()
        || q.clientid.is_some()
        || q.qos.is_some()
        || q.share_group.is_some()
        || q.topic.is_some()
        || q.match_topic.is_some();
    Ok(Json(page_of(&all, paging, !filtered, |r| {
        sub_json(&state.node, r)
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TopicQuery {
    page: Option<String>,
    limit: Option<String>,
    topic: Option<String>,
    node: Option<String>,
}

/// `GET /topics`: the subscribed filters.
pub(crate) async fn topics(
    State(state): State<Arc<ApiState>>,
    Q(q): Q<TopicQuery>,
) -> Result<Json<Value>, ApiError> {
    let paging = paging(q.page.as_deref(), q.limit.as_deref())?;
    let mut all: Vec<String> = state
        .mqtt
        .broker_topics()
        .into_iter()
        .filter(|t| q.topic.as_deref().is_none_or(|want| want == t))
        .filter(|_| q.node.as_deref().is_none_or(|n| n == state.node))
        .collect();
    all.sort();
    let filtered = q.topic.is_some() || q.node.is_some();
    Ok(Json(page_of(
        &all,
        paging,
        !filtered,
        |t| json!({ "topic": t, "node": state.node }),
    )))
}

/// A publish request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Publish {
    topic: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    payload_encoding: Option<String>,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
    #[serde(default)]
    clientid: Option<String>,
    #[serde(default)]
    properties: Option<PublishProperties>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PublishProperties {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    response_topic: Option<String>,
    correlation_data: Option<String>,
    content_type: Option<String>,
    user_properties: Option<Map<String, Value>>,
}

/// Publish one message; `(status, answer)`.
fn publish_one(state: &ApiState, body: Value) -> Result<(StatusCode, Value), ApiError> {
    let p: Publish =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .mqtt
        .check_topic_name(&p.topic)
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
    let qos = QoS::from_u8(p.qos).ok_or_else(|| ApiError::bad_request("qos: 0, 1 or 2"))?;
    let payload = match p.payload_encoding.as_deref() {
        None | Some("plain") => bytes::Bytes::from(p.payload.into_bytes()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(p.payload.as_bytes())
            .map_err(|e| ApiError::bad_request(format!("payload: not base64: {e}")))?
            .into(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding: `{other}` is not plain or base64"
            )))
        }
    };
    let now = junction_types::now_ms();
    let props = p.properties.unwrap_or_default();
    let properties = MessageProperties {
        payload_format_indicator: props.payload_format_indicator,
        content_type: props.content_type.map(ByteString::from),
        response_topic: props.response_topic.map(ByteString::from),
        correlation_data: props
            .correlation_data
            .map(|s| bytes::Bytes::from(s.into_bytes())),
        user_properties: props
            .user_properties
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (ByteString::from(k), ByteString::from(v))
            })
            .collect(),
    };
    let id = state.mqtt.next_message_id();
    let msg = Message {
        id,
        topic: ByteString::from(p.topic),
        payload,
        qos,
        retain: p.retain,
        properties,
        expires_at_ms: props
            .message_expiry_interval
            .map(|s| now + u64::from(s) * 1000),
        received_at_ms: now,
        from: ByteString::from(p.clientid.unwrap_or_default()),
        namespace: ByteString::new(),
    };
    let routed = state.mqtt.publish_message(msg);
    let id = format!("{id:016X}");
    Ok(if routed.targets == 0 {
        (
            StatusCode::ACCEPTED,
            json!({ "id": id, "reason_code": 16, "message": "no_matching_subscribers" }),
        )
    } else {
        (StatusCode::OK, json!({ "id": id }))
    })
}

/// `POST /publish`.
pub(crate) async fn publish(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (status, answer) = publish_one(&state, body)?;
    Ok((status, Json(answer)))
}

/// Most messages in one bulk publish.
const MAX_BULK: usize = 1000;

/// `POST /publish/bulk`: every message checked before any is published.
pub(crate) async fn publish_bulk(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request("expected a list of messages"));
    };
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::bad_request(format!(
            "1 to {MAX_BULK} messages at once"
        )));
    }
    let mut answers = Vec::with_capacity(items.len());
    let mut all_unrouted = true;
    for item in items {
        let (status, answer) = publish_one(&state, item)?;
        all_unrouted &= status == StatusCode::ACCEPTED;
        answers.push(answer);
    }
    let status = if all_unrouted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Value::Array(answers))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RetainedQuery {
    page: Option<String>,
    limit: Option<String>,
    topic: Option<String>,
}

fn retained_json(m: &SharedMessage, payload: bool) -> Value {
    let mut v = json!({
        "topic": &*m.topic,
        "msgid": format!("{:016X}", m.id),
        "qos": m.qos as u8,
        "from_clientid": &*m.from,
        "publish_at": rfc3339_ms(m.received_at_ms),
    });
    if payload {
        v["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(&m.payload));
    }
    v
}

/// `GET /mqtt/retainer/messages[?topic=<filter>]`.
pub(crate) async fn retained_list(
    State(state): State<Arc<ApiState>>,
    Q(q): Q<RetainedQuery>,
) -> Result<Json<Value>, ApiError> {
    let paging = paging(q.page.as_deref(), q.limit.as_deref())?;
    let now = junction_types::now_ms();
    let mut all: Vec<SharedMessage> = state
        .mqtt
        .retained_messages()
        .into_iter()
        .filter(|m| !m.is_expired(now))
        .filter(|m| {
            q.topic
                .as_deref()
                .is_none_or(|f| junction_topic::matches(f, &m.topic))
        })
        .collect();
    all.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(Json(page_of(&all, paging, q.topic.is_none(), |m| {
        retained_json(m, false)
    })))
}

/// `GET /mqtt/retainer/message/{topic}` (the topic URL-encoded).
pub(crate) async fn retained_get(
    State(state): State<Arc<ApiState>>,
    Path(topic): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.mqtt.retained_message(&topic) {
        Some(m) if !m.is_expired(junction_types::now_ms()) => Ok(Json(retained_json(&m, true))),
        _ => Err(ApiError::not_found("Viewed message doesn't exist")),
    }
}

/// `DELETE /mqtt/retainer/message/{topic}`.
pub(crate) async fn retained_delete(
    State(state): State<Arc<ApiState>>,
    Path(topic): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.mqtt.delete_retained(&topic) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("Viewed message doesn't exist"))
    }
}
