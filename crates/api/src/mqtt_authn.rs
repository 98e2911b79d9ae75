//! MQTT's authenticator chain (`authentication = [ … ]`), changed through `/authentication`
//! and kept in the data file (`config_changes`, key `authentication`): once the API has
//! changed it, the kept chain replaces the file's at every start, as a gateway's kept
//! section does.

use crate::error::ApiError;
use crate::extract::Body;
use crate::kept::Kept;
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use junction_auth::AuthnChains;
use junction_config::authn::AuthnConfig;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::Arc;

/// The chain's name.
pub const CHAIN: &str = "mqtt:global";
/// The key of the kept chain.
const KEY: &str = "authentication";
/// The id of the one kind of authenticator Junction has.
const BUILTIN_ID: &str = "password_based:built_in_database";

/// MQTT's authenticators, as installed.
#[derive(Debug)]
pub struct MqttChain {
    authn: Arc<AuthnChains>,
    configs: Mutex<Vec<AuthnConfig>>,
    kept: Kept,
}

impl MqttChain {
    /// Install the kept chain if the API changed it, else the file's (`file`).
    pub fn start(
        authn: Arc<AuthnChains>,
        file: &[AuthnConfig],
        kept: Kept,
    ) -> anyhow::Result<MqttChain> {
        let configs: Vec<AuthnConfig> = kept.get(KEY)?.unwrap_or_else(|| file.to_vec());
        let chain = MqttChain {
            authn,
            configs: Mutex::new(Vec::new()),
            kept,
        };
        chain.install(&configs)?;
        *chain.configs.lock() = configs;
        Ok(chain)
    }

    fn install(&self, configs: &[AuthnConfig]) -> anyhow::Result<()> {
        let mut built = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            built.push(
                self.authn
                    .build(CHAIN, c)
                    .map_err(|e| anyhow::anyhow!("authentication.{}: {e}", i + 1))?,
            );
        }
        self.authn.set_chain(CHAIN, built);
        Ok(())
    }

    /// The file's chain changed to `file` (a reload): installed unless the API replaced
    /// the chain, whose kept version stays in force as at a start. Whether it was.
    pub fn reload_file(&self, file: &[AuthnConfig]) -> anyhow::Result<bool> {
        if self.kept.get::<Vec<AuthnConfig>>(KEY)?.is_some() {
            return Ok(false);
        }
        self.install(file)?;
        *self.configs.lock() = file.to_vec();
        Ok(true)
    }

    /// Install and keep `configs`.
    fn replace(&self, configs: Vec<AuthnConfig>) -> Result<(), ApiError> {
        self.install(&configs)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        self.kept.put(KEY, &configs)?;
        *self.configs.lock() = configs;
        Ok(())
    }
}

fn with_id(c: &AuthnConfig) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["id"] = json!(BUILTIN_ID);
    v
}

fn read(body: Value) -> Result<AuthnConfig, ApiError> {
    let mut body = body;
    if let Value::Object(m) = &mut body {
        m.remove("id");
    }
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("authentication: {e}")))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("authenticator {id} not found"))
}

/// `GET /authentication`.
pub(crate) async fn list(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(
        state
            .mqtt_chain
            .configs
            .lock()
            .iter()
            .map(with_id)
            .collect(),
    )
}

/// `POST /authentication`: add an authenticator at the end of the chain.
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let config = read(body)?;
    let mut configs = state.mqtt_chain.configs.lock().clone();
    if !configs.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("authenticator {BUILTIN_ID} already exists"),
        ));
    }
    configs.push(config.clone());
    state.mqtt_chain.replace(configs)?;
    Ok(Json(with_id(&config)))
}

/// `GET /authentication/{id}`.
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let configs = state.mqtt_chain.configs.lock();
    match configs.first() {
        Some(c) if id == BUILTIN_ID => Ok(Json(with_id(c))),
        _ => Err(not_found(&id)),
    }
}

/// `PUT /authentication/{id}`: replace it.
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let config = read(body)?;
    let configs = state.mqtt_chain.configs.lock().clone();
    if id != BUILTIN_ID || configs.is_empty() {
        return Err(not_found(&id));
    }
    state.mqtt_chain.replace(vec![config.clone()])?;
    Ok(Json(with_id(&config)))
}

/// `DELETE /authentication/{id}`.
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let configs = state.mqtt_chain.configs.lock().clone();
    if id != BUILTIN_ID || configs.is_empty() {
        return Err(not_found(&id));
    }
    state.mqtt_chain.replace(Vec::new())?;
    state
        .mqtt_chain
        .authn
        .forget_users(CHAIN)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}
