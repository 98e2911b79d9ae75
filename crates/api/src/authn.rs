//! Authenticators and their built-in users (reference §2.3 and §2.4): a gateway's
//! (`/gateways/{name}/authentication…`), a gateway listener's
//! (`/gateways/{name}/listeners/{id}/authentication…`) and MQTT's
//! (`/authentication/{id}/users…`). The authenticator itself is part of the gateway's
//! configuration (changed through [`junction_gateway::GatewayAdmin`], kept); its users are
//! kept by the built-in database in the data file.

use crate::error::ApiError;
use crate::extract::{Body, Q};
use crate::page::{page_of, paging};
use crate::ApiState;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use junction_auth::{Authenticator, User};
use junction_config::authn::BootstrapType;
use junction_gateway::AuthnOp;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The only authenticator id Junction has.
const BUILTIN_ID: &str = "password_based:built_in_database";

/// An authenticator's settings as the API shows them.
fn with_id(mut config: Value, chain: &str) -> Value {
    if let Value::Object(m) = &mut config {
        m.insert("id".into(), json!(BUILTIN_ID));
        m.insert("chain_name".into(), json!(chain));
    }
    config
}

/// The chain a gateway's or a listener's authenticator runs in.
async fn chain_of(
    state: &ApiState,
    name: &str,
    listener: Option<&str>,
) -> Result<String, ApiError> {
    let ctx = crate::clients::gateway(state, name).await?;
    Ok(listener.map_or_else(|| ctx.global_chain.clone(), str::to_string))
}

async fn get_of(
    state: &ApiState,
    name: &str,
    listener: Option<&str>,
) -> Result<Response, ApiError> {
    match state.gateways.authentication(name, listener).await? {
        Some(config) => {
            let chain = chain_of(state, name, listener).await.unwrap_or_default();
            Ok(Json(with_id(config, &chain)).into_response())
        }
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Check a body as an authenticator before it goes into the configuration, so that a
/// bad one is refused by its own key path.
fn checked(body: Value) -> Result<Value, ApiError> {
    let mut probe = body.clone();
    if let Value::Object(m) = &mut probe {
        m.remove("id");
        m.remove("chain_name");
    }
    serde_json::from_value::<junction_config::authn::AuthnConfig>(probe)
        .map_err(|e| ApiError::bad_request(format!("authentication: {e}")))?;
    Ok(body)
}

async fn set_of(
    state: &ApiState,
    name: &str,
    listener: Option<&str>,
    op: AuthnOp,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let deleting = matches!(op, AuthnOp::Delete);
    let chain = chain_of(state, name, listener).await;
    state
        .gateways
        .set_authentication(name, listener, op)
        .await?;
    if deleting {
        if let Ok(chain) = chain {
            state
                .gateways
                .authn()
                .forget_users(&chain)
                .map_err(|e| ApiError::internal(e.to_string()))?;
        }
        return Ok(status.into_response());
    }
    let config = state
        .gateways
        .authentication(name, listener)
        .await?
        .unwrap_or(Value::Null);
    let chain = chain_of(state, name, listener).await.unwrap_or_default();
    Ok((status, Json(with_id(config, &chain))).into_response())
}

/// `GET /gateways/{name}/authentication`.
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    get_of(&state, &name, None).await
}

/// `POST /gateways/{name}/authentication`.
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let op = AuthnOp::Create(checked(body)?);
    set_of(&state, &name, None, op, StatusCode::CREATED).await
}

/// `PUT /gateways/{name}/authentication`.
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let op = AuthnOp::Update(checked(body)?);
    set_of(&state, &name, None, op, StatusCode::OK).await
}

/// `DELETE /gateways/{name}/authentication`.
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_of(&state, &name, None, AuthnOp::Delete, StatusCode::NO_CONTENT).await
}

/// `GET /gateways/{name}/listeners/{id}/authentication`.
pub(crate) async fn listener_get(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    get_of(&state, &name, Some(&id)).await
}

/// `POST /gateways/{name}/listeners/{id}/authentication`.
pub(crate) async fn listener_create(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let op = AuthnOp::Create(checked(body)?);
    set_of(&state, &name, Some(&id), op, StatusCode::CREATED).await
}

/// `PUT /gateways/{name}/listeners/{id}/authentication`.
pub(crate) async fn listener_update(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let op = AuthnOp::Update(checked(body)?);
    set_of(&state, &name, Some(&id), op, StatusCode::OK).await
}

/// `DELETE /gateways/{name}/listeners/{id}/authentication`.
pub(crate) async fn listener_delete(
    State(state): State<Arc<ApiState>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    set_of(
        &state,
        &name,
        Some(&id),
        AuthnOp::Delete,
        StatusCode::NO_CONTENT,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Users

/// Whose users: a gateway's chain, a listener's, or MQTT's.
enum Users {
    Gateway(String, Option<String>),
    Mqtt(String),
}

async fn database(state: &ApiState, of: &Users) -> Result<Arc<dyn Authenticator>, ApiError> {
    let chain = match of {
        Users::Gateway(name, listener) => chain_of(state, name, listener.as_deref()).await?,
        Users::Mqtt(id) => {
            if id != BUILTIN_ID {
                return Err(ApiError::not_found(format!("authenticator {id} not found")));
            }
            "mqtt:global".to_string()
        }
    };
    state
        .mqtt
        .authn
        .builtin(&chain)
        .ok_or_else(|| ApiError::not_found("no built-in database authenticator here"))
}

/// The built-in database behind an authenticator [`database`] found (an error, not a
/// panic, should that ever not hold).
fn builtin_of(a: &Arc<dyn Authenticator>) -> Result<&junction_auth::BuiltInDatabase, ApiError> {
    a.builtin()
        .ok_or_else(|| ApiError::internal("the authenticator is not a built-in database"))
}

fn user_json(u: &User) -> Value {
    json!({ "user_id": u.user_id, "is_superuser": u.is_superuser })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct UserQuery {
    page: Option<String>,
    limit: Option<String>,
    like_user_id: Option<String>,
    is_superuser: Option<bool>,
}

async fn list_of(state: &ApiState, of: Users, q: UserQuery) -> Result<Json<Value>, ApiError> {
    let paging = paging(q.page.as_deref(), q.limit.as_deref())?;
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    let all: Vec<User> = db
        .users()
        .into_iter()
        .filter(|u| {
            q.like_user_id
                .as_deref()
                .is_none_or(|s| u.user_id.contains(s))
                && q.is_superuser.is_none_or(|f| f == u.is_superuser)
        })
        .collect();
    let filtered = q.like_user_id.is_some() || q.is_superuser.is_some();
    Ok(Json(page_of(&all, paging, !filtered, user_json)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    user_id: String,
    password: String,
    #[serde(default)]
    is_superuser: bool,
}

async fn add_of(
    state: &ApiState,
    of: Users,
    body: Value,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let u: NewUser =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if u.user_id.is_empty() || u.password.is_empty() {
        return Err(ApiError::bad_request(
            "user_id and password may not be empty",
        ));
    }
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    if db.user(&u.user_id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("user {} already exists", u.user_id),
        ));
    }
    db.add_user(&u.user_id, u.password.as_bytes(), u.is_superuser)
        .map_err(ApiError::internal)?;
    let user = db
        .user(&u.user_id)
        .ok_or_else(|| ApiError::internal("lost the user"))?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
}

async fn get_user_of(state: &ApiState, of: Users, uid: &str) -> Result<Json<Value>, ApiError> {
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    db.user(uid)
        .map(|u| Json(user_json(&u)))
        .ok_or_else(|| ApiError::not_found("User not found"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UserChange {
    password: Option<String>,
    is_superuser: Option<bool>,
}

async fn update_user_of(
    state: &ApiState,
    of: Users,
    uid: &str,
    body: Value,
) -> Result<Json<Value>, ApiError> {
    let c: UserChange =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if c.password.as_deref() == Some("") {
        return Err(ApiError::bad_request("password may not be empty"));
    }
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    match db
        .update_user(
            uid,
            c.password.as_deref().map(str::as_bytes),
            c.is_superuser,
        )
        .map_err(ApiError::internal)?
    {
        Some(u) => Ok(Json(user_json(&u))),
        None => Err(ApiError::not_found("User not found")),
    }
}

async fn delete_user_of(state: &ApiState, of: Users, uid: &str) -> Result<StatusCode, ApiError> {
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    if db.delete_user(uid).map_err(ApiError::internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("User not found"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ImportQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Most bytes of an imported user file.
const MAX_IMPORT: usize = 8 << 20;

async fn import_of(
    state: &ApiState,
    of: Users,
    q: ImportQuery,
    mut form: Multipart,
) -> Result<Json<Value>, ApiError> {
    let kind = match q.kind.as_deref() {
        None | Some("plain") => BootstrapType::Plain,
        Some("hash") => BootstrapType::Hash,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "type: `{other}` is not plain or hash"
            )))
        }
    };
    let mut file = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?
    {
        if field.name() != Some("filename") {
            continue;
        }
        let json = field
            .file_name()
            .is_some_and(|f| f.to_ascii_lowercase().ends_with(".json"));
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        if bytes.len() > MAX_IMPORT {
            return Err(ApiError::bad_request("the user file is larger than 8 MiB"));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::bad_request("the user file is not UTF-8"))?;
        file = Some((text, json));
    }
    let (text, json) = file.ok_or_else(|| ApiError::bad_request("no `filename` field"))?;
    let db = database(state, &of).await?;
    let db = builtin_of(&db)?;
    let report = db
        .import(&text, json, kind)
        .map_err(|e| ApiError::bad_request(format!("the user file: {e}")))?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// The list, add and import handlers of one kind of owner (their paths differ).
macro_rules! user_routes {
    ($list:ident, $add:ident, $import:ident, $path:ty, $bind:pat, $make:expr) => {
        pub(crate) async fn $list(
            State(state): State<Arc<ApiState>>,
            Path($bind): Path<$path>,
            Q(q): Q<UserQuery>,
        ) -> Result<Json<Value>, ApiError> {
            list_of(&state, $make, q).await
        }

        pub(crate) async fn $add(
            State(state): State<Arc<ApiState>>,
            Path($bind): Path<$path>,
            Body(body): Body,
        ) -> Result<(StatusCode, Json<Value>), ApiError> {
            add_of(&state, $make, body).await
        }

        pub(crate) async fn $import(
            State(state): State<Arc<ApiState>>,
            Path($bind): Path<$path>,
            Q(q): Q<ImportQuery>,
            form: Multipart,
        ) -> Result<Json<Value>, ApiError> {
            import_of(&state, $make, q, form).await
        }
    };
}

user_routes!(
    users,
    add_user,
    import_users,
    String,
    name,
    Users::Gateway(name, None)
);
user_routes!(
    listener_users,
    listener_add_user,
    listener_import_users,
    (String, String),
    (name, id),
    Users::Gateway(name, Some(id))
);
user_routes!(
    mqtt_users,
    mqtt_add_user,
    mqtt_import_users,
    String,
    id,
    Users::Mqtt(id)
);

/// `GET …/users/{uid}` of a gateway.
pub(crate) async fn user(
    State(state): State<Arc<ApiState>>,
    Path((name, uid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_user_of(&state, Users::Gateway(name, None), &uid).await
}

/// `PUT …/users/{uid}` of a gateway.
pub(crate) async fn update_user(
    State(state): State<Arc<ApiState>>,
    Path((name, uid)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    update_user_of(&state, Users::Gateway(name, None), &uid, body).await
}

/// `DELETE …/users/{uid}` of a gateway.
pub(crate) async fn delete_user(
    State(state): State<Arc<ApiState>>,
    Path((name, uid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete_user_of(&state, Users::Gateway(name, None), &uid).await
}

/// `GET …/users/{uid}` of a listener.
pub(crate) async fn listener_user(
    State(state): State<Arc<ApiState>>,
    Path((name, id, uid)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_user_of(&state, Users::Gateway(name, Some(id)), &uid).await
}

/// `PUT …/users/{uid}` of a listener.
pub(crate) async fn listener_update_user(
    State(state): State<Arc<ApiState>>,
    Path((name, id, uid)): Path<(String, String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    update_user_of(&state, Users::Gateway(name, Some(id)), &uid, body).await
}

/// `DELETE …/users/{uid}` of a listener.
pub(crate) async fn listener_delete_user(
    State(state): State<Arc<ApiState>>,
    Path((name, id, uid)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    delete_user_of(&state, Users::Gateway(name, Some(id)), &uid).await
}

/// `GET /authentication/{id}/users/{uid}` (MQTT).
pub(crate) async fn mqtt_user(
    State(state): State<Arc<ApiState>>,
    Path((id, uid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_user_of(&state, Users::Mqtt(id), &uid).await
}

/// `PUT /authentication/{id}/users/{uid}` (MQTT).
pub(crate) async fn mqtt_update_user(
    State(state): State<Arc<ApiState>>,
    Path((id, uid)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    update_user_of(&state, Users::Mqtt(id), &uid, body).await
}

/// `DELETE /authentication/{id}/users/{uid}` (MQTT).
pub(crate) async fn mqtt_delete_user(
    State(state): State<Arc<ApiState>>,
    Path((id, uid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete_user_of(&state, Users::Mqtt(id), &uid).await
}
