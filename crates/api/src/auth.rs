//! Who is calling: an API key (HTTP Basic `key:secret`, see [`crate::keys`]) or a dashboard
//! user's bearer token from `POST /login` (see [`crate::users`]). Administrators may do
//! anything; viewers only read (403 `UNAUTHORIZED_ROLE` otherwise).

use crate::error::ApiError;
use crate::keys::Role;
use crate::ApiState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use std::sync::Arc;

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The role of the request's credentials, or 401.
pub(crate) fn role(state: &ApiState, headers: &HeaderMap) -> Result<Role, ApiError> {
    if let Some(token) = bearer(headers) {
        return state.users.check_token(token).map(|(_, role)| role);
    }
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or_else(ApiError::unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| ApiError::unauthorized())?;
    let (key, secret) = text.split_once(':').ok_or_else(ApiError::unauthorized)?;
    state.keys.check(key, secret)
}

/// Every request carries credentials; a viewer only reads.
pub(crate) async fn authenticate(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let role = role(&state, request.headers())?;
    if !role.allows(request.method()) {
        return Err(ApiError::forbidden_role());
    }
    Ok(next.run(request).await)
}
