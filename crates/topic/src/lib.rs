//! MQTT topic names and topic filters: validation, matching, shared-subscription syntax
//! and a filter trie used by the router.

mod children;
pub mod mountpoint;
mod seeded;
mod trie;

pub use seeded::{Seeded, SeededMap};
pub use trie::Trie;

/// Why a topic name or filter is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Topic names and filters are at least one character long [MQTT-4.7.3-1].
    #[error("topic is empty [MQTT-4.7.3-1]")]
    Empty,
    /// Longer than the 65,535 bytes a UTF-8 string can hold [MQTT-1.5.4].
    #[error("topic is longer than 65535 bytes [MQTT-1.5.4]")]
    TooLong,
    /// U+0000 is not allowed in topics [MQTT-4.7.3-2].
    #[error("topic contains U+0000 [MQTT-4.7.3-2]")]
    NulCharacter,
    /// Wildcards are not allowed in topic names [MQTT-3.3.2-2].
    #[error("wildcard in topic name [MQTT-3.3.2-2]")]
    WildcardInName,
    /// `#` must be last and stand alone in its level [MQTT-4.7.1-1].
    #[error("'#' is not the whole last level [MQTT-4.7.1-1]")]
    BadMultiLevelWildcard,
    /// `+` must occupy a whole level [MQTT-4.7.1-2].
    #[error("'+' is not a whole level [MQTT-4.7.1-2]")]
    BadSingleLevelWildcard,
    /// More levels than the configured `mqtt.max_topic_levels`.
    #[error("topic has more than {0} levels")]
    TooManyLevels(usize),
    /// A `$share/` filter with a bad group name or no filter [MQTT-4.8.2-1], [MQTT-4.8.2-2].
    #[error("invalid shared subscription filter [MQTT-4.8.2-1]")]
    BadSharedFilter,
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > 65535 {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::NulCharacter);
    }
    Ok(())
}

/// Check a topic name as used in PUBLISH.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Check a topic filter (without any `$share/` prefix).
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::BadMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::BadSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Number of levels in a topic or filter.
pub fn level_count(topic: &str) -> usize {
    topic.split('/').count()
}

/// True if the filter contains a wildcard.
pub fn is_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// True if `filter` matches `name` (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7).
///
/// Topics starting with `$` are not matched by filters starting with a wildcard
/// [MQTT-4.7.2-1].
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut n = name.split('/');
    loop {
        match (f.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(nl)) if fl == nl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The limits every protocol applies to the topics and filters it takes from the network
/// (MQTT PUBLISH, SUBSCRIBE and will topics; MQTT-SN REGISTER, SUBSCRIBE and WILLTOPIC;
/// STOMP destinations; every gateway's topics), so one configured bound holds everywhere.
/// Each protocol turns a [`TopicError`] into its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLimits {
    /// `mqtt.max_topic_levels`: most `/`-separated levels in a topic name or filter (the
    /// filter proper, without a `$share/<group>/` prefix); 0: no limit.
    pub max_levels: usize,
}

impl Default for TopicLimits {
    /// EMQX's default: 128 levels.
    fn default() -> Self {
        TopicLimits { max_levels: 128 }
    }
}

impl TopicLimits {
    fn check_depth(&self, topic: &str) -> Result<(), TopicError> {
        // Counting stops one past the limit: a 65,000-level topic costs no more than that.
        if self.max_levels > 0 && topic.split('/').nth(self.max_levels).is_some() {
            return Err(TopicError::TooManyLevels(self.max_levels));
        }
        Ok(())
    }

    /// Check a topic name to publish to: [`validate_topic_name`] and the level limit.
    pub fn check_name(&self, name: &str) -> Result<(), TopicError> {
        validate_topic_name(name)?;
        self.check_depth(name)
    }

    /// Check a subscription filter: [`parse_filter`] and the level limit.
    pub fn check_filter<'a>(&self, raw: &'a str) -> Result<ParsedFilter<'a>, TopicError> {
        let parsed = parse_filter(raw)?;
        self.check_depth(parsed.filter)?;
        Ok(parsed)
    }
}

/// A parsed subscription filter: plain, or shared with a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFilter<'a> {
    /// The share group, for `$share/<group>/<filter>` (and `$queue/<filter>`, group `$queue`).
    pub group: Option<&'a str>,
    /// The topic filter proper.
    pub filter: &'a str,
}

/// Split a subscription filter into share group and filter, validating both.
///
/// `$share/<group>/<filter>` is MQTT 5.0 §4.8.2; `$queue/<filter>` is EMQX's older form of a
/// shared subscription in one group named `$queue`.
pub fn parse_filter(raw: &str) -> Result<ParsedFilter<'_>, TopicError> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let (group, filter) = rest.split_once('/').ok_or(TopicError::BadSharedFilter)?;
        if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
            return Err(TopicError::BadSharedFilter);
        }
        validate_filter(filter)?;
        return Ok(ParsedFilter {
            group: Some(group),
            filter,
        });
    }
    if raw == "$share" || raw.starts_with("$share/") {
        return Err(TopicError::BadSharedFilter);
    }
    if let Some(filter) = raw.strip_prefix("$queue/") {
        if filter.is_empty() {
            return Err(TopicError::BadSharedFilter);
        }
        validate_filter(filter)?;
        return Ok(ParsedFilter {
            group: Some("$queue"),
            filter,
        });
    }
    validate_filter(raw)?;
    Ok(ParsedFilter {
        group: None,
        filter: raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_reject_wildcards_nul_and_empty() {
        assert!(validate_topic_name("a/b/c").is_ok());
        assert!(validate_topic_name("/").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::NulCharacter));
    }

    #[test]
    fn filters_follow_wildcard_placement_rules() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/+", "a//b", "$SYS/#"] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            validate_filter("a/#/b"),
            Err(TopicError::BadMultiLevelWildcard)
        );
        assert_eq!(
            validate_filter("a#"),
            Err(TopicError::BadMultiLevelWildcard)
        );
        assert_eq!(
            validate_filter("a/b+"),
            Err(TopicError::BadSingleLevelWildcard)
        );
    }

    #[test]
    fn matching_follows_spec_examples() {
        assert!(matches("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b"));
        assert!(matches("sport/+", "sport/"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!matches("#", "$SYS/brokers"));
        assert!(!matches("+/brokers", "$SYS/brokers"));
        assert!(matches("$SYS/#", "$SYS/brokers"));
        assert!(matches("$SYS/+", "$SYS/brokers"));
    }

    #[test]
    fn limits_count_levels_of_names_and_of_the_filter_proper() {
        let limits = TopicLimits { max_levels: 3 };
        assert_eq!(limits.check_name("a/b/c"), Ok(()));
        assert_eq!(
            limits.check_name("a/b/c/d"),
            Err(TopicError::TooManyLevels(3))
        );
        assert_eq!(limits.check_name("a/+"), Err(TopicError::WildcardInName));
        assert!(limits.check_filter("$share/g/a/b/#").is_ok());
        assert_eq!(
            limits.check_filter("a/b/c/#"),
            Err(TopicError::TooManyLevels(3))
        );
        let deep = "/".repeat(65_000);
        assert_eq!(
            limits.check_filter(&deep),
            Err(TopicError::TooManyLevels(3))
        );
        let unlimited = TopicLimits { max_levels: 0 };
        assert!(unlimited.check_filter(&deep).is_ok());
    }

    #[test]
    fn shared_filters_parse_group_and_filter() {
        let p = parse_filter("$share/g1/a/+").unwrap();
        assert_eq!((p.group, p.filter), (Some("g1"), "a/+"));
        let q = parse_filter("$queue/a/b").unwrap();
        assert_eq!((q.group, q.filter), (Some("$queue"), "a/b"));
        assert_eq!(parse_filter("$share/g1"), Err(TopicError::BadSharedFilter));
        assert_eq!(parse_filter("$share//a"), Err(TopicError::BadSharedFilter));
        assert_eq!(
            parse_filter("$share/g+/a"),
            Err(TopicError::BadSharedFilter)
        );
        assert_eq!(parse_filter("$share"), Err(TopicError::BadSharedFilter));
        let plain = parse_filter("a/#").unwrap();
        assert_eq!((plain.group, plain.filter), (None, "a/#"));
    }
}
