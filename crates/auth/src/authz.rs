//! Central authorization: the configured sources, in order, on the `client.authorize`
//! hook, for every protocol's publish and subscribe (and the broker's wills).
//!
//! Today's source is `file` (EMQX's `acl.conf`, [`crate::acl`]). A source that has a rule
//! for the request decides it; when none has, `authorization.no_match` does. The built-in
//! rule that keeps `$SYS/` publishes for the broker runs first and is not overridden.

use crate::acl::{AclRules, Permission, DEFAULT_ACL};
use junction_broker::hooks::{AuthorizeArgs, AuthzResult, Flow, Hooks};
use junction_config::{AuthorizationConfig, AuthzVerdict};
use junction_types::ClientInfo;
use std::path::Path;
use std::sync::Arc;

/// One source.
#[derive(Debug)]
pub enum Source {
    /// Rules of an `acl.conf`.
    File(AclRules),
}

/// Why the `authorization` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// A source entry that is malformed or of a type not served.
    #[error("authorization.sources[{index}]: {why}")]
    Source {
        /// 0-based position in `sources`.
        index: usize,
        /// What was wrong.
        why: String,
    },
}

/// The sources and the verdict when none matches.
#[derive(Debug)]
pub struct Authorization {
    sources: Vec<Source>,
    no_match: AuthzResult,
}

impl Authorization {
    /// The sources of `config`; relative `path`s are read from `base`. Without a
    /// `sources` key, the default `acl.conf` applies, as in a default EMQX install.
    pub fn from_config(
        config: &AuthorizationConfig,
        base: &Path,
    ) -> Result<Authorization, AuthzError> {
        let no_match = match config.no_match {
            AuthzVerdict::Allow => AuthzResult::Allow,
            AuthzVerdict::Deny => AuthzResult::Deny,
        };
        let Some(entries) = &config.sources else {
            let rules = AclRules::parse(DEFAULT_ACL).expect("the default acl.conf parses");
            return Ok(Authorization {
                sources: vec![Source::File(rules)],
                no_match,
            });
        };
        let mut sources = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let fail = |why: String| AuthzError::Source { index, why };
            let Some(obj) = entry.as_object() else {
                return Err(fail("a source is an object".into()));
            };
            let enable = match obj.get("enable") {
                None => true,
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| fail("enable is true or false".into()))?,
            };
            match obj.get("type").and_then(|t| t.as_str()) {
                Some("file") => {
                    for key in obj.keys() {
                        if !matches!(key.as_str(), "type" | "enable" | "path") {
                            return Err(fail(format!("{key}: unknown key of a file source")));
                        }
                    }
                    let Some(path) = obj.get("path").and_then(|p| p.as_str()) else {
                        return Err(fail("a file source needs a path".into()));
                    };
                    if !enable {
                        continue;
                    }
                    let path = base.join(path);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    let rules = AclRules::parse(&text)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                    sources.push(Source::File(rules));
                }
                Some(other) => {
                    return Err(fail(format!("type = {other}: not supported yet (file is)")))
                }
                None => return Err(fail("a source needs a type".into())),
            }
        }
        Ok(Authorization { sources, no_match })
    }

    /// The verdict for `client` doing `args.action` on `args.topic`.
    pub fn check(&self, client: &ClientInfo, args: &AuthorizeArgs) -> AuthzResult {
        for source in &self.sources {
            let found = match source {
                Source::File(rules) => rules.check(client, args.action, &args.topic),
            };
            match found {
                Some(Permission::Allow) => return AuthzResult::Allow,
                Some(Permission::Deny) => return AuthzResult::Deny,
                None => {}
            }
        }
        self.no_match
    }

    /// True if every request is allowed whatever it is (no sources, `no_match = allow`).
    pub fn allows_everything(&self) -> bool {
        self.sources.is_empty() && self.no_match == AuthzResult::Allow
    }

    /// Check every request on `hooks`' `client.authorize`, after the built-in rule. With
    /// nothing to check, no handler is added (the publish path then skips the hook).
    pub fn install(self: Arc<Self>, hooks: &Hooks) {
        if self.allows_everything() {
            return;
        }
        let handler = move |client: &ClientInfo, args: &mut AuthorizeArgs| {
            if args.result == AuthzResult::Allow {
                args.result = self.check(client, args);
            }
            Flow::Continue
        };
        // Ahead of handlers added later (plugins, tests), which then see the sources'
        // verdict and may change it.
        hooks.client_authorize.add(1000, Arc::new(handler));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_broker::hooks::Action;
    use junction_types::QoS;

    fn config(sources: serde_json::Value, no_match: AuthzVerdict) -> AuthorizationConfig {
        AuthorizationConfig {
            no_match,
            sources: serde_json::from_value(sources).unwrap(),
            ..AuthorizationConfig::default()
        }
    }

    fn args(topic: &str) -> AuthorizeArgs {
        AuthorizeArgs {
            action: Action::Subscribe {
                qos: QoS::AtMostOnce,
            },
            topic: topic.into(),
            result: AuthzResult::Allow,
        }
    }

    #[test]
    fn file_sources_in_order_then_no_match() {
        let dir = std::env::temp_dir().join(format!("junction-authz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.conf"),
            "{deny, all, subscribe, [\"secret/#\"]}.",
        )
        .unwrap();
        std::fs::write(dir.join("b.conf"), "{allow, all, subscribe, [\"open/#\"]}.").unwrap();
        let c = config(
            serde_json::json!([
                {"type": "file", "path": "a.conf"},
                {"type": "file", "enable": false, "path": "missing.conf"},
                {"type": "file", "path": "b.conf"}
            ]),
            AuthzVerdict::Deny,
        );
        let authz = Authorization::from_config(&c, &dir).unwrap();
        let client = ClientInfo::restored("c".into());
        assert_eq!(authz.check(&client, &args("secret/x")), AuthzResult::Deny);
        assert_eq!(authz.check(&client, &args("open/x")), AuthzResult::Allow);
        assert_eq!(
            authz.check(&client, &args("other")),
            AuthzResult::Deny,
            "no_match"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_types_missing_files_and_bad_rules_are_refused_by_name() {
        let base = Path::new("/nonexistent-junction-dir");
        for (sources, want) in [
            (serde_json::json!([{"type": "http"}]), "type = http"),
            (
                serde_json::json!([{"type": "file", "path": "acl.conf"}]),
                "acl.conf",
            ),
            (serde_json::json!([{"type": "file"}]), "needs a path"),
            (
                serde_json::json!([{"type": "file", "path": "x", "rules": ""}]),
                "rules",
            ),
            (serde_json::json!([{"path": "x"}]), "needs a type"),
        ] {
            let err = Authorization::from_config(&config(sources, AuthzVerdict::Allow), base)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("authorization.sources[0]") && err.contains(want),
                "{err}"
            );
        }
    }

    #[test]
    fn without_sources_the_default_acl_applies_and_an_empty_list_has_none() {
        let mut remote = ClientInfo::restored("c".into());
        remote.peername = "10.0.0.1:1".parse().unwrap();
        let default =
            Authorization::from_config(&AuthorizationConfig::default(), Path::new(".")).unwrap();
        assert_eq!(default.check(&remote, &args("$SYS/#")), AuthzResult::Deny);
        let none = Authorization::from_config(
            &config(serde_json::json!([]), AuthzVerdict::Allow),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(none.check(&remote, &args("$SYS/#")), AuthzResult::Allow);
        assert!(none.allows_everything() && !default.allows_everything());
    }
}
