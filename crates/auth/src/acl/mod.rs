//! The `file` authorization source: EMQX's `acl.conf` ([`rules`]), in its term syntax
//! ([`term`]).

pub mod rules;
pub mod term;

pub use rules::{AclError, AclRules, Permission};

/// The rules a default install applies, as EMQX ships them: `$SYS/#` and the literal `#`
/// filter are for clients on this machine (and the `dashboard` user) only; everything
/// else is allowed.
pub const DEFAULT_ACL: &str = r##"%% Junction's default acl.conf (EMQX's rules).
%% The dashboard user may subscribe to the broker's $SYS topics.
{allow, {username, {re, "^dashboard$"}}, subscribe, ["$SYS/#"]}.
%% Clients on this machine may publish and subscribe to anything.
{allow, {ipaddrs, ["127.0.0.1", "::1"]}, all, ["$SYS/#", "#"]}.
%% Nobody else subscribes to $SYS/# or to the literal filter "#".
{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.
%% Everything else is allowed (in production, end with {deny, all} and set
%% authorization.no_match = deny).
{allow, all}.
"##;
