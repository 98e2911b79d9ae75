//! Access control as every protocol calls it: authentication through the chains and then
//! `client.authenticate`; authorization through the built-in rule and then
//! `client.authorize` (superusers skip it).
//!
//! The MQTT listener and every gateway call these two functions, so a hook or an
//! authenticator sees every protocol the same way.

use crate::AuthnChains;
use bytes::Bytes;
use junction_broker::hooks::{AuthenticateArgs, AuthnResult};
use junction_broker::Hooks;
use junction_types::ClientInfo;

/// Authenticate `client` with its listener's chain, else `global` (`mqtt:global`,
/// `stomp:global`, …), then let `client.authenticate` have the last word.
pub async fn authenticate(
    hooks: &Hooks,
    chains: &AuthnChains,
    client: &ClientInfo,
    global: &str,
    password: Option<&[u8]>,
) -> AuthnResult {
    let result = chains.authenticate(client, global, password).await;
    if hooks.client_authenticate.is_empty() {
        return result;
    }
    let mut args = AuthenticateArgs {
        password: password.map(Bytes::copy_from_slice),
        result,
    };
    hooks.client_authenticate.run(client, &mut args);
    args.result
}

pub use junction_broker::access::{authorize, default_verdict};
