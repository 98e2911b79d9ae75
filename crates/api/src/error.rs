//! EMQX's error shape: a status and `{"code": "...", "message": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error as EMQX reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// EMQX's code (`BAD_REQUEST`, `NOT_FOUND`, `BAD_API_KEY_OR_SECRET`, …).
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// 400 `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 400 `INVALID_PARAMETER` (paging).
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 500 `UNKNOWN_ERROR`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN_ERROR", message)
    }

    /// 401 `BAD_API_KEY_OR_SECRET`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "BAD_API_KEY_OR_SECRET",
            "Check api_key/api_secret",
        )
    }

    /// 403 `UNAUTHORIZED_ROLE`.
    pub fn forbidden_role() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "UNAUTHORIZED_ROLE",
            "This role cannot change anything",
        )
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic Realm=\"junction-dashboard\""),
            );
        }
        response
    }
}
