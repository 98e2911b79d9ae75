//! A small, bounded XML reader for object definition files: elements, attributes, text,
//! CDATA, comments, processing instructions (the XML declaration among them), the five
//! predefined entities and numeric character references.
//!
//! It is not a general XML processor: document type declarations are refused (so no
//! entity is ever declared or expanded), and input size, element depth, element count
//! and attributes per element are capped before anything is allocated for them. The
//! reader is iterative (an explicit stack, never recursion) and never panics on input.

use std::borrow::Cow;

use crate::error::ObjectXmlError;

/// The largest document read, in octets (4 MiB; OMA object files are a few tens of KiB).
pub const MAX_XML_SIZE: usize = 4 * 1024 * 1024;
/// The deepest element nesting read (an object file nests 4 deep).
pub const MAX_XML_DEPTH: usize = 32;
/// The most elements one document may hold.
pub const MAX_XML_ELEMENTS: usize = 100_000;
/// The most attributes one element may carry.
pub const MAX_XML_ATTRIBUTES: usize = 32;

/// The longest entity or character reference looked at, between `&` and `;`.
const MAX_REFERENCE: usize = 12;

/// One element: its name, attributes, child elements and the concatenation of its own
/// text and CDATA (comments and processing instructions dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    /// The name as written, prefix included (`xsi:schemaLocation`).
    pub name: String,
    /// Attributes in document order, values with references resolved.
    pub attributes: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Direct text content, references resolved.
    pub text: String,
    /// The line of the start tag (1-based).
    pub line: usize,
}

impl Element {
    /// The name without its namespace prefix.
    pub fn local_name(&self) -> &str {
        local_name(&self.name)
    }

    /// The first child with this local name (ASCII case-insensitive).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|child| child.local_name().eq_ignore_ascii_case(name))
    }

    /// The children with this local name (ASCII case-insensitive).
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children
            .iter()
            .filter(move |child| child.local_name().eq_ignore_ascii_case(name))
    }

    /// The value of the attribute with this local name (ASCII case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| local_name(key).eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

fn local_name(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// Parses a whole document and returns its root element.
pub(crate) fn parse(text: &str) -> Result<Element, ObjectXmlError> {
    if text.len() > MAX_XML_SIZE {
        return Err(ObjectXmlError::TooLarge {
            size: text.len(),
            max: MAX_XML_SIZE,
        });
    }
    Reader::new(text).document()
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Newlines are counted up to `counted`; `pos` never moves back.
    counted: usize,
    line: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            counted: 0,
            line: 1,
        }
    }

    /// The line `pos` is on.
    fn line(&mut self) -> usize {
        let end = self.pos.min(self.bytes.len());
        if end > self.counted {
            let newlines = self
                .bytes
                .get(self.counted..end)
                .map_or(0, |run| run.iter().filter(|b| **b == b'\n').count());
            self.line += newlines;
            self.counted = end;
        }
        self.line
    }

    fn syntax(&mut self, message: impl Into<String>) -> ObjectXmlError {
        ObjectXmlError::Syntax {
            line: self.line(),
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }

    fn starts_with(&self, prefix: &[u8]) -> bool {
        self.rest().starts_with(prefix)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The text from `start` to `end`; both are positions of ASCII delimiters, so the
    /// slice is on character boundaries, but a miss is an error rather than a panic.
    fn slice(&mut self, start: usize, end: usize) -> Result<&'a str, ObjectXmlError> {
        let text = self.text;
        match text.get(start..end) {
            Some(slice) => Ok(slice),
            None => Err(self.syntax("text is cut inside a character")),
        }
    }

    /// Finds `needle` at or after `from`; returns its start.
    fn find(&self, from: usize, needle: &[u8]) -> Option<usize> {
        let haystack = self.bytes.get(from..)?;
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|at| from + at)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn document(mut self) -> Result<Element, ObjectXmlError> {
        if self.starts_with("\u{feff}".as_bytes()) {
            self.pos += 3;
        }
        let prolog_start = self.pos;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        let mut elements = 0usize;

        while self.pos < self.bytes.len() {
            if self.peek() != Some(b'<') {
                let start = self.pos;
                let end = self.find(start, b"<").unwrap_or(self.bytes.len());
                let raw = self.slice(start, end)?;
                match stack.last_mut() {
                    Some(open) => {
                        let line = self.line();
                        open.text.push_str(&decode(raw, line)?);
                    }
                    None if raw.bytes().all(is_xml_space) => {}
                    None => return Err(self.syntax("text outside the root element")),
                }
                self.pos = end;
            } else if self.starts_with(b"<?") {
                self.processing_instruction(prolog_start)?;
            } else if self.starts_with(b"<!--") {
                let Some(end) = self.find(self.pos + 4, b"-->") else {
                    return Err(self.syntax("comment is never closed (no -->)"));
                };
                self.pos = end + 3;
            } else if self.starts_with(b"<![CDATA[") {
                let start = self.pos + 9;
                let Some(end) = self.find(start, b"]]>") else {
                    return Err(self.syntax("CDATA section is never closed (no ]]>)"));
                };
                let content = self.slice(start, end)?;
                match stack.last_mut() {
                    Some(open) => open.text.push_str(content),
                    None => return Err(self.syntax("CDATA section outside the root element")),
                }
                self.pos = end + 3;
            } else if self.starts_with(b"<!") {
                return Err(ObjectXmlError::DoctypeRefused { line: self.line() });
            } else if self.starts_with(b"</") {
                let element = self.end_tag(&mut stack)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            } else {
                if root.is_some() && stack.is_empty() {
                    return Err(self.syntax("a second root element"));
                }
                elements += 1;
                if elements > MAX_XML_ELEMENTS {
                    return Err(ObjectXmlError::TooMany {
                        line: self.line(),
                        what: "elements",
                        max: MAX_XML_ELEMENTS,
                    });
                }
                let (element, empty) = self.start_tag()?;
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(ObjectXmlError::TooDeep {
                        line: element.line,
                        element: element.name,
                        max: MAX_XML_DEPTH,
                    });
                }
                if !empty {
                    stack.push(element);
                } else {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => root = Some(element),
                    }
                }
            }
        }

        if let Some(open) = stack.pop() {
            return Err(ObjectXmlError::Unclosed {
                line: open.line,
                element: open.name,
            });
        }
        match root {
            Some(root) => Ok(root),
            None => Err(self.syntax("no root element")),
        }
    }

    /// `<?target …?>`: the XML declaration is allowed only at the very start; other
    /// processing instructions are skipped.
    fn processing_instruction(&mut self, prolog_start: usize) -> Result<(), ObjectXmlError> {
        let start = self.pos;
        let Some(end) = self.find(start + 2, b"?>") else {
            return Err(self.syntax("processing instruction is never closed (no ?>)"));
        };
        self.pos += 2;
        let target = self.name()?;
        if target.eq_ignore_ascii_case("xml") && start != prolog_start {
            return Err(self.syntax("the XML declaration is not at the start [XML 1.0 §2.8]"));
        }
        self.pos = end + 2;
        Ok(())
    }

    /// A name at `pos` (XML 1.0 §2.3, with every non-ASCII character allowed).
    fn name(&mut self) -> Result<&'a str, ObjectXmlError> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80 => {}
            _ => return Err(self.syntax("expected a name")),
        }
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.') || b >= 0x80 {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.slice(start, self.pos)
    }

    /// `<name attr="value" …>` or `<name …/>`; returns the element and whether it was
    /// empty (self-closed).
    fn start_tag(&mut self) -> Result<(Element, bool), ObjectXmlError> {
        let line = self.line();
        self.pos += 1;
        let name = self.name()?.to_owned();
        let mut attributes: Vec<(String, String)> = Vec::new();
        loop {
            let before = self.pos;
            self.skip_whitespace();
            match self.peek() {
                Some(b'>') => {
                    self.pos += 1;
                    return Ok((element(name, attributes, line), false));
                }
                Some(b'/') if self.starts_with(b"/>") => {
                    self.pos += 2;
                    return Ok((element(name, attributes, line), true));
                }
                None => {
                    return Err(ObjectXmlError::Unclosed {
                        line,
                        element: name,
                    })
                }
                Some(_) if before == self.pos => {
                    return Err(self.syntax(format!("expected whitespace, '>' or '/>' in <{name}>")))
                }
                Some(_) => {}
            }
            if attributes.len() >= MAX_XML_ATTRIBUTES {
                return Err(ObjectXmlError::TooMany {
                    line: self.line(),
                    what: "attributes on one element",
                    max: MAX_XML_ATTRIBUTES,
                });
            }
            let key = self.name()?;
            self.skip_whitespace();
            if self.peek() != Some(b'=') {
                return Err(self.syntax(format!("attribute {key} of <{name}> has no '='")));
            }
            self.pos += 1;
            self.skip_whitespace();
            let quote = match self.peek() {
                Some(quote @ (b'"' | b'\'')) => quote,
                _ => return Err(self.syntax(format!("attribute {key} of <{name}> is not quoted"))),
            };
            let start = self.pos + 1;
            let Some(end) = self.find(start, &[quote]) else {
                return Err(self.syntax(format!("attribute {key} of <{name}> is never closed")));
            };
            let raw = self.slice(start, end)?;
            if raw.contains('<') {
                return Err(self.syntax(format!("'<' in attribute {key} of <{name}>")));
            }
            if attributes.iter().any(|(seen, _)| seen == key) {
                return Err(self.syntax(format!(
                    "attribute {key} repeated on <{name}> [XML 1.0 §3.1 Unique Att Spec]"
                )));
            }
            let line = self.line();
            // Attribute-value normalization (XML 1.0 §3.3.3): literal whitespace is a space.
            let normalized = raw.replace(['\t', '\n', '\r'], " ");
            let value = decode(&normalized, line)?.into_owned();
            attributes.push((key.to_owned(), value));
            self.pos = end + 1;
        }
    }

    /// `</name>`: pops the innermost open element, which must have this name.
    fn end_tag(&mut self, stack: &mut Vec<Element>) -> Result<Element, ObjectXmlError> {
        let line = self.line();
        self.pos += 2;
        let name = self.name()?;
        self.skip_whitespace();
        if self.peek() != Some(b'>') {
            return Err(self.syntax(format!("end tag </{name}> is not closed by '>'")));
        }
        self.pos += 1;
        match stack.pop() {
            Some(open) if open.name == name => Ok(open),
            Some(open) => Err(ObjectXmlError::MismatchedEnd {
                line,
                expected: open.name,
                found: name.to_owned(),
            }),
            None => Err(ObjectXmlError::Syntax {
                line,
                message: format!("end tag </{name}> without a start tag"),
            }),
        }
    }
}

fn element(name: String, attributes: Vec<(String, String)>, line: usize) -> Element {
    Element {
        name,
        attributes,
        children: Vec::new(),
        text: String::new(),
        line,
    }
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Resolves the five predefined entities and numeric character references (XML 1.0
/// §4.1, §4.6); anything else after `&` is an error, never an expansion.
fn decode(raw: &str, line: usize) -> Result<Cow<'_, str>, ObjectXmlError> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let bad = || ObjectXmlError::BadReference {
            line,
            reference: after.chars().take(MAX_REFERENCE).collect(),
        };
        let semi = after
            .char_indices()
            .take(MAX_REFERENCE + 1)
            .find(|(_, c)| *c == ';')
            .map(|(at, _)| at)
            .ok_or_else(bad)?;
        let reference = after.get(..semi).unwrap_or_default();
        let resolved = match reference {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => character_reference(reference).ok_or_else(bad)?,
        };
        out.push(resolved);
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// `#123` or `#x7B` to a character XML allows (XML 1.0 §2.2 Char).
fn character_reference(reference: &str) -> Option<char> {
    let number = reference.strip_prefix('#')?;
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    let valid_digit = |c: char| {
        if radix == 16 {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        }
    };
    if digits.is_empty() || !digits.chars().all(valid_digit) {
        return None;
    }
    let code = u32::from_str_radix(digits, radix).ok()?;
    let allowed =
        matches!(code, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    if !allowed {
        return None;
    }
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_attributes_text_cdata_and_references() {
        let root = parse(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->\n\
             <a x='1' y = \"&lt;&#65;&#x42;&amp;\">\n  <b>t &gt; u</b><c/><b><![CDATA[<raw>&amp;]]></b>\
             <?pi ignored?></a>\n<!-- trailing -->\n",
        )
        .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.line, 3);
        assert_eq!(root.attribute("x"), Some("1"));
        assert_eq!(root.attribute("y"), Some("<AB&"));
        assert_eq!(root.children.len(), 3);
        assert_eq!(root.child("b").unwrap().text, "t > u");
        assert_eq!(root.children[2].text, "<raw>&amp;");
        assert_eq!(root.children_named("B").count(), 2);
        assert_eq!(root.child("c").unwrap().line, 4);
    }

    #[test]
    fn refuses_doctype_and_entity_declarations() {
        for doc in [
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a><!ENTITY x \"y\"></a>",
        ] {
            assert!(matches!(
                parse(doc),
                Err(ObjectXmlError::DoctypeRefused { line: 1 })
            ));
        }
        assert!(matches!(
            parse("<a>&x;</a>"),
            Err(ObjectXmlError::BadReference { .. })
        ));
        assert!(matches!(
            parse("<a>&#0;</a>"),
            Err(ObjectXmlError::BadReference { .. })
        ));
        assert!(matches!(
            parse("<a>&#xD800;</a>"),
            Err(ObjectXmlError::BadReference { .. })
        ));
        assert!(matches!(
            parse("<a>& b</a>"),
            Err(ObjectXmlError::BadReference { .. })
        ));
    }

    #[test]
    fn refuses_malformed_documents() {
        assert!(matches!(
            parse("<a>\n<b>"),
            Err(ObjectXmlError::Unclosed { line: 2, .. })
        ));
        assert!(matches!(
            parse("<a>\n</b>"),
            Err(ObjectXmlError::MismatchedEnd { line: 2, .. })
        ));
        assert!(matches!(parse("<a"), Err(ObjectXmlError::Unclosed { .. })));
        assert!(matches!(parse(""), Err(ObjectXmlError::Syntax { .. })));
        assert!(matches!(parse("x<a/>"), Err(ObjectXmlError::Syntax { .. })));
        assert!(matches!(
            parse("<a/><b/>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(parse("</a>"), Err(ObjectXmlError::Syntax { .. })));
        assert!(matches!(
            parse("<a x=1/>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a x='1' x='2'/>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a x='<'/>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a><!-- x</a>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a><![CDATA[x</a>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<a/><?xml version='1.0'?>"),
            Err(ObjectXmlError::Syntax { .. })
        ));
        assert!(matches!(parse("<1a/>"), Err(ObjectXmlError::Syntax { .. })));
    }

    #[test]
    fn caps_depth_elements_attributes_and_size() {
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1);
        assert!(matches!(
            parse(&deep),
            Err(ObjectXmlError::TooDeep {
                max: MAX_XML_DEPTH,
                ..
            })
        ));
        let ok_depth = format!(
            "{}{}",
            "<a>".repeat(MAX_XML_DEPTH),
            "</a>".repeat(MAX_XML_DEPTH)
        );
        assert!(parse(&ok_depth).is_ok());

        let many = format!("<r>{}</r>", "<e/>".repeat(MAX_XML_ELEMENTS));
        assert!(matches!(
            parse(&many),
            Err(ObjectXmlError::TooMany {
                what: "elements",
                ..
            })
        ));

        let attributes: String = (0..=MAX_XML_ATTRIBUTES)
            .map(|i| format!(" a{i}='x'"))
            .collect();
        assert!(matches!(
            parse(&format!("<r{attributes}/>")),
            Err(ObjectXmlError::TooMany { .. })
        ));

        let huge = format!("<r>{}</r>", " ".repeat(MAX_XML_SIZE));
        assert!(matches!(parse(&huge), Err(ObjectXmlError::TooLarge { .. })));
    }

    #[test]
    fn keeps_non_ascii_text_and_names() {
        let root = parse("<größe einheit='°C'>ß &#x263A;</größe>").unwrap();
        assert_eq!(root.name, "größe");
        assert_eq!(root.attribute("einheit"), Some("°C"));
        assert_eq!(root.text, "ß \u{263A}");
    }
}
