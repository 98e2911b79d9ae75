//! API keys (HTTP Basic `key:secret`): from `api_key.bootstrap_file` (EMQX's format, one
//! `key:secret[:role]` per line) and created through `/api_key`, kept in the data file.
//!
//! A secret is kept only as a salted SHA-256 digest (secrets are random and long, so a
//! slow hash adds nothing) and compared in constant time. It is shown once, when the key
//! is created.

use crate::error::ApiError;
use crate::extract::Body;
use crate::kept::Kept;
use crate::ApiState;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::Json;
use junction_types::time::{parse_rfc3339, rfc3339_ms};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What a key or a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anything.
    Administrator,
    /// `GET` only.
    Viewer,
}

impl Role {
    /// `administrator` or `viewer`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "administrator" => Some(Role::Administrator),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// EMQX's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Viewer => "viewer",
        }
    }

    /// May this role use `method`?
    pub fn allows(self, method: &Method) -> bool {
        self == Role::Administrator || method == Method::GET || method == Method::HEAD
    }
}

/// One key as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Key {
    name: String,
    api_key: String,
    salt: String,
    digest: String,
    role: Role,
    enable: bool,
    /// Ms since the epoch; `None`: never.
    expired_at: Option<u64>,
    desc: String,
    created_at: u64,
    /// From the bootstrap file: not kept, not changed through the API.
    #[serde(skip)]
    bootstrap: bool,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(salt: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_text(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex(&raw)
}

impl Key {
    fn new(name: &str, api_key: &str, secret: &str, role: Role) -> Key {
        let salt = random_text(16);
        Key {
            name: name.to_string(),
            api_key: api_key.to_string(),
            digest: digest(&salt, secret),
            salt,
            role,
            enable: true,
            expired_at: None,
            desc: String::new(),
            created_at: junction_types::now_ms(),
            bootstrap: false,
        }
    }

    fn expired(&self, now: u64) -> bool {
        self.expired_at.is_some_and(|t| t <= now)
    }

    fn to_json(&self, now: u64) -> Value {
        json!({
            "name": self.name,
            "api_key": self.api_key,
            "role": self.role.as_str(),
            "enable": self.enable,
            "expired": self.expired(now),
            "expired_at": self.expired_at.map_or(json!("infinity"), |t| json!(rfc3339_ms(t))),
            "created_at": rfc3339_ms(self.created_at),
            "desc": self.desc,
        })
    }
}

#[derive(Debug, Default)]
struct Keys {
    /// By name.
    by_name: BTreeMap<String, Key>,
    /// Name by `api_key`.
    names: HashMap<String, String>,
}

impl Keys {
    fn insert(&mut self, key: Key) {
        self.names.insert(key.api_key.clone(), key.name.clone());
        self.by_name.insert(key.name.clone(), key);
    }

    fn remove(&mut self, name: &str) -> Option<Key> {
        let key = self.by_name.remove(name)?;
        self.names.remove(&key.api_key);
        Some(key)
    }
}

/// The API keys the server accepts.
#[derive(Debug)]
pub struct ApiKeys {
    keys: RwLock<Keys>,
    kept: Kept,
}

impl Default for ApiKeys {
    fn default() -> Self {
        ApiKeys::new(Kept::new(None, junction_store::kv::API_KEYS))
    }
}

impl ApiKeys {
    /// The keys kept in `kept`.
    pub fn new(kept: Kept) -> ApiKeys {
        ApiKeys {
            keys: RwLock::new(Keys::default()),
            kept,
        }
    }

    /// Read the kept keys.
    pub fn load(&self) -> anyhow::Result<()> {
        let mut keys = self.keys.write();
        for (_, key) in self.kept.load::<Key>()? {
            keys.insert(key);
        }
        Ok(())
    }

    /// Add a bootstrap file's keys (`key:secret[:role]` per line; blank lines and `#`
    /// comments skipped). A malformed line is an error naming its number. A key of the
    /// file replaces a kept one of the same name.
    pub fn bootstrap(&self, text: &str) -> Result<(), String> {
        let mut parsed = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split(':');
            let (Some(key), Some(secret)) = (parts.next(), parts.next()) else {
                return Err(format!("line {}: expected key:secret[:role]", i + 1));
            };
            let role = match parts.next() {
                None => Role::Administrator,
                Some(r) => {
                    Role::parse(r).ok_or_else(|| format!("line {}: unknown role `{r}`", i + 1))?
                }
            };
            if key.is_empty() || secret.is_empty() || parts.next().is_some() {
                return Err(format!("line {}: expected key:secret[:role]", i + 1));
            }
            let mut k = Key::new(key, key, secret, role);
            k.desc = "api_key.bootstrap_file".into();
            k.bootstrap = true;
            parsed.push(k);
        }
        let mut keys = self.keys.write();
        for k in parsed {
            keys.remove(&k.name);
            keys.insert(k);
        }
        Ok(())
    }

    /// The role of `api_key` with `secret`, or 401.
    pub fn check(&self, api_key: &str, secret: &str) -> Result<Role, ApiError> {
        let keys = self.keys.read();
        let key = keys
            .names
            .get(api_key)
            .and_then(|n| keys.by_name.get(n))
            .ok_or_else(ApiError::unauthorized)?;
        let given = digest(&key.salt, secret);
        if !same(given.as_bytes(), key.digest.as_bytes())
            || !key.enable
            || key.expired(junction_types::now_ms())
        {
            return Err(ApiError::unauthorized());
        }
        Ok(key.role)
    }
}

/// The body of a create or an update.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    enable: Option<bool>,
    expired_at: Option<Value>,
    desc: Option<String>,
    role: Option<String>,
}

fn read_body(body: Value) -> Result<KeyBody, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `expired_at`: RFC 3339, ms since the epoch, or `"infinity"` / `null` for never.
fn expiry(value: &Value) -> Result<Option<u64>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s == "infinity" => Ok(None),
        Value::String(s) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("expired_at: `{s}` is not RFC 3339"))),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("expired_at: not a time")),
        _ => Err(ApiError::bad_request("expired_at: not a time")),
    }
}

fn role_of(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role: `{text}` is not one of administrator, viewer"
        ))
    })
}

fn valid_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `GET /api_key`.
pub(crate) async fn list(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let now = junction_types::now_ms();
    let keys = state.keys.keys.read();
    Json(keys.by_name.values().map(|k| k.to_json(now)).collect())
}

/// `POST /api_key`: a new key; its secret is in this answer only.
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body)?;
    let name = body
        .name
        .ok_or_else(|| ApiError::bad_request("name: required"))?;
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "name: 1 to 200 characters of letters, digits, `_` and `-`",
        ));
    }
    let role = role_of(body.role.as_deref().unwrap_or("administrator"))?;
    let expired_at = match &body.expired_at {
        Some(v) => expiry(v)?,
        None => None,
    };
    let secret = random_text(24);
    let mut key = Key::new(&name, &random_text(8), &secret, role);
    key.enable = body.enable.unwrap_or(true);
    key.expired_at = expired_at;
    key.desc = body.desc.unwrap_or_default();
    let mut keys = state.keys.keys.write();
    if keys.by_name.contains_key(&name) {
        return Err(ApiError::bad_request("Name already exists"));
    }
    state.keys.kept.put(&name, &key)?;
    let mut answer = key.to_json(junction_types::now_ms());
    answer["api_secret"] = json!(secret);
    keys.insert(key);
    Ok(Json(answer))
}

fn not_found() -> ApiError {
    ApiError::not_found("API key not found")
}

/// `GET /api_key/{name}`.
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let keys = state.keys.keys.read();
    let key = keys.by_name.get(&name).ok_or_else(not_found)?;
    Ok(Json(key.to_json(junction_types::now_ms())))
}

/// `PUT /api_key/{name}`: enable, expiry, description, role.
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body = read_body(body)?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request("name: cannot be changed"));
    }
    let role = body.role.as_deref().map(role_of).transpose()?;
    let expired_at = body.expired_at.as_ref().map(expiry).transpose()?;
    let mut keys = state.keys.keys.write();
    let key = keys.by_name.get_mut(&name).ok_or_else(not_found)?;
    if key.bootstrap {
        return Err(ApiError::bad_request(
            "a key of api_key.bootstrap_file: change it in the file",
        ));
    }
    let mut changed = key.clone();
    if let Some(enable) = body.enable {
        changed.enable = enable;
    }
    if let Some(expired_at) = expired_at {
        changed.expired_at = expired_at;
    }
    if let Some(desc) = body.desc {
        changed.desc = desc;
    }
    if let Some(role) = role {
        changed.role = role;
    }
    state.keys.kept.put(&name, &changed)?;
    *key = changed;
    Ok(Json(key.to_json(junction_types::now_ms())))
}

/// `DELETE /api_key/{name}`.
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut keys = state.keys.keys.write();
    let key = keys.by_name.get(&name).ok_or_else(not_found)?;
    if key.bootstrap {
        return Err(ApiError::bad_request(
            "a key of api_key.bootstrap_file: remove it from the file",
        ));
    }
    state.keys.kept.delete(&name)?;
    keys.remove(&name);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_keys_authenticate_with_their_role() {
        let keys = ApiKeys::default();
        keys.bootstrap("# comment\nadmin-key:s3cret\n\nview-key:v1ew:viewer\n")
            .unwrap();
        assert_eq!(keys.check("admin-key", "s3cret"), Ok(Role::Administrator));
        assert_eq!(keys.check("view-key", "v1ew"), Ok(Role::Viewer));
        for (k, s) in [
            ("admin-key", "wrong"),
            ("nobody", "s3cret"),
            ("admin-key", ""),
        ] {
            assert_eq!(keys.check(k, s).unwrap_err().code, "BAD_API_KEY_OR_SECRET");
        }
        assert!(!Role::Viewer.allows(&Method::DELETE));
        assert!(Role::Viewer.allows(&Method::GET));
    }

    #[test]
    fn a_malformed_bootstrap_line_is_named() {
        let keys = ApiKeys::default();
        assert_eq!(
            keys.bootstrap("ok:fine\nbroken").unwrap_err(),
            "line 2: expected key:secret[:role]"
        );
        assert!(keys
            .bootstrap("k:s:root")
            .unwrap_err()
            .contains("unknown role"));
    }

    #[test]
    fn a_disabled_or_expired_key_is_refused() {
        let keys = ApiKeys::default();
        let mut k = Key::new("n", "k", "s", Role::Administrator);
        k.enable = false;
        keys.keys.write().insert(k.clone());
        assert!(keys.check("k", "s").is_err());
        k.enable = true;
        k.expired_at = Some(1);
        keys.keys.write().insert(k);
        assert!(keys.check("k", "s").is_err());
    }
}
