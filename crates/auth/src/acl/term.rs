//! The subset of Erlang's term syntax an EMQX `acl.conf` is written in: tuples `{…}`,
//! lists `[…]`, atoms (`allow`, `'and'`), strings `"…"`, integers, and `.` after each
//! term, with `%` comments.
//!
//! The file can come from an administrator or, through the API, from a request: nesting
//! is bounded ([`MAX_DEPTH`]) and parsing uses no recursion deeper than that bound.

use std::fmt;

/// How deep tuples and lists may nest. EMQX's rules nest four levels at most
/// (`{allow, {'and', [{username, {re, "…"}}]}, …}`).
pub const MAX_DEPTH: usize = 16;

/// A parsed term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `allow`, `'and'`, `true`.
    Atom(String),
    /// `"text"`.
    Str(String),
    /// `1`.
    Int(i64),
    /// `{a, b}`.
    Tuple(Vec<Term>),
    /// `[a, b]`.
    List(Vec<Term>),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Term]| -> fmt::Result {
            for (i, t) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            Ok(())
        };
        match self {
            Term::Atom(a) => f.write_str(a),
            Term::Str(s) => write!(f, "{s:?}"),
            Term::Int(i) => write!(f, "{i}"),
            Term::Tuple(items) => {
                f.write_str("{")?;
                join(f, items)?;
                f.write_str("}")
            }
            Term::List(items) => {
                f.write_str("[")?;
                join(f, items)?;
                f.write_str("]")
            }
        }
    }
}

/// Where and why the text is not a list of terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What was wrong.
    pub why: String,
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn error<T>(&self, why: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError {
            line: self.line,
            why: why.into(),
        })
    }

    /// Skip blanks and `%` comments.
    fn skip(&mut self) {
        while let Some(&c) = self.text.get(self.at) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                b'%' => {
                    while self.text.get(self.at).is_some_and(|&c| c != b'\n') {
                        self.at += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip();
        self.text.get(self.at).copied()
    }

    /// One term, nesting kept on an explicit stack.
    fn term(&mut self) -> Result<Term, SyntaxError> {
        // Open containers: (is a tuple, items so far).
        let mut open: Vec<(bool, Vec<Term>)> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return self.error("unexpected end of file");
            };
            let done = match c {
                b'{' | b'[' => {
                    if open.len() >= MAX_DEPTH {
                        return self.error(format!("nested deeper than {MAX_DEPTH}"));
                    }
                    self.at += 1;
                    open.push((c == b'{', Vec::new()));
                    // An empty container closes at once.
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.at += 1;
                        let (tuple, items) = open.pop().expect("just pushed");
                        Some(if tuple {
                            Term::Tuple(items)
                        } else {
                            Term::List(items)
                        })
                    } else {
                        None
                    }
                }
                b'"' => Some(Term::Str(self.quoted(b'"')?)),
                b'\'' => Some(Term::Atom(self.quoted(b'\'')?)),
                b'-' | b'0'..=b'9' => Some(self.int()?),
                b'a'..=b'z' => Some(Term::Atom(self.atom())),
                other => return self.error(format!("unexpected {:?}", other as char)),
            };
            let Some(mut value) = done else {
                continue;
            };
            // Put the finished term into its container; close containers that end here.
            loop {
                let Some((tuple, items)) = open.last_mut() else {
                    return Ok(value);
                };
                items.push(value);
                let close = if *tuple { b'}' } else { b']' };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        break;
                    }
                    Some(c) if c == close => {
                        self.at += 1;
                        let (tuple, items) = open.pop().expect("present");
                        value = if tuple {
                            Term::Tuple(items)
                        } else {
                            Term::List(items)
                        };
                    }
                    _ => return self.error(format!("expected ',' or '{}'", close as char)),
                }
            }
        }
    }

    fn quoted(&mut self, quote: u8) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.text.get(self.at) else {
                return self.error("unterminated string");
            };
            self.at += 1;
            match c {
                c if c == quote => break,
                b'\\' => {
                    let Some(&e) = self.text.get(self.at) else {
                        return self.error("unterminated string");
                    };
                    self.at += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                b'\n' => {
                    self.line += 1;
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        match String::from_utf8(out) {
            Ok(s) => Ok(s),
            Err(_) => self.error("string is not UTF-8"),
        }
    }

    fn int(&mut self) -> Result<Term, SyntaxError> {
        let start = self.at;
        if self.text[self.at] == b'-' {
            self.at += 1;
        }
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).unwrap_or("");
        match digits.parse() {
            Ok(i) => Ok(Term::Int(i)),
            Err(_) => self.error(format!("bad integer {digits:?}")),
        }
    }

    fn atom(&mut self) -> String {
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'@')
        {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }
}

/// The terms of `text`, each ended by `.`.
pub fn parse(text: &str) -> Result<Vec<Term>, SyntaxError> {
    let mut p = Parser {
        text: text.as_bytes(),
        at: 0,
        line: 1,
    };
    let mut terms = Vec::new();
    while p.peek().is_some() {
        terms.push(p.term()?);
        if p.peek() != Some(b'.') {
            return p.error("expected '.' after a rule");
        }
        p.at += 1;
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(a: &str) -> Term {
        Term::Atom(a.into())
    }

    fn s(a: &str) -> Term {
        Term::Str(a.into())
    }

    #[test]
    fn rules_comments_quoted_atoms_and_nesting_parse() {
        let text = "%% a comment\n{allow, {'and', [{user, \"a\\\"b\"}, {ipaddr, \"10.0.0.0/8\"}]}, {publish, [{qos, [0, 1]}]}, [\"t/#\", {eq, \"#\"}]}.\n{deny, all}. % trailing\n";
        let terms = parse(text).unwrap();
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[1], Term::Tuple(vec![atom("deny"), atom("all")]));
        let Term::Tuple(rule) = &terms[0] else {
            panic!()
        };
        assert_eq!(rule[0], atom("allow"));
        assert_eq!(
            rule[1],
            Term::Tuple(vec![
                atom("and"),
                Term::List(vec![
                    Term::Tuple(vec![atom("user"), s("a\"b")]),
                    Term::Tuple(vec![atom("ipaddr"), s("10.0.0.0/8")]),
                ])
            ])
        );
        assert_eq!(
            rule[2],
            Term::Tuple(vec![
                atom("publish"),
                Term::List(vec![Term::Tuple(vec![
                    atom("qos"),
                    Term::List(vec![Term::Int(0), Term::Int(1)])
                ])])
            ])
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("{}. []. ").unwrap(),
            vec![Term::Tuple(vec![]), Term::List(vec![])]
        );
    }

    #[test]
    fn malformed_text_is_an_error_with_its_line_never_a_panic() {
        for bad in [
            "{allow, all}",
            "{allow, all",
            "{allow all}.",
            "{allow, \"unterminated}.",
            "\n\n{allow, #}.",
            "{allow, all}}.",
            "-.",
            "{allow, [a, b}.",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("\n\n{allow, #}.").unwrap_err().line, 3);
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1) + ".";
        assert!(parse(&deep).unwrap_err().why.contains("nested"));
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH) + ".";
        assert!(parse(&fine).is_ok());
        // A deep input far past the bound ends at the bound.
        let huge = "{".repeat(100_000);
        assert!(parse(&huge).is_err());
    }
}
