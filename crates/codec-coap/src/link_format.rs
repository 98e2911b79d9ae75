//! CoRE Link Format (RFC 6690 §2): `</1/0>;ver=1.0,</3/0>;pmin=10`, as sent in LwM2M
//! registration and `/.well-known/core`. The parser is bounded by [`Limits`] and never
//! panics; whitespace is not part of the grammar and is refused.

use std::fmt::Write as _;

/// One parameter of a link: `name`, `name=ptoken` or `name="quoted string"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkParam {
    /// The parameter name (RFC 5987 `parmname`, plus `*` for extended names).
    pub name: String,
    /// The value, unescaped; `None` for a bare name.
    pub value: Option<String>,
    /// Whether the value is written as a quoted-string (forced when not a valid ptoken).
    pub quoted: bool,
}

/// One link-value: a target URI-Reference and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// The URI-Reference between `<` and `>`.
    pub target: String,
    /// The parameters, in order.
    pub params: Vec<LinkParam>,
}

impl Link {
    /// A link to `target` without parameters.
    pub fn new(target: impl Into<String>) -> Link {
        Link {
            target: target.into(),
            params: Vec::new(),
        }
    }

    /// This link with parameter `name=value` (quoted only when it must be).
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Link {
        self.params.push(LinkParam {
            name: name.into(),
            value: value.map(str::to_owned),
            quoted: false,
        });
        self
    }

    /// The first parameter named `name` (names compare ASCII case-insensitively).
    pub fn param(&self, name: &str) -> Option<&LinkParam> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of the first parameter named `name`, if it has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(|p| p.value.as_deref())
    }
}

/// Bounds on what [`parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest input in octets; default 16 384.
    pub max_len: usize,
    /// Most links; default 512.
    pub max_links: usize,
    /// Most parameters per link; default 32.
    pub max_params: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_len: 16 * 1024,
            max_links: 512,
            max_params: 32,
        }
    }
}

/// Why a link-format document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkFormatError {
    /// Longer than [`Limits::max_len`].
    #[error("link-format document of {len} octets exceeds {max}")]
    TooLong {
        /// The document's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More links than [`Limits::max_links`].
    #[error("more than {0} links")]
    TooManyLinks(usize),
    /// More parameters on one link than [`Limits::max_params`].
    #[error("more than {0} parameters on one link")]
    TooManyParams(usize),
    /// A character the grammar does not allow where it appears.
    #[error("expected {expected} at octet {at} [RFC 6690 §2]")]
    Syntax {
        /// What the grammar wanted.
        expected: &'static str,
        /// Octet offset in the document.
        at: usize,
    },
    /// A link that cannot be serialized: a target containing `>` or an invalid name.
    #[error("link cannot be written: {0} [RFC 6690 §2]")]
    Unwritable(&'static str),
}

/// Characters of a parameter name (RFC 5987 `attr-char`, plus `*` of `ext-name-star`).
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~*".contains(&c)
}

/// Characters of an unquoted value (RFC 6690 §2 `ptokenchar`).
fn is_ptoken_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'()*+-./:<=>?@[]^_`{|}~".contains(&c)
}

/// Parses a link-format document (RFC 6690 §2 `Link`); the empty document has no links.
pub fn parse(input: &str, limits: Limits) -> Result<Vec<Link>, LinkFormatError> {
    if input.len() > limits.max_len {
        return Err(LinkFormatError::TooLong {
            len: input.len(),
            max: limits.max_len,
        });
    }
    let mut parser = Parser { input, pos: 0 };
    let mut links = Vec::new();
    if input.is_empty() {
        return Ok(links);
    }
    loop {
        if links.len() == limits.max_links {
            return Err(LinkFormatError::TooManyLinks(limits.max_links));
        }
        links.push(parser.link(limits.max_params)?);
        match parser.peek() {
            None => return Ok(links),
            Some(b',') => parser.pos += 1,
            Some(_) => return Err(parser.expected("',' or end of document")),
        }
    }
}

/// A cursor over the document.
struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn expected(&self, expected: &'static str) -> LinkFormatError {
        LinkFormatError::Syntax {
            expected,
            at: self.pos,
        }
    }

    fn eat(&mut self, c: u8, expected: &'static str) -> Result<(), LinkFormatError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    /// `"<" URI-Reference ">" *( ";" link-param )`
    fn link(&mut self, max_params: usize) -> Result<Link, LinkFormatError> {
        self.eat(b'<', "'<' starting a link target")?;
        let rest = &self.input[self.pos..];
        let Some(end) = rest.find('>') else {
            return Err(LinkFormatError::Syntax {
                expected: "'>' closing the link target",
                at: self.input.len(),
            });
        };
        let target = rest[..end].to_owned();
        self.pos += end + 1;
        let mut params = Vec::new();
        while self.peek() == Some(b';') {
            self.pos += 1;
            if params.len() == max_params {
                return Err(LinkFormatError::TooManyParams(max_params));
            }
            params.push(self.param()?);
        }
        Ok(Link { target, params })
    }

    /// `parmname [ "=" ( ptoken / quoted-string ) ]`
    fn param(&mut self) -> Result<LinkParam, LinkFormatError> {
        let name = self.run(is_name_char);
        if name.is_empty() {
            return Err(self.expected("a parameter name"));
        }
        if self.peek() != Some(b'=') {
            return Ok(LinkParam {
                name,
                value: None,
                quoted: false,
            });
        }
        self.pos += 1;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            let value = self.quoted()?;
            return Ok(LinkParam {
                name,
                value: Some(value),
                quoted: true,
            });
        }
        let value = self.run(is_ptoken_char);
        if value.is_empty() {
            return Err(self.expected("a ptoken or quoted-string value"));
        }
        Ok(LinkParam {
            name,
            value: Some(value),
            quoted: false,
        })
    }

    /// The longest run of ASCII characters satisfying `accept`.
    fn run(&mut self, accept: fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(accept) {
            self.pos += 1;
        }
        self.input[start..self.pos].to_owned()
    }

    /// The rest of a quoted-string after its opening `"`, unescaped.
    fn quoted(&mut self) -> Result<String, LinkFormatError> {
        let mut value = String::new();
        let mut chars = self.input[self.pos..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += offset + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err(LinkFormatError::Syntax {
            expected: "'\"' closing the quoted-string",
            at: self.input.len(),
        })
    }
}

/// Writes links as a link-format document; values are quoted when marked so or when they
/// are not a valid ptoken.
pub fn serialize(links: &[Link]) -> Result<String, LinkFormatError> {
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        if link.target.contains('>') {
            return Err(LinkFormatError::Unwritable("target contains '>'"));
        }
        if i > 0 {
            out.push(',');
        }
        out.push('<');
        out.push_str(&link.target);
        out.push('>');
        for param in &link.params {
            if param.name.is_empty() || !param.name.bytes().all(is_name_char) {
                return Err(LinkFormatError::Unwritable("invalid parameter name"));
            }
            out.push(';');
            out.push_str(&param.name);
            let Some(value) = &param.value else {
                continue;
            };
            out.push('=');
            let bare = !param.quoted && !value.is_empty() && value.bytes().all(is_ptoken_char);
            if bare {
                out.push_str(value);
            } else {
                out.push('"');
                for c in value.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    let _ = out.write_char(c);
                }
                out.push('"');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(input: &str) -> Result<Vec<Link>, LinkFormatError> {
        parse(input, Limits::default())
    }

    #[test]
    fn parses_an_lwm2m_registration_payload() {
        let links =
            parse_default(r#"</>;rt="oma.lwm2m";ct=11543,</1/0>;ver=1.0,</3/0>;pmin=10,</5>"#)
                .unwrap();
        assert_eq!(links.len(), 4);
        assert_eq!(links[0].target, "/");
        assert_eq!(links[0].value("rt"), Some("oma.lwm2m"));
        assert_eq!(links[0].value("CT"), Some("11543"));
        assert_eq!(links[1].value("ver"), Some("1.0"));
        assert_eq!(links[2].value("pmin"), Some("10"));
        assert!(links[3].params.is_empty());
    }

    #[test]
    fn bare_names_and_escapes_in_quoted_strings() {
        let links = parse_default(r#"</s>;obs;title="a \"b\" \\ c, d;e""#).unwrap();
        let obs = links[0].param("obs").unwrap();
        assert_eq!(obs.value, None);
        assert_eq!(links[0].value("title"), Some(r#"a "b" \ c, d;e"#));
    }

    #[test]
    fn serializes_back_to_the_same_document() {
        let doc = r#"</>;rt="oma.lwm2m";ct=11543,</1/0>;ver=1.0;obs,</3/0>;pmin=10"#;
        let links = parse_default(doc).unwrap();
        assert_eq!(serialize(&links).unwrap(), doc);
        let built = [Link::new("/a")
            .with_param("t", Some("x y"))
            .with_param("e", Some(""))];
        assert_eq!(serialize(&built).unwrap(), r#"</a>;t="x y";e="""#);
        assert_eq!(
            parse_default(&serialize(&built).unwrap()).unwrap()[0].value("t"),
            Some("x y")
        );
    }

    #[test]
    fn malformed_documents_are_refused_with_their_position() {
        let syntax = |doc: &str| match parse_default(doc) {
            Err(LinkFormatError::Syntax { at, .. }) => Some(at),
            _ => None,
        };
        assert_eq!(syntax("/1/0"), Some(0));
        assert_eq!(syntax("</1/0"), Some(5));
        assert_eq!(syntax("</1/0>;"), Some(7));
        assert_eq!(syntax("</1/0>;a="), Some(9));
        assert_eq!(syntax(r#"</1/0>;a="x"#), Some(11));
        assert_eq!(syntax(r#"</1/0>;a="x\"#), Some(12));
        assert_eq!(syntax("</1/0>, </2>"), Some(7));
        assert_eq!(syntax("</1/0>,"), Some(7));
        assert_eq!(syntax("</1/0>x"), Some(6));
        assert_eq!(parse_default(""), Ok(vec![]));
    }

    #[test]
    fn limits_bound_the_work() {
        let limits = Limits {
            max_len: 64,
            max_links: 2,
            max_params: 1,
        };
        assert_eq!(
            parse("</a>,</b>,</c>", limits),
            Err(LinkFormatError::TooManyLinks(2))
        );
        assert_eq!(
            parse("</a>;x;y", limits),
            Err(LinkFormatError::TooManyParams(1))
        );
        let long = "<".repeat(65);
        assert!(matches!(
            parse(&long, limits),
            Err(LinkFormatError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn unwritable_links_are_refused() {
        assert!(serialize(&[Link::new("a>b")]).is_err());
        assert!(serialize(&[Link::new("a").with_param("bad name", None)]).is_err());
    }
}
