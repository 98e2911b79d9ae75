//! EMQX's `acl.conf` rules, compiled once and checked in order: the first rule that
//! matches the client, the action and the topic gives its permission.
//!
//! A rule is `{Permission, Who, Action, Topics}` or `{Permission, all}`:
//! - `Who`: `all`, `{username | user, "name" | {re, "regex"}}`,
//!   `{clientid | client, "id" | {re, "regex"}}`, `{ipaddr, "cidr"}`,
//!   `{ipaddrs, ["cidr", …]}`, `{'and', [Who, …]}`, `{'or', [Who, …]}`; beyond EMQX,
//!   `{protocol, "stomp"}` and `{listener, "stomp:tcp:default"}`, so one file can give
//!   each protocol's devices their own rights.
//! - `Action`: `publish`, `subscribe`, `all`, or with options
//!   `{publish | all, [{qos, 0 | [0, 1]}, {retain, true | false | all}]}`,
//!   `{subscribe, [{qos, …}]}`.
//! - `Topics`: filters (wildcards match the topic a client names; a wildcard the client
//!   names itself is a word, matched by the same wildcard or by a rule's `+` or `#`, as
//!   EMQX matches it), `${username}` and
//!   `${clientid}` placeholders (a client without a user name matches no `${username}`
//!   filter), `{eq, "t"}` or `"eq t"` for the literal filter.

use super::term::{self, Term};
use junction_broker::hooks::Action;
use junction_config::{AccessRule, AccessTarget};
use junction_types::{ClientInfo, QoS};

/// What a matching rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// Why a file is not a list of rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// Not Erlang term syntax.
    #[error("acl: {0}")]
    Syntax(#[from] term::SyntaxError),
    /// A term that is not a rule.
    #[error("acl rule {index}: {why}: {rule}")]
    Rule {
        /// 1-based rule number.
        index: usize,
        /// What was wrong.
        why: String,
        /// The rule as written.
        rule: String,
    },
}

#[derive(Debug)]
enum Text {
    Eq(String),
    Re(regex::Regex),
}

impl Text {
    fn matches(&self, s: &str) -> bool {
        match self {
            Text::Eq(t) => t == s,
            Text::Re(re) => re.is_match(s),
        }
    }
}

#[derive(Debug)]
enum Who {
    All,
    Username(Text),
    Clientid(Text),
    Ip(Vec<AccessTarget>),
    Protocol(String),
    Listener(String),
    And(Vec<Who>),
    Or(Vec<Who>),
}

#[derive(Debug)]
struct ActionCond {
    publish: bool,
    subscribe: bool,
    /// Which QoS levels the rule covers.
    qos: [bool; 3],
    /// `None`: retained or not.
    retain: Option<bool>,
}

#[derive(Debug)]
enum TopicCond {
    /// A filter the topic must match.
    Filter(String),
    /// A filter with `${username}` / `${clientid}`, rendered per client.
    Pattern(String),
    /// Exactly this filter.
    Eq(String),
}

#[derive(Debug)]
struct Rule {
    permission: Permission,
    who: Who,
    action: ActionCond,
    topics: Vec<TopicCond>,
}

/// A compiled `acl.conf`.
#[derive(Debug, Default)]
pub struct AclRules {
    rules: Vec<Rule>,
}

fn atom(t: &Term) -> Option<&str> {
    match t {
        Term::Atom(a) => Some(a),
        _ => None,
    }
}

fn text(t: &Term) -> Result<Text, String> {
    match t {
        Term::Str(s) => Ok(Text::Eq(s.clone())),
        Term::Tuple(items) if items.len() == 2 && atom(&items[0]) == Some("re") => {
            match &items[1] {
                Term::Str(re) => regex::Regex::new(re)
                    .map(Text::Re)
                    .map_err(|e| format!("bad regular expression {re:?}: {e}")),
                other => Err(format!("expected a regular expression string, got {other}")),
            }
        }
        other => Err(format!("expected a string or {{re, \"…\"}}, got {other}")),
    }
}

fn cidr(t: &Term) -> Result<AccessTarget, String> {
    let Term::Str(s) = t else {
        return Err(format!("expected an address string, got {t}"));
    };
    let rule: AccessRule = format!("allow {s}")
        .parse()
        .map_err(|_| format!("bad address {s:?}"))?;
    match rule.targets.as_slice() {
        [target] => Ok(*target),
        _ => Err(format!("bad address {s:?}")),
    }
}

fn who(t: &Term) -> Result<Who, String> {
    if atom(t) == Some("all") {
        return Ok(Who::All);
    }
    let Term::Tuple(items) = t else {
        return Err(format!(
            "expected all or a {{kind, value}} client condition, got {t}"
        ));
    };
    let [kind, value] = items.as_slice() else {
        return Err(format!(
            "expected a {{kind, value}} client condition, got {t}"
        ));
    };
    let list = |value: &Term| -> Result<Vec<Who>, String> {
        match value {
            Term::List(items) => items.iter().map(who).collect(),
            other => Err(format!("expected a list of conditions, got {other}")),
        }
    };
    let string = |value: &Term| -> Result<String, String> {
        match value {
            Term::Str(s) => Ok(s.clone()),
            other => Err(format!("expected a string, got {other}")),
        }
    };
    match atom(kind) {
        Some("username" | "user") => Ok(Who::Username(text(value)?)),
        Some("clientid" | "client") => Ok(Who::Clientid(text(value)?)),
        Some("ipaddr") => Ok(Who::Ip(vec![cidr(value)?])),
        Some("ipaddrs") => match value {
            Term::List(items) => Ok(Who::Ip(items.iter().map(cidr).collect::<Result<_, _>>()?)),
            other => Err(format!("expected a list of addresses, got {other}")),
        },
        Some("protocol") => Ok(Who::Protocol(string(value)?)),
        Some("listener") => Ok(Who::Listener(string(value)?)),
        Some("and") => Ok(Who::And(list(value)?)),
        Some("or") => Ok(Who::Or(list(value)?)),
        _ => Err(format!("unknown client condition {kind}")),
    }
}

fn qos_list(t: &Term, into: &mut [bool; 3]) -> Result<(), String> {
    let one = |t: &Term, into: &mut [bool; 3]| match t {
        Term::Int(q @ 0..=2) => {
            into[*q as usize] = true;
            Ok(())
        }
        other => Err(format!("bad qos {other}")),
    };
    match t {
        Term::List(items) => items.iter().try_for_each(|q| one(q, into)),
        other => one(other, into),
    }
}

fn action(t: &Term) -> Result<ActionCond, String> {
    let (kind, opts) = match t {
        Term::Atom(a) => (a.as_str(), None),
        Term::Tuple(items) if items.len() == 2 => match (&items[0], &items[1]) {
            (Term::Atom(a), Term::List(opts)) => (a.as_str(), Some(opts)),
            _ => return Err(format!("bad action {t}")),
        },
        other => return Err(format!("bad action {other}")),
    };
    let (publish, subscribe) = match kind {
        "publish" => (true, false),
        "subscribe" => (false, true),
        "all" | "pubsub" => (true, true),
        other => return Err(format!("unknown action {other}")),
    };
    let mut cond = ActionCond {
        publish,
        subscribe,
        qos: [true; 3],
        retain: None,
    };
    if let Some(opts) = opts {
        let mut qos = [false; 3];
        let mut any_qos = false;
        for opt in opts {
            let Term::Tuple(kv) = opt else {
                return Err(format!("bad action option {opt}"));
            };
            match (kv.first().and_then(atom), kv.get(1), kv.len()) {
                (Some("qos"), Some(v), 2) => {
                    qos_list(v, &mut qos)?;
                    any_qos = true;
                }
                (Some("retain"), Some(v), 2) if !subscribe || publish => {
                    cond.retain = match atom(v) {
                        Some("true") => Some(true),
                        Some("false") => Some(false),
                        Some("all") => None,
                        _ => return Err(format!("bad retain {v}")),
                    };
                }
                _ => return Err(format!("bad action option {opt}")),
            }
        }
        if any_qos {
            cond.qos = qos;
        }
    }
    Ok(cond)
}

fn topic(t: &Term) -> Result<TopicCond, String> {
    match t {
        Term::Str(s) => Ok(if let Some(exact) = s.strip_prefix("eq ") {
            TopicCond::Eq(exact.to_string())
        } else if s.contains("${username}") || s.contains("${clientid}") {
            TopicCond::Pattern(s.clone())
        } else {
            TopicCond::Filter(s.clone())
        }),
        Term::Tuple(items) if items.len() == 2 && atom(&items[0]) == Some("eq") => {
            match &items[1] {
                Term::Str(s) => Ok(TopicCond::Eq(s.clone())),
                other => Err(format!("bad topic {other}")),
            }
        }
        other => Err(format!("bad topic {other}")),
    }
}

fn permission(t: &Term) -> Result<Permission, String> {
    match atom(t) {
        Some("allow") => Ok(Permission::Allow),
        Some("deny") => Ok(Permission::Deny),
        _ => Err(format!("the permission is allow or deny, not {t}")),
    }
}

fn rule(t: &Term) -> Result<Rule, String> {
    let Term::Tuple(items) = t else {
        return Err("a rule is a tuple".into());
    };
    match items.as_slice() {
        [p, all] if atom(all) == Some("all") => Ok(Rule {
            permission: permission(p)?,
            who: Who::All,
            action: action(&Term::Atom("all".into()))?,
            topics: vec![TopicCond::Filter("#".into())],
        }),
        [p, w, a, Term::List(topics)] => Ok(Rule {
            permission: permission(p)?,
            who: who(w)?,
            action: action(a)?,
            topics: topics.iter().map(topic).collect::<Result<_, _>>()?,
        }),
        _ => Err("expected {Permission, Who, Action, [Topic, …]} or {Permission, all}".into()),
    }
}

/// Whether topic `name` (a topic name, or the filter a client subscribes) matches `filter`.
/// A `$` first level is matched by no wildcard at the first level [MQTT-4.7.2-1].
pub fn topic_matches(name: &str, filter: &str) -> bool {
    let dollar = name.starts_with('$');
    let mut names = name.split('/');
    let mut filters = filter.split('/');
    let mut first = true;
    loop {
        match (filters.next(), names.next()) {
            (Some("#"), _) => return !(first && dollar),
            (Some("+"), Some(_)) if first && dollar => return false,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(n)) if f == n => {}
            (None, None) => return true,
            _ => return false,
        }
        first = false;
    }
}

impl Who {
    fn matches(&self, c: &ClientInfo) -> bool {
        match self {
            Who::All => true,
            Who::Username(t) => c.username.as_deref().is_some_and(|u| t.matches(u)),
            Who::Clientid(t) => t.matches(&c.clientid),
            Who::Ip(nets) => nets.iter().any(|n| n.matches(c.peername.ip())),
            Who::Protocol(p) => c.protocol == p,
            Who::Listener(l) => *c.listener == **l,
            Who::And(all) => all.iter().all(|w| w.matches(c)),
            Who::Or(any) => any.iter().any(|w| w.matches(c)),
        }
    }
}

impl ActionCond {
    fn matches(&self, action: Action) -> bool {
        let level = |q: QoS| self.qos[q as usize];
        match action {
            Action::Publish { qos, retain } => {
                self.publish && level(qos) && self.retain.is_none_or(|r| r == retain)
            }
            Action::Subscribe { qos } => self.subscribe && level(qos),
        }
    }
}

impl TopicCond {
    fn matches(&self, c: &ClientInfo, topic: &str) -> bool {
        match self {
            TopicCond::Filter(f) => topic_matches(topic, f),
            TopicCond::Eq(f) => topic == f,
            TopicCond::Pattern(p) => {
                let username = c.username.as_deref();
                if p.contains("${username}") && username.is_none() {
                    return false;
                }
                let f = p
                    .replace("${username}", username.unwrap_or_default())
                    .replace("${clientid}", &c.clientid);
                topic_matches(topic, &f)
            }
        }
    }
}

impl AclRules {
    /// Compile the rules of an `acl.conf`.
    pub fn parse(text: &str) -> Result<AclRules, AclError> {
        let terms = term::parse(text)?;
        let rules = terms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                rule(t).map_err(|why| AclError::Rule {
                    index: i + 1,
                    why,
                    rule: t.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AclRules { rules })
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The permission of the first rule that matches, if any.
    pub fn check(&self, client: &ClientInfo, action: Action, topic: &str) -> Option<Permission> {
        self.rules
            .iter()
            .find(|r| {
                r.action.matches(action)
                    && r.who.matches(client)
                    && r.topics.iter().any(|t| t.matches(client, topic))
            })
            .map(|r| r.permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(
        clientid: &str,
        username: Option<&str>,
        ip: &str,
        protocol: &'static str,
    ) -> ClientInfo {
        let mut c = ClientInfo::restored(clientid.into());
        c.username = username.map(Into::into);
        c.peername = format!("{ip}:1234").parse().unwrap();
        c.protocol = protocol;
        c.listener = format!("{protocol}:tcp:default").into();
        c
    }

    const PUB0: Action = Action::Publish {
        qos: QoS::AtMostOnce,
        retain: false,
    };
    const SUB0: Action = Action::Subscribe {
        qos: QoS::AtMostOnce,
    };

    #[test]
    fn the_default_file_refuses_sys_and_the_bare_hash_to_remote_clients_only() {
        let rules = AclRules::parse(super::super::DEFAULT_ACL).unwrap();
        let remote = client("c", Some("u"), "10.1.2.3", "mqtt");
        let local = client("c", Some("u"), "127.0.0.1", "mqtt");
        let dashboard = client("c", Some("dashboard"), "10.1.2.3", "mqtt");
        assert_eq!(rules.check(&remote, SUB0, "$SYS/#"), Some(Permission::Deny));
        assert_eq!(
            rules.check(&remote, SUB0, "$SYS/brokers"),
            Some(Permission::Deny)
        );
        assert_eq!(rules.check(&remote, SUB0, "#"), Some(Permission::Deny));
        assert_eq!(rules.check(&remote, SUB0, "a/#"), Some(Permission::Allow));
        assert_eq!(rules.check(&remote, PUB0, "a/b"), Some(Permission::Allow));
        assert_eq!(rules.check(&local, SUB0, "$SYS/#"), Some(Permission::Allow));
        assert_eq!(rules.check(&local, SUB0, "#"), Some(Permission::Allow));
        assert_eq!(
            rules.check(&dashboard, SUB0, "$SYS/#"),
            Some(Permission::Allow)
        );
    }

    #[test]
    fn who_conditions_placeholders_actions_and_first_match() {
        let rules = AclRules::parse(
            r#"
            {allow, {'and', [{username, {re, "^dev-"}}, {ipaddrs, ["10.0.0.0/8", "::1"]}]}, publish, ["d/${username}/#"]}.
            {deny, {protocol, "stomp"}, all, ["cmd/#"]}.
            {allow, {clientid, "c1"}, {publish, [{qos, [0, 1]}, {retain, false}]}, ["q/${clientid}"]}.
            {allow, {listener, "mqtt:tcp:default"}, subscribe, [{eq, "cmd/#"}, "eq x/+"]}.
            {deny, all}.
            "#,
        )
        .unwrap();
        assert_eq!(rules.len(), 5);
        let dev = client("x", Some("dev-7"), "10.9.9.9", "mqtt");
        assert_eq!(
            rules.check(&dev, PUB0, "d/dev-7/t"),
            Some(Permission::Allow)
        );
        assert_eq!(rules.check(&dev, PUB0, "d/dev-8/t"), Some(Permission::Deny));
        let far = client("x", Some("dev-7"), "192.168.0.1", "mqtt");
        assert_eq!(rules.check(&far, PUB0, "d/dev-7/t"), Some(Permission::Deny));
        let nobody = client("x", None, "10.9.9.9", "mqtt");
        assert_eq!(rules.check(&nobody, PUB0, "d//t"), Some(Permission::Deny));

        let c1 = client("c1", None, "1.2.3.4", "mqtt");
        assert_eq!(rules.check(&c1, PUB0, "q/c1"), Some(Permission::Allow));
        let retained = Action::Publish {
            qos: QoS::AtMostOnce,
            retain: true,
        };
        assert_eq!(rules.check(&c1, retained, "q/c1"), Some(Permission::Deny));
        let qos2 = Action::Publish {
            qos: QoS::ExactlyOnce,
            retain: false,
        };
        assert_eq!(rules.check(&c1, qos2, "q/c1"), Some(Permission::Deny));

        let stomp = client("s", None, "1.2.3.4", "stomp");
        assert_eq!(rules.check(&stomp, SUB0, "cmd/#"), Some(Permission::Deny));
        let mqtt = client("m", None, "1.2.3.4", "mqtt");
        assert_eq!(
            rules.check(&mqtt, SUB0, "cmd/#"),
            Some(Permission::Allow),
            "eq"
        );
        assert_eq!(
            rules.check(&mqtt, SUB0, "cmd/a"),
            Some(Permission::Deny),
            "eq is literal"
        );
        assert_eq!(rules.check(&mqtt, SUB0, "x/+"), Some(Permission::Allow));
        assert_eq!(AclRules::parse("").unwrap().check(&mqtt, SUB0, "a"), None);
    }

    #[test]
    fn topic_matching_treats_a_clients_own_wildcards_as_literal_words() {
        assert!(topic_matches("a/b", "a/+"));
        assert!(topic_matches("a", "a/#"));
        assert!(topic_matches("a/b/c", "#"));
        assert!(topic_matches("a/+", "a/#"));
        assert!(topic_matches("a/+", "a/+"));
        assert!(!topic_matches("a/+", "a/b"));
        // As EMQX matches: a client's `#` is one word to a rule's `+`.
        assert!(topic_matches("a/#", "a/+"));
        assert!(!topic_matches("$SYS/x", "#"));
        assert!(!topic_matches("$SYS/x", "+/x"));
        assert!(topic_matches("$SYS/x", "$SYS/#"));
        assert!(!topic_matches("a/b", "a"));
    }

    #[test]
    fn bad_rules_are_refused_with_their_number() {
        for (bad, want) in [
            ("{permit, all}.", "permission"),
            ("{allow, {user, 1}, all, [\"t\"]}.", "string"),
            ("{allow, {ipaddr, \"300.1.1.1\"}, all, [\"t\"]}.", "address"),
            ("{allow, all, read, [\"t\"]}.", "action"),
            ("{allow, all, {publish, [{qos, 3}]}, [\"t\"]}.", "qos"),
            (
                "{allow, {username, {re, \"(\"}}, all, [\"t\"]}.",
                "regular expression",
            ),
            ("{allow, all, all, \"t\"}.", "expected"),
            (
                "{allow, {cert, \"x\"}, all, [\"t\"]}.",
                "unknown client condition",
            ),
        ] {
            let err = AclRules::parse(&format!("{{allow, all}}.\n{bad}")).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("acl rule 2") && text.contains(want),
                "{bad}: {text}"
            );
        }
    }
}
