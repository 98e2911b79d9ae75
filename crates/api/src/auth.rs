//! API keys: HTTP Basic with `key:secret`, from `api_key.bootstrap_file` (EMQX's format,
//! one `key:secret[:role]` per line). Secrets are kept only as salted SHA-256 digests and
//! compared in constant time; roles are `administrator` (anything) and `viewer` (reads).

use crate::error::ApiError;
use axum::http::{header, HeaderMap, Method};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Anything.
    Administrator,
    /// `GET` only.
    Viewer,
}

#[derive(Debug)]
struct Key {
    salt: [u8; 16],
    digest: [u8; 32],
    role: Role,
}

/// The API keys the server accepts.
#[derive(Debug, Default)]
pub struct ApiKeys {
    keys: HashMap<String, Key>,
}

fn digest(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

impl ApiKeys {
    /// Read a bootstrap file's text: `key:secret[:role]` per line; blank lines and `#`
    /// comments are skipped. A malformed line is an error naming its number.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys = ApiKeys::default();
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
                None | Some("administrator") => Role::Administrator,
                Some("viewer") => Role::Viewer,
                Some(other) => return Err(format!("line {}: unknown role `{other}`", i + 1)),
            };
            if key.is_empty() || secret.is_empty() || parts.next().is_some() {
                return Err(format!("line {}: expected key:secret[:role]", i + 1));
            }
            keys.add(key, secret, role);
        }
        Ok(keys)
    }

    /// Accept `key` with `secret`.
    pub fn add(&mut self, key: &str, secret: &str, role: Role) {
        let salt: [u8; 16] = rand_salt();
        let digest = digest(&salt, secret.as_bytes());
        self.keys
            .insert(key.to_string(), Key { salt, digest, role });
    }

    /// The role of the request's `Authorization: Basic` credentials, or 401.
    pub fn check(&self, headers: &HeaderMap) -> Result<Role, ApiError> {
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
        let entry = self.keys.get(key).ok_or_else(ApiError::unauthorized)?;
        let given = digest(&entry.salt, secret.as_bytes());
        // Constant time: every byte is compared whatever the first difference.
        let diff = given
            .iter()
            .zip(entry.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(ApiError::unauthorized());
        }
        Ok(entry.role)
    }

    /// May `role` use `method`?
    pub fn allows(role: Role, method: &Method) -> bool {
        role == Role::Administrator || method == Method::GET || method == Method::HEAD
    }
}

fn rand_salt() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(credentials);
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        h
    }

    #[test]
    fn bootstrap_keys_authenticate_with_their_role() {
        let keys = ApiKeys::parse("# comment\nadmin-key:s3cret\n\nview-key:v1ew:viewer\n").unwrap();
        assert_eq!(
            keys.check(&basic("admin-key:s3cret")),
            Ok(Role::Administrator)
        );
        assert_eq!(keys.check(&basic("view-key:v1ew")), Ok(Role::Viewer));
        for bad in ["admin-key:wrong", "nobody:s3cret", "admin-key", ""] {
            assert_eq!(
                keys.check(&basic(bad)).unwrap_err().code,
                "BAD_API_KEY_OR_SECRET"
            );
        }
        assert!(keys.check(&HeaderMap::new()).is_err());
        assert!(!ApiKeys::allows(Role::Viewer, &Method::DELETE));
        assert!(ApiKeys::allows(Role::Viewer, &Method::GET));
    }

    #[test]
    fn a_malformed_bootstrap_line_is_named() {
        assert_eq!(
            ApiKeys::parse("ok:fine\nbroken").unwrap_err(),
            "line 2: expected key:secret[:role]"
        );
        assert!(ApiKeys::parse("k:s:root")
            .unwrap_err()
            .contains("unknown role"));
    }
}
