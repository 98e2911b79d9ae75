//! Access control as every protocol calls it: authentication through the chains and then
//! `client.authenticate`; authorization through the built-in rule and then
//! `client.authorize` (superusers skip it).
//!
//! The MQTT listener and every gateway call these two functions, so a hook or an
//! authenticator sees every protocol the same way.

use crate::AuthnChains;
use bytes::Bytes;
use junction_broker::hooks::{Action, AuthenticateArgs, AuthnResult, AuthorizeArgs, AuthzResult};
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

/// The built-in rule: `$SYS/` topics are published by the broker only.
pub fn default_verdict(action: Action, topic: &str) -> AuthzResult {
    match action {
        Action::Publish { .. } if topic.starts_with("$SYS/") => AuthzResult::Deny,
        _ => AuthzResult::Allow,
    }
}

/// May the client do `action` on `topic` (as the client wrote it)? `client` builds the
/// client's info, and is called only when a `client.authorize` handler needs it, so the
/// publish path allocates nothing while no one hooks in.
pub fn authorize(
    hooks: &Hooks,
    is_superuser: bool,
    action: Action,
    topic: &str,
    client: impl FnOnce() -> ClientInfo,
) -> bool {
    if is_superuser {
        return true;
    }
    let verdict = default_verdict(action, topic);
    if hooks.client_authorize.is_empty() {
        return verdict == AuthzResult::Allow;
    }
    let mut args = AuthorizeArgs {
        action,
        topic: topic.to_string(),
        result: verdict,
    };
    hooks.client_authorize.run(&client(), &mut args);
    args.result == AuthzResult::Allow
}
