//! Clients: `/clients` (MQTT) and `/gateways/{name}/clients`, reference §2.5.

use crate::error::ApiError;
use crate::extract::{Body, Q};
use crate::page::paging;
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use junction_broker::KickReason;
use junction_gateway::{CallError, ClientInfo, ClientView, GatewayCtx};
use junction_session::SubOptions;
use junction_types::time::{parse_rfc3339, rfc3339_ms};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

/// The query of a client list. Unknown parameters are refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListQuery {
    page: Option<String>,
    limit: Option<String>,
    node: Option<String>,
    clientid: Option<String>,
    username: Option<String>,
    ip_address: Option<String>,
    conn_state: Option<String>,
    proto_ver: Option<String>,
    clean_start: Option<bool>,
    like_clientid: Option<String>,
    like_username: Option<String>,
    gte_connected_at: Option<String>,
    lte_connected_at: Option<String>,
    gte_created_at: Option<String>,
    lte_created_at: Option<String>,
    endpoint_name: Option<String>,
    like_endpoint_name: Option<String>,
    gte_lifetime: Option<u64>,
    lte_lifetime: Option<u64>,
}

/// An LwM2M client's `endpoint_name` (its client id unless it registered with a
/// `device_id`) and `lifetime` (its keepalive); none for other protocols.
fn endpoint_of(c: &ClientInfo) -> Option<&str> {
    match c.extras.get("endpoint_name").and_then(Value::as_str) {
        Some(ep) => Some(ep),
        None => (c.protocol == "lwm2m").then_some(&*c.clientid),
    }
}

fn lifetime_of(c: &ClientInfo) -> Option<u64> {
    (c.protocol == "lwm2m").then_some(u64::from(c.keepalive))
}

/// The time bounds of a client query, read: ms since the epoch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Times {
    gte_connected_at: Option<u64>,
    lte_connected_at: Option<u64>,
    gte_created_at: Option<u64>,
    lte_created_at: Option<u64>,
}

/// A time parameter: ms since the epoch or RFC 3339, as EMQX takes them.
fn time_param(name: &str, v: &Option<String>) -> Result<Option<u64>, ApiError> {
    let Some(text) = v else {
        return Ok(None);
    };
    text.parse::<u64>()
        .ok()
        .or_else(|| parse_rfc3339(text))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name}: `{text}` is neither ms since the epoch nor RFC 3339"
            ))
        })
}

impl ListQuery {
    /// The time bounds, or a 400 naming the parameter that does not read.
    fn times(&self) -> Result<Times, ApiError> {
        Ok(Times {
            gte_connected_at: time_param("gte_connected_at", &self.gte_connected_at)?,
            lte_connected_at: time_param("lte_connected_at", &self.lte_connected_at)?,
            gte_created_at: time_param("gte_created_at", &self.gte_created_at)?,
            lte_created_at: time_param("lte_created_at", &self.lte_created_at)?,
        })
    }

    /// True if any filter is given (EMQX then leaves `count` out of `meta`).
    fn filtered(&self) -> bool {
        self.node.is_some()
            || self.clientid.is_some()
            || self.username.is_some()
            || self.ip_address.is_some()
            || self.conn_state.is_some()
            || self.proto_ver.is_some()
            || self.clean_start.is_some()
            || self.like_clientid.is_some()
            || self.like_username.is_some()
            || self.gte_connected_at.is_some()
            || self.lte_connected_at.is_some()
            || self.gte_created_at.is_some()
            || self.lte_created_at.is_some()
            || self.endpoint_name.is_some()
            || self.like_endpoint_name.is_some()
            || self.gte_lifetime.is_some()
            || self.lte_lifetime.is_some()
    }

    /// Does client `c` match? `created_at` reads its session's creation time (only
    /// when a created_at bound is given).
    fn matches(&self, node: &str, t: &Times, c: &ClientInfo, created_at: &dyn Fn() -> u64) -> bool {
        let user = c.username.as_deref();
        self.node.as_deref().is_none_or(|n| n == node)
            && self.clientid.as_deref().is_none_or(|id| id == &*c.clientid)
            && self.username.as_deref().is_none_or(|u| Some(u) == user)
            && self
                .ip_address
                .as_deref()
                .is_none_or(|ip| ip == c.peername.ip().to_string())
            // Every listed client is connected.
            && self.conn_state.as_deref().is_none_or(|s| s == "connected")
            && self.proto_ver.as_deref().is_none_or(|v| v == c.proto_ver)
            && self.clean_start.is_none_or(|b| b == c.clean_start)
            && self
                .like_clientid
                .as_deref()
                .is_none_or(|s| c.clientid.contains(s))
            && self
                .like_username
                .as_deref()
                .is_none_or(|s| user.is_some_and(|u| u.contains(s)))
            && self
                .endpoint_name
                .as_deref()
                .is_none_or(|e| endpoint_of(c) == Some(e))
            && self
                .like_endpoint_name
                .as_deref()
                .is_none_or(|s| endpoint_of(c).is_some_and(|e| e.contains(s)))
            && self
                .gte_lifetime
                .is_none_or(|n| lifetime_of(c).is_some_and(|l| l >= n))
            && self
                .lte_lifetime
                .is_none_or(|n| lifetime_of(c).is_some_and(|l| l <= n))
            && t.gte_connected_at.is_none_or(|t| c.connected_at >= t)
            && t.lte_connected_at.is_none_or(|t| c.connected_at <= t)
            && (t.gte_created_at.is_none() && t.lte_created_at.is_none() || {
                let at = created_at();
                t.gte_created_at.is_none_or(|t| at >= t) && t.lte_created_at.is_none_or(|t| at <= t)
            })
    }
}

/// A bound as EMQX writes it: a number, or `"infinity"` for none (0).
#[derive(Debug, Clone, Copy)]
struct Bound(usize);

impl Serialize for Bound {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => s.serialize_str("infinity"),
            n => s.serialize_u64(n as u64),
        }
    }
}

/// A client as EMQX's API shows it, serialized as it stands (a page of them is written
/// without building a JSON tree first).
#[derive(Debug, Serialize)]
struct ClientObject<'a> {
    node: &'a str,
    clientid: &'a str,
    username: Option<&'a str>,
    mountpoint: Option<&'a str>,
    proto_name: &'a str,
    proto_ver: &'a str,
    ip_address: String,
    port: u16,
    is_bridge: bool,
    is_superuser: bool,
    listener: &'a str,
    connected: bool,
    connected_at: String,
    disconnected_at: Option<String>,
    created_at: String,
    keepalive: u32,
    clean_start: bool,
    expiry_interval: u32,
    recv_oct: u64,
    recv_cnt: u64,
    recv_pkt: u64,
    recv_msg: u64,
    send_oct: u64,
    send_cnt: u64,
    send_pkt: u64,
    send_msg: u64,
    subscriptions_cnt: usize,
    subscriptions_max: Bound,
    inflight_cnt: usize,
    inflight_max: Bound,
    mqueue_len: usize,
    mqueue_max: Bound,
    mqueue_dropped: u64,
    awaiting_rel_cnt: usize,
    awaiting_rel_max: Bound,
    mailbox_len: usize,
    /// Erlang process figures: nothing here measures them.
    heap_size: Option<u64>,
    reductions: Option<u64>,
    /// LwM2M: the endpoint client name.
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_name: Option<&'a str>,
    /// LwM2M: the registration's lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime: Option<u64>,
}

/// A client as EMQX's API shows it.
fn client_object<'a>(node: &'a str, ctx: &GatewayCtx, view: &'a ClientView) -> ClientObject<'a> {
    let (info, stats, f) = (&view.info, &view.stats, view.figures);
    let created_at = if f.created_at_ms == 0 {
        info.connected_at
    } else {
        f.created_at_ms
    };
    let stat = |name: &str| {
        stats
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    };
    let proto_name = match ctx.protocol {
        "mqtt" => "MQTT",
        "stomp" => "STOMP",
        "mqtt-sn" => "MQTT-SN",
        "coap" => "CoAP",
        "lwm2m" => "LwM2M",
        other => other,
    };
    ClientObject {
        node,
        clientid: &info.clientid,
        username: info.username.as_deref(),
        mountpoint: Some(info.mountpoint.as_str()).filter(|m| !m.is_empty()),
        proto_name,
        proto_ver: &info.proto_ver,
        ip_address: info.peername.ip().to_string(),
        port: info.peername.port(),
        is_bridge: false,
        is_superuser: info.is_superuser,
        listener: &info.listener,
        connected: true,
        connected_at: rfc3339_ms(info.connected_at),
        disconnected_at: None,
        created_at: rfc3339_ms(created_at),
        keepalive: info.keepalive,
        clean_start: info.clean_start,
        expiry_interval: info.expiry_interval,
        recv_oct: stat("recv_oct"),
        recv_cnt: stat("recv_pkt"),
        recv_pkt: stat("recv_pkt"),
        recv_msg: stat("recv_msg"),
        send_oct: stat("send_oct"),
        send_cnt: stat("send_pkt"),
        send_pkt: stat("send_pkt"),
        send_msg: stat("send_msg"),
        subscriptions_cnt: f.subscriptions,
        subscriptions_max: Bound(view.subscriptions_max as usize),
        inflight_cnt: f.inflight,
        inflight_max: Bound(f.inflight_max),
        mqueue_len: f.mqueue_len,
        mqueue_max: Bound(f.mqueue_max),
        mqueue_dropped: f.mqueue_dropped,
        awaiting_rel_cnt: f.awaiting_rel,
        awaiting_rel_max: Bound(f.awaiting_rel_max),
        mailbox_len: f.outbox,
        heap_size: None,
        reductions: None,
        endpoint_name: endpoint_of(info),
        lifetime: lifetime_of(info),
    }
}

#[derive(Serialize)]
struct Page<'a> {
    data: Vec<ClientObject<'a>>,
    meta: Value,
}

/// The context of gateway `name`: 400 for a name no gateway has, 404 when not loaded.
pub(crate) async fn gateway(state: &ApiState, name: &str) -> Result<Arc<GatewayCtx>, ApiError> {
    if let Some(ctx) = state.gateways.registry().gateway(name).await {
        return Ok(ctx);
    }
    if state.gateways.registry().names().any(|n| n == name) {
        Err(ApiError::not_found("Gateway not loaded"))
    } else {
        Err(ApiError::bad_request(format!("unknown gateway `{name}`")))
    }
}

fn list_of(state: &ApiState, ctx: &GatewayCtx, q: &ListQuery) -> Result<Response, ApiError> {
    let (page, limit) = paging(q.page.as_deref(), q.limit.as_deref())?;
    let skip = (page - 1).saturating_mul(limit);
    // The registry is ordered by client id: pages are stable while clients come and go.
    let times = q.times()?;
    let (views, total) = ctx.clients.page(
        |c, created_at| q.matches(&state.node, &times, c, created_at),
        skip,
        limit,
    );
    let data: Vec<ClientObject<'_>> = views
        .iter()
        .map(|v| client_object(&state.node, ctx, v))
        .collect();
    let mut meta = json!({
        "page": page,
        "limit": limit,
        "hasnext": skip.saturating_add(limit) < total,
    });
    if !q.filtered() {
        meta["count"] = Value::from(total);
    }
    written(&Page { data, meta })
}

/// A JSON answer written straight from `value` (no JSON tree built on the way).
fn written(value: &impl Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn get_of(state: &ApiState, ctx: &GatewayCtx, clientid: &str) -> Result<Response, ApiError> {
    match ctx.clients.view(clientid) {
        Some(view) => written(&client_object(&state.node, ctx, &view)),
        None => Err(client_not_found(ctx)),
    }
}

fn kick_of(ctx: &GatewayCtx, clientid: &str) -> Result<StatusCode, ApiError> {
    if ctx.clients.kick(clientid, KickReason::Administrative) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(client_not_found(ctx))
    }
}

async fn subscriptions_of(ctx: &GatewayCtx, clientid: &str) -> Result<Json<Value>, ApiError> {
    match ctx.subscriptions(clientid).await {
        Ok(subs) => Ok(Json(serde_json::to_value(subs).unwrap_or_default())),
        Err(e @ CallError::ClientNotFound) => Err(call_error(ctx, e)),
        Err(e) => Err(ApiError::bad_request(format!(
            "get subscriptions failed: {e}"
        ))),
    }
}

pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Q(q): Q<ListQuery>,
) -> Result<Response, ApiError> {
    let ctx = gateway(&state, &name).await?;
    list_of(&state, &ctx, &q)
}

pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let ctx = gateway(&state, &name).await?;
    get_of(&state, &ctx, &clientid)
}

pub(crate) async fn kick(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = gateway(&state, &name).await?;
    kick_of(&ctx, &clientid)
}

pub(crate) async fn subscriptions(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ctx = gateway(&state, &name).await?;
    subscriptions_of(&ctx, &clientid).await
}

pub(crate) async fn list_mqtt(
    State(state): State<Arc<ApiState>>,
    Q(q): Q<ListQuery>,
) -> Result<Response, ApiError> {
    list_of(&state, &state.mqtt, &q)
}

pub(crate) async fn get_mqtt(
    State(state): State<Arc<ApiState>>,
    Path(clientid): Path<String>,
) -> Result<Response, ApiError> {
    get_of(&state, &state.mqtt, &clientid)
}

pub(crate) async fn kick_mqtt(
    State(state): State<Arc<ApiState>>,
    Path(clientid): Path<String>,
) -> Result<StatusCode, ApiError> {
    kick_of(&state.mqtt, &clientid)
}

pub(crate) async fn subscriptions_mqtt(
    State(state): State<Arc<ApiState>>,
    Path(clientid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    subscriptions_of(&state.mqtt, &clientid).await
}

/// A subscription to add: EMQX's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    topic: Option<String>,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    nl: u8,
    #[serde(default)]
    rap: u8,
    #[serde(default = "one")]
    rh: u8,
    #[serde(default)]
    sub_props: Option<SubProps>,
}

fn one() -> u8 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SubProps {
    subid: Option<Value>,
}

/// 404 for a client that is not connected: EMQX's `CLIENTID_NOT_FOUND` on MQTT's
/// `/clients`, `NOT_FOUND` on a gateway's.
fn client_not_found(ctx: &GatewayCtx) -> ApiError {
    if ctx.namespace.is_empty() {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "CLIENTID_NOT_FOUND",
            "Client ID not found",
        )
    } else {
        ApiError::not_found("Client not found")
    }
}

fn call_error(ctx: &GatewayCtx, e: CallError) -> ApiError {
    match e {
        CallError::ClientNotFound => client_not_found(ctx),
        CallError::NoSuchSubscription => ApiError::not_found("Resource not found"),
        CallError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "CLIENT_NOT_RESPONSE",
            "the client's connection did not answer in time",
        ),
        CallError::Unsupported | CallError::Refused(_) => ApiError::bad_request(e.to_string()),
    }
}

async fn add_of(
    ctx: &GatewayCtx,
    clientid: &str,
    body: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let s: NewSubscription =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let topic = s
        .topic
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("Miss topic property"))?;
    let qos = junction_types::QoS::from_u8(s.qos)
        .ok_or_else(|| ApiError::bad_request("qos: 0, 1 or 2"))?;
    if s.nl > 1 || s.rap > 1 || s.rh > 2 {
        return Err(ApiError::bad_request("nl and rap: 0 or 1; rh: 0, 1 or 2"));
    }
    ctx.check_filter(&topic)
        .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
    let opts = SubOptions {
        qos,
        no_local: s.nl == 1,
        retain_as_published: s.rap == 1,
        retain_handling: s.rh,
        subscription_id: None,
    };
    let subid = s.sub_props.and_then(|p| p.subid).map(|v| match v {
        Value::String(s) => s,
        other => other.to_string(),
    });
    let info = ctx
        .add_subscription(clientid, &topic, opts, subid)
        .await
        .map_err(|e| call_error(ctx, e))?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(info).unwrap_or_default()),
    ))
}

/// `POST /gateways/{name}/clients/{clientid}/subscriptions`.
pub(crate) async fn add_subscription(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ctx = gateway(&state, &name).await?;
    add_of(&ctx, &clientid, body).await
}

/// `DELETE /gateways/{name}/clients/{clientid}/subscriptions/{topic}` (the topic as the
/// client wrote it, URL-encoded).
pub(crate) async fn delete_subscription(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid, topic)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let ctx = gateway(&state, &name).await?;
    ctx.remove_subscription(&clientid, &topic)
        .await
        .map_err(|e| call_error(&ctx, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /clients/{clientid}/subscribe` (EMQX's, for MQTT clients).
pub(crate) async fn subscribe_mqtt(
    State(state): State<Arc<ApiState>>,
    Path(clientid): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    add_of(&state.mqtt, &clientid, body).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsubscribe {
    topic: String,
}

/// `POST /clients/{clientid}/unsubscribe` (EMQX's, for MQTT clients).
pub(crate) async fn unsubscribe_mqtt(
    State(state): State<Arc<ApiState>>,
    Path(clientid): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    let u: Unsubscribe =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .mqtt
        .remove_subscription(&clientid, &u.topic)
        .await
        .map_err(|e| call_error(&state.mqtt, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /gateways/{name}/clients/{clientid}/request`: have the gateway send its device a
/// request and answer with the device's response (CoAP, reference §2.6). `timeout` is a
/// duration (default `"10s"`, at most 5 minutes).
pub(crate) async fn request(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    const FIELDS: &[&str] = &[
        "method",
        "uri",
        "token",
        "timeout",
        "content_type",
        "payload",
    ];
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request("the body is a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("unknown field `{unknown}`")));
    }
    let ctx = gateway(&state, &name).await?;
    let timeout = match body.get("timeout") {
        None => std::time::Duration::from_secs(10),
        Some(v) => serde_json::from_value::<junction_config::Duration>(v.clone())
            .map(|d| d.as_std())
            .map_err(|e| ApiError::bad_request(format!("timeout: {e}")))?,
    };
    let timeout = timeout.min(std::time::Duration::from_secs(300));
    ctx.request(&clientid, body, timeout)
        .await
        .map(Json)
        .map_err(|e| device_call_error(&name, e))
}

/// A call to a device (CoAP's request, LwM2M's commands) that failed, as EMQX answers
/// it: 404 `CLIENT_NOT_FOUND`, 504 `CLIENT_NOT_RESPONSE`, 400 otherwise.
pub(crate) fn device_call_error(gateway: &str, e: CallError) -> ApiError {
    match e {
        CallError::ClientNotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "CLIENT_NOT_FOUND",
            "Client not found",
        ),
        CallError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "CLIENT_NOT_RESPONSE",
            "the device did not answer in time",
        ),
        CallError::Unsupported => {
            ApiError::bad_request(format!("{gateway} clients take no requests"))
        }
        other => ApiError::bad_request(other.to_string()),
    }
}
