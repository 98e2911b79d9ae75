//! LwM2M's own endpoints (reference §2.6) and, beyond EMQX, its object definitions:
//!
//! * `GET …/clients/{clientid}/lookup?path=&action=`: the latest result of a command,
//!   from the client's cache of its last 100 (`6.01 reply_not_received` if none);
//! * `POST …/clients/{clientid}/read?path=`, `…/write?path=&type=&value=` and
//!   `…/observe?path=&enable=`: a command queued for the device, 204;
//! * `GET|POST /gateways/{name}/objects`, `GET|DELETE /gateways/{name}/objects/{id}`:
//!   the definitions values are typed with, changed without a restart.

use crate::clients::{device_call_error, gateway};
use crate::error::ApiError;
use crate::extract::{Body, Q};
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use junction_gateway::{GatewayCtx, GatewayResources};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long the API waits for the device's connection to take the call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct CommandQuery {
    path: Option<String>,
    action: Option<String>,
    enable: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

impl CommandQuery {
    fn path(&self) -> Result<&str, ApiError> {
        self.path
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ApiError::bad_request("path is required"))
    }
}

async fn call(ctx: &GatewayCtx, clientid: &str, body: Value) -> Result<Value, ApiError> {
    ctx.request(clientid, body, CALL_TIMEOUT)
        .await
        .map_err(|e| device_call_error(ctx.name, e))
}

async fn command(
    state: &ApiState,
    name: &str,
    clientid: &str,
    command: Value,
) -> Result<StatusCode, ApiError> {
    let ctx = gateway(state, name).await?;
    call(
        &ctx,
        clientid,
        json!({ "op": "command", "command": command }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn lookup(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Q(q): Q<CommandQuery>,
) -> Result<Json<Value>, ApiError> {
    let ctx = gateway(&state, &name).await?;
    let body = json!({
        "op": "lookup",
        "path": q.path()?,
        "action": q.action.as_deref().unwrap_or("read"),
    });
    call(&ctx, &clientid, body).await.map(Json)
}

pub(crate) async fn read(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Q(q): Q<CommandQuery>,
) -> Result<StatusCode, ApiError> {
    let c = json!({ "msgType": "read", "data": { "path": q.path()? } });
    command(&state, &name, &clientid, c).await
}

pub(crate) async fn observe(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Q(q): Q<CommandQuery>,
) -> Result<StatusCode, ApiError> {
    let msg_type = if q.enable.unwrap_or(true) {
        "observe"
    } else {
        "cancel-observe"
    };
    let c = json!({ "msgType": msg_type, "data": { "path": q.path()? } });
    command(&state, &name, &clientid, c).await
}

pub(crate) async fn write(
    State(state): State<Arc<ApiState>>,
    Path((name, clientid)): Path<(String, String)>,
    Q(q): Q<CommandQuery>,
) -> Result<StatusCode, ApiError> {
    let (Some(kind), Some(value)) = (&q.kind, &q.value) else {
        return Err(ApiError::bad_request("type and value are required"));
    };
    let c = json!({
        "msgType": "write",
        "data": { "path": q.path()?, "type": kind, "value": value },
    });
    command(&state, &name, &clientid, c).await
}

/// The gateway's resources: 404 when it has none (every gateway but LwM2M).
async fn resources(state: &ApiState, name: &str) -> Result<Arc<dyn GatewayResources>, ApiError> {
    let ctx = gateway(state, name).await?;
    ctx.resources
        .get()
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("gateway {name} has no object definitions")))
}

pub(crate) async fn list_objects(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(resources(&state, &name).await?.list()))
}

pub(crate) async fn get_object(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    resources(&state, &name)
        .await?
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no object {id}")))
}

pub(crate) async fn put_objects(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    resources(&state, &name)
        .await?
        .put(&body)
        .map(|added| (StatusCode::CREATED, Json(added)))
        .map_err(ApiError::bad_request)
}

pub(crate) async fn delete_object(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if resources(&state, &name).await?.delete(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no object {id}")))
    }
}
