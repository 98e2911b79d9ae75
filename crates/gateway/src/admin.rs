//! Gateways changed at run time: what the management API and the CLI do to gateways and
//! their listeners (reference §2.2 and §2.4), applied through the [`Registry`] and kept.
//!
//! The configuration in effect is the file's with the changes made here applied over it,
//! one whole `gateway.<name>` section per changed gateway, as EMQX's `cluster.hocon`
//! overrides its file. Every change is checked and applied before it is kept: a change
//! the gateway cannot take is refused with the offending key and leaves nothing behind.
//! The changes live in a [`ChangeStore`] (the data directory), never in the operator's
//! file.

use crate::registry::Registry;
use crate::runner::GatewayEnv;
use junction_config::{Config, ConfigError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the changes are kept, by gateway name. The server keeps them in its data file.
pub trait ChangeStore: Send + Sync {
    /// Every kept change.
    fn load(&self) -> anyhow::Result<Vec<(String, Value)>>;
    /// Keep `change` for `gateway`, durably, before returning.
    fn save(&self, gateway: &str, change: &Value) -> anyhow::Result<()>;
}

/// What was done to one gateway, as kept.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// Its section is this one, not the file's.
    Section(Value),
    /// Unloaded: it does not run and has no configuration.
    Unloaded,
}

impl Change {
    fn to_json(&self) -> Value {
        match self {
            Change::Section(section) => json!({ "section": section }),
            Change::Unloaded => json!({ "unloaded": true }),
        }
    }

    fn from_json(value: &Value) -> Option<Change> {
        if value.get("unloaded") == Some(&Value::Bool(true)) {
            return Some(Change::Unloaded);
        }
        match value.get("section") {
            Some(section @ Value::Object(_)) => Some(Change::Section(section.clone())),
            _ => None,
        }
    }
}

/// A gateway's state as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Loaded and enabled.
    Running,
    /// Loaded with `enable = false`.
    Stopped,
    /// No configuration.
    Unloaded,
}

impl Status {
    /// EMQX's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Unloaded => "unloaded",
        }
    }
}

/// When a gateway was loaded, started and stopped (epoch milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    /// Loaded.
    pub created_at: u64,
    /// Last started (while running).
    pub started_at: Option<u64>,
    /// Last stopped (while stopped).
    pub stopped_at: Option<u64>,
}

/// One gateway as the API reports it.
#[derive(Debug, Clone)]
pub struct GatewayState {
    /// Its name.
    pub name: &'static str,
    /// Running, stopped or unloaded.
    pub status: Status,
    /// Its timestamps (meaningless when unloaded).
    pub times: Times,
    /// Its section with every default filled in (`Null` when unloaded).
    pub config: Value,
}

/// What [`GatewayAdmin::set_authentication`] does.
#[derive(Debug, Clone)]
pub enum AuthnOp {
    /// Add this authenticator; refused if there is one.
    Create(Value),
    /// Replace the authenticator; refused if there is none.
    Update(Value),
    /// Remove it (nothing to do if there is none).
    Delete,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No gateway of that name is registered.
    #[error("gateway {0} is not registered")]
    UnknownGateway(String),
    /// The gateway is unloaded.
    #[error("Gateway not loaded")]
    NotLoaded,
    /// The gateway is loaded already (a load).
    #[error("The {0} gateway already loaded")]
    AlreadyLoaded(String),
    /// No such listener.
    #[error("Listener not found")]
    ListenerNotFound,
    /// A listener of that type and name exists already.
    #[error("Listener name has occupied")]
    ListenerExists,
    /// The request is wrong (a missing or read-only key).
    #[error("{0}")]
    BadRequest(String),
    /// The configuration the change leads to is invalid.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// Applying it failed (an address in use, a certificate that does not load, …).
    #[error("{0:#}")]
    Apply(anyhow::Error),
    /// It ran but could not be kept (the data file failed).
    #[error("the change could not be kept: {0:#}")]
    Store(anyhow::Error),
}

struct State {
    /// The operator's file.
    file: Config,
    /// The changes over it, by gateway.
    changes: BTreeMap<String, Change>,
    times: BTreeMap<&'static str, Times>,
}

impl State {
    /// The file with every change applied.
    fn effective(&self) -> Result<Config, ConfigError> {
        let mut config = self.file.clone();
        for (name, change) in &self.changes {
            let section = match change {
                Change::Section(section) => section.clone(),
                // Not run; its keys are gone.
                Change::Unloaded => json!({ "enable": false }),
            };
            config.gateway.set_section(name, Some(&section))?;
        }
        Ok(config)
    }

    fn unloaded(&self, name: &str) -> bool {
        self.changes.get(name) == Some(&Change::Unloaded)
    }
}

/// The gateways a server runs, changed at run time and kept.
pub struct GatewayAdmin {
    registry: Arc<Registry>,
    env: GatewayEnv,
    store: Option<Arc<dyn ChangeStore>>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for GatewayAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAdmin")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Keys of a gateway object the API reports and a request may send back: ignored.
const READ_ONLY: &[&str] = &[
    "name",
    "status",
    "created_at",
    "started_at",
    "stopped_at",
    "max_connections",
    "current_connections",
    "node_status",
];

/// Keys of a listener object the API reports and a request may send back: ignored.
const LISTENER_READ_ONLY: &[&str] = &[
    "id",
    "type",
    "name",
    "running",
    "status",
    "node_status",
    "current_connections",
];

impl GatewayAdmin {
    /// Read the kept changes, apply them over `file` and run the gateways that result.
    pub async fn start(
        registry: Arc<Registry>,
        env: GatewayEnv,
        file: &Config,
        store: Option<Arc<dyn ChangeStore>>,
    ) -> anyhow::Result<GatewayAdmin> {
        let mut changes = BTreeMap::new();
        if let Some(store) = &store {
            for (name, value) in store.load()? {
                if !registry.has(&name) {
                    tracing::warn!(gateway = %name, "a kept change names a gateway this build does not have; ignored");
                    continue;
                }
                match Change::from_json(&value) {
                    Some(change) => {
                        changes.insert(name, change);
                    }
                    None => anyhow::bail!("the kept change to gateway {name} is unreadable"),
                }
            }
        }
        let state = State {
            file: file.clone(),
            changes,
            times: BTreeMap::new(),
        };
        let effective = state.effective()?;
        registry.apply(&env, &effective).await?;
        let admin = GatewayAdmin {
            registry,
            env,
            store,
            state: tokio::sync::Mutex::new(state),
        };
        let mut state = admin.state.lock().await;
        admin.stamp(&mut state).await;
        drop(state);
        Ok(admin)
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The node's authentication chains, which the gateways' authenticators are part of.
    pub fn authn(&self) -> &Arc<junction_auth::AuthnChains> {
        &self.env.authn
    }

    /// Record start and stop times of gateways whose status changed.
    async fn stamp(&self, state: &mut State) {
        let now = junction_types::now_ms();
        for name in self.registry.names() {
            let status = self.status_of(state, name).await;
            let times = state.times.entry(name).or_insert(Times {
                created_at: now,
                ..Times::default()
            });
            match status {
                Status::Running if times.started_at.is_none() => {
                    times.started_at = Some(now);
                    times.stopped_at = None;
                }
                Status::Stopped if times.stopped_at.is_none() => {
                    times.stopped_at = Some(now);
                    times.started_at = None;
                }
                Status::Unloaded => {
                    *times = Times {
                        created_at: now,
                        ..Times::default()
                    };
                }
                _ => {}
            }
        }
    }

    async fn status_of(&self, state: &State, name: &str) -> Status {
        if state.unloaded(name) {
            Status::Unloaded
        } else if self.registry.gateway(name).await.is_some() {
            Status::Running
        } else {
            Status::Stopped
        }
    }

    /// Every registered gateway, in registration order.
    pub async fn list(&self) -> Result<Vec<GatewayState>, AdminError> {
        let state = self.state.lock().await;
        let effective = state.effective()?;
        let mut all = Vec::new();
        for name in self.registry.names() {
            all.push(self.describe(&state, &effective, name).await?);
        }
        Ok(all)
    }

    /// One gateway.
    pub async fn get(&self, name: &str) -> Result<GatewayState, AdminError> {
        let name = self.registered(name)?;
        let state = self.state.lock().await;
        let effective = state.effective()?;
        self.describe(&state, &effective, name).await
    }

    async fn describe(
        &self,
        state: &State,
        effective: &Config,
        name: &'static str,
    ) -> Result<GatewayState, AdminError> {
        let status = self.status_of(state, name).await;
        let config = if status == Status::Unloaded {
            Value::Null
        } else {
            self.registry
                .filled(name, &effective.gateway)
                .expect("registered")?
        };
        Ok(GatewayState {
            name,
            status,
            times: state.times.get(name).copied().unwrap_or_default(),
            config,
        })
    }

    fn registered(&self, name: &str) -> Result<&'static str, AdminError> {
        self.registry
            .names()
            .find(|n| *n == name)
            .ok_or_else(|| AdminError::UnknownGateway(name.to_string()))
    }

    /// Load gateway `name` with `body` (EMQX's gateway object: `listeners` as a list), or,
    /// when it is loaded, update it: the body's keys replace the section's (`listeners`
    /// and `authentication` included, when given). With `replace`, the body is the whole
    /// new section whether or not the gateway is loaded.
    pub async fn put(&self, name: &str, body: &Value, replace: bool) -> Result<(), AdminError> {
        let name = self.registered(name)?;
        let body = gateway_body(body)?;
        let mut state = self.state.lock().await;
        let section = if replace || state.unloaded(name) {
            body
        } else {
            let mut section = current_section(&state, name);
            for (k, v) in body {
                section.insert(k, v);
            }
            section
        };
        self.change(&mut state, name, Change::Section(Value::Object(section)))
            .await
    }

    /// Load gateway `name`, refused if it is loaded (the CLI's `gateway load`).
    pub async fn load(&self, name: &str, body: &Value) -> Result<(), AdminError> {
        let gateway = self.registered(name)?;
        if !self.state.lock().await.unloaded(gateway) {
            return Err(AdminError::AlreadyLoaded(gateway.to_string()));
        }
        self.put(gateway, body, true).await
    }

    /// Unload gateway `name`: stop it, drop its configuration.
    pub async fn unload(&self, name: &str) -> Result<(), AdminError> {
        let name = self.registered(name)?;
        let mut state = self.state.lock().await;
        if state.unloaded(name) {
            return Err(AdminError::NotLoaded);
        }
        self.change(&mut state, name, Change::Unloaded).await
    }

    /// Set `enable` of a loaded gateway.
    pub async fn enable(&self, name: &str, enable: bool) -> Result<(), AdminError> {
        let name = self.registered(name)?;
        let mut state = self.state.lock().await;
        if state.unloaded(name) {
            return Err(AdminError::NotLoaded);
        }
        let mut section = current_section(&state, name);
        section.insert("enable".into(), Value::Bool(enable));
        self.change(&mut state, name, Change::Section(Value::Object(section)))
            .await
    }

    /// The listeners of a loaded gateway, each its filled configuration with `id`, `type`
    /// and `name`.
    pub async fn listeners(&self, name: &str) -> Result<Vec<Value>, AdminError> {
        let config = self.loaded_config(name).await?;
        Ok(listener_objects(name, &config))
    }

    /// One listener, by id `<gateway>:<type>:<name>`.
    pub async fn listener(&self, name: &str, id: &str) -> Result<Value, AdminError> {
        let (kind, lname) = split_id(name, id)?;
        let config = self.loaded_config(name).await?;
        listener_objects(name, &config)
            .into_iter()
            .find(|l| l["type"] == kind && l["name"] == lname)
            .ok_or(AdminError::ListenerNotFound)
    }

    async fn loaded_config(&self, name: &str) -> Result<Value, AdminError> {
        let state = self.get(name).await?;
        if state.status == Status::Unloaded {
            return Err(AdminError::NotLoaded);
        }
        Ok(state.config)
    }

    /// Add a listener: `body` has `type`, `name` and `bind`.
    pub async fn add_listener(&self, name: &str, body: &Value) -> Result<String, AdminError> {
        let name = self.registered(name)?;
        let Value::Object(body) = body else {
            return Err(AdminError::BadRequest("expected a JSON object".into()));
        };
        let text = |key: &str| match body.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Null) | None => Err(AdminError::BadRequest(format!("`{key}` is required"))),
            Some(_) => Err(AdminError::BadRequest(format!("`{key}` must be a string"))),
        };
        let (kind, lname) = (text("type")?, text("name")?);
        if body.get("bind").is_none_or(Value::is_null) {
            return Err(AdminError::BadRequest("`bind` is required".into()));
        }
        let mut state = self.state.lock().await;
        if state.unloaded(name) {
            return Err(AdminError::NotLoaded);
        }
        let mut section = current_section(&state, name);
        let listeners = object_at(&mut section, "listeners");
        let of_kind = object_at(listeners, &kind);
        if of_kind.contains_key(&lname) {
            return Err(AdminError::ListenerExists);
        }
        of_kind.insert(lname.clone(), Value::Object(listener_body(body)));
        self.change(&mut state, name, Change::Section(Value::Object(section)))
            .await?;
        Ok(format!("{name}:{kind}:{lname}"))
    }

    /// Replace listener `id`'s configuration with `body`.
    pub async fn update_listener(
        &self,
        name: &str,
        id: &str,
        body: &Value,
    ) -> Result<(), AdminError> {
        let Value::Object(body) = body else {
            return Err(AdminError::BadRequest("expected a JSON object".into()));
        };
        let missing = || AdminError::BadRequest(format!("Listener {id} not found"));
        self.edit_listener(name, id, missing, |of_kind, lname| {
            of_kind.insert(lname.to_string(), Value::Object(listener_body(body)));
        })
        .await
    }

    /// Remove listener `id`.
    pub async fn delete_listener(&self, name: &str, id: &str) -> Result<(), AdminError> {
        self.edit_listener(
            name,
            id,
            || AdminError::ListenerNotFound,
            |of_kind, lname| {
                of_kind.remove(lname);
            },
        )
        .await
    }

    /// The section of loaded gateway `name` as written, and as filled with defaults.
    fn loaded_section(
        &self,
        state: &State,
        name: &str,
    ) -> Result<(Map<String, Value>, Value), AdminError> {
        if state.unloaded(name) {
            return Err(AdminError::NotLoaded);
        }
        let filled = self
            .registry
            .filled(name, &state.effective()?.gateway)
            .expect("registered")?;
        Ok((current_section(state, name), filled))
    }

    /// Edit listener `id` of gateway `name`: `edit` gets the listeners of its type (the
    /// section's, written out from the defaults first, since a listener may come from
    /// them) and its name. Refused with `missing()` when the listener does not exist.
    async fn edit_listener(
        &self,
        name: &str,
        id: &str,
        missing: impl FnOnce() -> AdminError,
        edit: impl FnOnce(&mut Map<String, Value>, &str),
    ) -> Result<(), AdminError> {
        let name = self.registered(name)?;
        let (kind, lname) = split_id(name, id)?;
        let mut state = self.state.lock().await;
        let (mut section, filled) = self.loaded_section(&state, name)?;
        if filled["listeners"][kind].get(lname).is_none() {
            return Err(missing());
        }
        materialize_listeners(&mut section, &filled);
        edit(object_at(object_at(&mut section, "listeners"), kind), lname);
        self.change(&mut state, name, Change::Section(Value::Object(section)))
            .await
    }

    /// The authenticator of gateway `name`, or of its listener `listener` (an id), with
    /// its defaults; `None` when it has none.
    pub async fn authentication(
        &self,
        name: &str,
        listener: Option<&str>,
    ) -> Result<Option<Value>, AdminError> {
        let config = self.loaded_config(name).await?;
        let value = match listener {
            None => config.get("authentication").cloned(),
            Some(id) => {
                let (kind, lname) = split_id(name, id)?;
                let l = config["listeners"][kind]
                    .get(lname)
                    .ok_or(AdminError::ListenerNotFound)?;
                l.get("authentication").cloned()
            }
        };
        Ok(value.filter(|v| !v.is_null()))
    }

    /// Create, replace or remove the authenticator of gateway `name` or of its listener
    /// `listener`: `op` says which, and refuses a create over one that exists or a
    /// replace of none with EMQX's texts.
    pub async fn set_authentication(
        &self,
        name: &str,
        listener: Option<&str>,
        op: AuthnOp,
    ) -> Result<(), AdminError> {
        let name = self.registered(name)?;
        let mut state = self.state.lock().await;
        let (mut section, filled) = self.loaded_section(&state, name)?;
        let (target, exists, on) = match listener {
            None => {
                let exists = filled.get("authentication").is_some_and(|v| !v.is_null());
                (&mut section, exists, name.to_string())
            }
            Some(id) => {
                let (kind, lname) = split_id(name, id)?;
                let Some(l) = filled["listeners"][kind].get(lname) else {
                    return Err(AdminError::ListenerNotFound);
                };
                let exists = l.get("authentication").is_some_and(|v| !v.is_null());
                materialize_listeners(&mut section, &filled);
                let l = object_at(object_at(object_at(&mut section, "listeners"), kind), lname);
                (l, exists, id.to_string())
            }
        };
        match op {
            AuthnOp::Create(_) if exists => {
                return Err(AdminError::BadRequest(format!(
                    "The authentication already exist on {on}"
                )))
            }
            AuthnOp::Update(_) if !exists => {
                return Err(AdminError::BadRequest(format!(
                    "The authentication not found on {on}"
                )))
            }
            AuthnOp::Create(v) | AuthnOp::Update(v) => {
                let mut v = v;
                if let Value::Object(m) = &mut v {
                    // What the API reports beside the settings.
                    m.remove("id");
                    m.remove("chain_name");
                }
                target.insert("authentication".into(), v);
            }
            AuthnOp::Delete => {
                target.remove("authentication");
            }
        }
        self.change(&mut state, name, Change::Section(Value::Object(section)))
            .await
    }

    /// Replace the file (`junction ctl reload`): the kept changes still apply over it.
    pub async fn reload(&self, file: &Config) -> Result<(), AdminError> {
        let mut state = self.state.lock().await;
        let old = std::mem::replace(&mut state.file, file.clone());
        let result = self.apply(&mut state).await;
        if result.is_err() {
            state.file = old;
            let _ = self.apply(&mut state).await;
        }
        result
    }

    /// Check and apply `change` to gateway `name`; keep it once it runs. On failure the
    /// previous configuration is restored.
    async fn change(
        &self,
        state: &mut State,
        name: &str,
        change: Change,
    ) -> Result<(), AdminError> {
        let old = state.changes.insert(name.to_string(), change.clone());
        let result = self.apply(state).await;
        if let Err(e) = result {
            match old {
                Some(old) => state.changes.insert(name.to_string(), old),
                None => state.changes.remove(name),
            };
            let _ = self.apply(state).await;
            return Err(e);
        }
        if let Some(store) = &self.store {
            store
                .save(name, &change.to_json())
                .map_err(AdminError::Store)?;
        }
        Ok(())
    }

    async fn apply(&self, state: &mut State) -> Result<(), AdminError> {
        let effective = state.effective()?;
        self.registry.check(&effective)?;
        self.registry
            .apply(&self.env, &effective)
            .await
            .map_err(AdminError::Apply)?;
        self.stamp(state).await;
        Ok(())
    }
}

/// The section of `name` in effect, as written (an empty object when neither the file
/// nor a change has one).
fn current_section(state: &State, name: &str) -> Map<String, Value> {
    let section = match state.changes.get(name) {
        Some(Change::Section(Value::Object(s))) => Some(s.clone()),
        Some(_) => None,
        None => match state.file.gateway.section_json(name) {
            Some(Value::Object(s)) => Some(s),
            _ => None,
        },
    };
    section.unwrap_or_default()
}

/// When the section does not write its listeners (they come from the defaults), write
/// the filled ones, so that changing one keeps the others.
fn materialize_listeners(section: &mut Map<String, Value>, filled: &Value) {
    if !section.contains_key("listeners") {
        let mut listeners = Map::new();
        if let Some(Value::Object(kinds)) = filled.get("listeners") {
            for (kind, named) in kinds {
                listeners.insert(kind.clone(), named.clone());
            }
        }
        section.insert("listeners".into(), Value::Object(listeners));
    }
}

fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("made an object above"),
    }
}

/// A gateway object from a request as a section: read-only keys dropped, `listeners` as
/// EMQX's list turned into `listeners.<type>.<name>`.
fn gateway_body(body: &Value) -> Result<Map<String, Value>, AdminError> {
    let Value::Object(body) = body else {
        return Err(AdminError::BadRequest("expected a JSON object".into()));
    };
    let mut section = Map::new();
    for (key, value) in body {
        if READ_ONLY.contains(&key.as_str()) {
            continue;
        }
        if key == "listeners" {
            section.insert(key.clone(), listeners_from_list(value)?);
        } else {
            section.insert(key.clone(), value.clone());
        }
    }
    Ok(section)
}

fn listeners_from_list(value: &Value) -> Result<Value, AdminError> {
    let items = match value {
        Value::Array(items) => items,
        // Already in the file's shape.
        Value::Object(_) => return Ok(value.clone()),
        _ => {
            return Err(AdminError::BadRequest(
                "listeners: expected a list of listeners".into(),
            ))
        }
    };
    let mut kinds = Map::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(l) = item else {
            return Err(AdminError::BadRequest(format!(
                "listeners[{i}]: expected an object"
            )));
        };
        let field = |key: &str| match l.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(AdminError::BadRequest(format!(
                "listeners[{i}]: `{key}` is required"
            ))),
        };
        let (kind, name) = (field("type")?, field("name")?);
        let named = object_at(&mut kinds, &kind);
        if named.contains_key(&name) {
            return Err(AdminError::BadRequest(format!(
                "listeners[{i}]: a {kind} listener named {name} is listed twice"
            )));
        }
        named.insert(name, Value::Object(listener_body(l)));
    }
    Ok(Value::Object(kinds))
}

fn listener_body(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(k, _)| !LISTENER_READ_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `<gateway>:<type>:<name>` into type and name; an id of another gateway or of no known
/// shape is not found.
fn split_id<'a>(gateway: &str, id: &'a str) -> Result<(&'a str, &'a str), AdminError> {
    let mut parts = id.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(g), Some(kind), Some(name))
            if g == gateway && !kind.is_empty() && !name.is_empty() =>
        {
            Ok((kind, name))
        }
        _ => Err(AdminError::ListenerNotFound),
    }
}

/// The listeners of a filled gateway configuration as EMQX's list: each listener's
/// settings with its `id`, `type` and `name`.
pub fn listener_objects(gateway: &str, config: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    if let Some(Value::Object(kinds)) = config.get("listeners") {
        for (kind, named) in kinds {
            let Value::Object(named) = named else {
                continue;
            };
            for (name, l) in named {
                let mut obj = match l {
                    Value::Object(m) => m.clone(),
                    _ => Map::new(),
                };
                obj.insert("id".into(), json!(format!("{gateway}:{kind}:{name}")));
                obj.insert("type".into(), json!(kind));
                obj.insert("name".into(), json!(name));
                all.push(Value::Object(obj));
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_list_becomes_the_files_shape() {
        let body = json!({
            "name": "mqttsn", "enable": true, "gateway_id": 1, "mountpoint": "mqttsn/",
            "listeners": [{"type": "udp", "bind": "1884", "name": "default",
                           "max_conn_rate": 1000, "running": true}]
        });
        let section = gateway_body(&body).unwrap();
        assert_eq!(
            Value::Object(section),
            json!({"enable": true, "gateway_id": 1, "mountpoint": "mqttsn/",
                   "listeners": {"udp": {"default": {"bind": "1884", "max_conn_rate": 1000}}}})
        );
    }

    #[test]
    fn a_listener_without_type_or_name_is_refused_by_name() {
        let e = gateway_body(&json!({"listeners": [{"bind": 1}]})).unwrap_err();
        assert_eq!(e.to_string(), "listeners[0]: `type` is required");
        let e = gateway_body(
            &json!({"listeners": [{"type": "udp", "name": "a"}, {"type": "udp", "name": "a"}]}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
    }

    #[test]
    fn listener_ids_name_their_gateway() {
        assert_eq!(split_id("stomp", "stomp:tcp:def").unwrap(), ("tcp", "def"));
        assert!(split_id("stomp", "mqttsn:udp:def").is_err());
        assert!(split_id("stomp", "stomp:tcp").is_err());
        assert!(split_id("stomp", "stomp::x").is_err());
    }

    #[test]
    fn kept_changes_read_back() {
        for change in [Change::Section(json!({"enable": false})), Change::Unloaded] {
            assert_eq!(Change::from_json(&change.to_json()), Some(change));
        }
        assert_eq!(Change::from_json(&json!({"section": 1})), None);
    }
}
