//! Authorization as every protocol, and the broker's own will publisher, call it: superusers
//! pass, the built-in rule keeps `$SYS/` for the broker, then `client.authorize` (where the
//! central authorization sources hook in) has the last word.
//!
//! It lives in the broker because the broker publishes wills itself, when their delay or
//! their session ends, long after the connection that set them has gone
//! ([`crate::Broker::publish_will`]). `junction_auth::access` re-exports it for the front ends.

use crate::hooks::{Action, AuthorizeArgs, AuthzResult};
use crate::Hooks;
use junction_types::ClientInfo;

/// The built-in rule: `$SYS/` topics are published by the broker only.
pub fn default_verdict(action: Action, topic: &str) -> AuthzResult {
    match action {
        Action::Publish { .. } if topic.starts_with("$SYS/") => AuthzResult::Deny,
        _ => AuthzResult::Allow,
    }
}

/// May `client` do `action` on `topic` (as the client wrote it)?
pub fn authorize(hooks: &Hooks, client: &ClientInfo, action: Action, topic: &str) -> bool {
    let is_superuser = client.is_superuser;
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
    hooks.client_authorize.run(client, &mut args);
    args.result == AuthzResult::Allow
}
