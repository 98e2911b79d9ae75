//! Gateways and their listeners: `/gateways` (reference §2.2) and
//! `/gateways/{name}/listeners` (§2.4), over [`GatewayAdmin`].

use crate::error::ApiError;
use crate::extract::{Body, Q};
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use junction_gateway::admin::listener_objects;
use junction_gateway::{AdminError, GatewayState, Status};
use junction_types::time::rfc3339_ms;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::UnknownGateway(name) => {
                ApiError::bad_request(format!("unknown gateway `{name}`"))
            }
            AdminError::NotLoaded => ApiError::not_found("Gateway not loaded"),
            AdminError::ListenerNotFound => ApiError::not_found("Listener not found"),
            AdminError::Store(_) => ApiError::internal(e.to_string()),
            AdminError::AlreadyLoaded(_)
            | AdminError::ListenerExists
            | AdminError::BadRequest(_)
            | AdminError::Invalid(_)
            | AdminError::Apply(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// What the running listeners and connected clients say about a gateway.
struct Live {
    /// Running listener ids.
    running: Vec<String>,
    /// Connected clients by listener id.
    by_listener: BTreeMap<String, usize>,
    /// Connected clients.
    total: usize,
}

async fn live(state: &ApiState, name: &str) -> Live {
    let running = state
        .gateways
        .registry()
        .listeners()
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id.split(':').next() == Some(name))
        .collect();
    let mut by_listener = BTreeMap::new();
    let mut total = 0;
    if let Some(ctx) = state.gateways.registry().gateway(name).await {
        for c in ctx.clients.list() {
            *by_listener.entry(c.listener.to_string()).or_insert(0) += 1;
            total += 1;
        }
    }
    Live {
        running,
        by_listener,
        total,
    }
}

/// A listener's `max_connections` as a number, or `None` for `"infinity"`.
fn limit(listener: &Value) -> Option<u64> {
    listener.get("max_connections").and_then(Value::as_u64)
}

fn limit_json(limit: Option<u64>) -> Value {
    limit.map_or(json!("infinity"), |n| json!(n))
}

/// A listener object with its run-time status (EMQX's `status` and `node_status`).
fn listener_with_status(node: &str, live: &Live, mut l: Value) -> Value {
    let id = l["id"].as_str().unwrap_or_default().to_string();
    let running = live.running.contains(&id);
    let current = live.by_listener.get(&id).copied().unwrap_or(0);
    let max = limit_json(limit(&l));
    let status = json!({
        "running": running,
        "max_connections": max,
        "current_connections": current,
    });
    if let Value::Object(obj) = &mut l {
        obj.insert("running".into(), json!(running));
        obj.insert(
            "node_status".into(),
            json!([{ "node": node, "status": status.clone() }]),
        );
        obj.insert("status".into(), status);
    }
    l
}

fn times(g: &GatewayState, obj: &mut Map<String, Value>) {
    obj.insert("created_at".into(), json!(rfc3339_ms(g.times.created_at)));
    match g.status {
        Status::Running => {
            if let Some(t) = g.times.started_at {
                obj.insert("started_at".into(), json!(rfc3339_ms(t)));
            }
        }
        Status::Stopped => {
            if let Some(t) = g.times.stopped_at {
                obj.insert("stopped_at".into(), json!(rfc3339_ms(t)));
            }
        }
        Status::Unloaded => {}
    }
}

/// The list entry of `GET /gateways`.
async fn summary(state: &ApiState, g: &GatewayState) -> Value {
    if g.status == Status::Unloaded {
        return json!({ "name": g.name, "status": "unloaded" });
    }
    let live = live(state, g.name).await;
    let listeners = listener_objects(g.name, &g.config);
    let max = listeners
        .iter()
        .filter(|l| l["enable"] != Value::Bool(false))
        .try_fold(0u64, |sum, l| limit(l).map(|n| sum.saturating_add(n)));
    let mut obj = Map::new();
    obj.insert("name".into(), json!(g.name));
    obj.insert("status".into(), json!(g.status.as_str()));
    times(g, &mut obj);
    obj.insert("max_connections".into(), limit_json(max));
    obj.insert("current_connections".into(), json!(live.total));
    obj.insert(
        "listeners".into(),
        listeners
            .iter()
            .map(|l| {
                let id = l["id"].as_str().unwrap_or_default();
                json!({
                    "id": id, "type": l["type"], "name": l["name"],
                    "running": live.running.iter().any(|r| r == id),
                })
            })
            .collect(),
    );
    obj.insert(
        "node_status".into(),
        json!([{
            "node": state.node,
            "status": g.status.as_str(),
            "max_connections": limit_json(max),
            "current_connections": live.total,
        }]),
    );
    Value::Object(obj)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
}

/// `GET /gateways[?status=running|stopped|unloaded]`.
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Q(q): Q<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let wanted = match q.status.as_deref() {
        None => None,
        Some(s @ ("running" | "stopped" | "unloaded")) => Some(s.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status: `{other}` is not one of running, stopped, unloaded"
            )))
        }
    };
    let mut all = Vec::new();
    for g in state.gateways.list().await? {
        if wanted.as_deref().is_none_or(|w| w == g.status.as_str()) {
            all.push(summary(&state, &g).await);
        }
    }
    Ok(Json(Value::Array(all)))
}

/// One gateway: its configuration with every default, its listeners as a list.
async fn detail(state: &ApiState, g: &GatewayState) -> Value {
    if g.status == Status::Unloaded {
        return json!({ "name": g.name, "status": "unloaded" });
    }
    let live = live(state, g.name).await;
    let mut obj = g.config.as_object().cloned().unwrap_or_default();
    let listeners: Vec<Value> = listener_objects(g.name, &g.config)
        .into_iter()
        .map(|l| {
            let running = live
                .running
                .iter()
                .any(|r| Some(r.as_str()) == l["id"].as_str());
            let mut l = l;
            l["running"] = json!(running);
            l
        })
        .collect();
    obj.insert("listeners".into(), Value::Array(listeners));
    obj.insert("name".into(), json!(g.name));
    obj.insert("status".into(), json!(g.status.as_str()));
    times(g, &mut obj);
    obj.insert("current_connections".into(), json!(live.total));
    Value::Object(obj)
}

/// `GET /gateways/{name}`.
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let g = state.gateways.get(&name).await?;
    Ok(Json(detail(&state, &g).await))
}

/// `PUT /gateways/{name}`: load, or update a loaded gateway.
pub(crate) async fn put(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<StatusCode, ApiError> {
    state.gateways.put(&name, &body, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /gateways` (EMQX 5.0's load, the brief's example): the body, with its `name`,
/// becomes the gateway's whole configuration, loaded or not.
pub(crate) async fn post(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(name) = body.get("name").and_then(Value::as_str).map(str::to_string) else {
        return Err(ApiError::bad_request("`name` is required"));
    };
    state.gateways.put(&name, &body, true).await?;
    let g = state.gateways.get(&name).await?;
    Ok((StatusCode::CREATED, Json(detail(&state, &g).await)))
}

/// `PUT /gateways/{name}/enable/{enable}`.
pub(crate) async fn enable(
    State(state): State<Arc<ApiState>>,
    Path((name, enable)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let enable = match enable.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "enable: `{other}` is not true or false"
            )))
        }
    };
    state.gateways.enable(&name, enable).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /gateways/{name}/listeners`.
pub(crate) async fn listeners(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let all = state.gateways.listeners(&name).await?;
    let live = live(&state, &name).await;
    Ok(Json(Value::Array(
        all.into_iter()
            .map(|l| listener_with_status(&state.node, &live, l))
            .collect(),
    )))
}

async fn one_listener(state: &ApiState, name: &str, id: &str) -> Result<Value, ApiError> {
    let l = state.gateways.listener(name, id).await?;
    let live = live(state, name).await;
    Ok(listener_with_status(&state.node, &live, l))
}

/// `POST /gateways/{name}/listeners`.
pub(crate) async fn add_listener(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = state.gateways.add_listener(&name, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(one_listener(&state, &name, &id).await?),
    ))
}

/// `GET /gateways/{name}/listeners/{id}`.
pub(crate) async fn get_listener(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(one_listener(&state, &name, &id).await?))
}

/// `PUT /gateways/{name}/listeners/{id}`: the body replaces the listener's settings.
pub(crate) async fn update_listener(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    state.gateways.update_listener(&name, &id, &body).await?;
    Ok(Json(one_listener(&state, &name, &id).await?))
}

/// `DELETE /gateways/{name}/listeners/{id}`.
pub(crate) async fn delete_listener(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.gateways.delete_listener(&name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /gateways/{name}` (Junction's; EMQX unloads from its CLI only): unload.
pub(crate) async fn unload(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.gateways.unload(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /gateway_registry` (Junction's, for `junction ctl gateway-registry list`).
pub(crate) async fn registry(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(
        state
            .gateways
            .registry()
            .modules()
            .into_iter()
            .map(|(name, module)| json!({ "name": name, "module": module }))
            .collect(),
    )
}

/// `GET /gateways/{name}/metrics` (Junction's; EMQX has them in its CLI only): the
/// counters that moved, by name.
pub(crate) async fn metrics(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ctx = crate::clients::gateway(&state, &name).await?;
    Ok(Json(Value::Object(
        ctx.metrics
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.into_owned(), json!(v)))
            .collect(),
    )))
}
