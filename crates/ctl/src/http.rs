//! A small HTTP/1.1 client for the management API: one request per connection, the body
//! read to the end (`Content-Length` or chunked). The API is local and plain HTTP.

use anyhow::{anyhow, bail, Context};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response: status and body.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).context("the API answered something that is not JSON")
    }

    /// EMQX's error message of an error answer, else the body as text.
    pub fn message(&self) -> String {
        match self.json() {
            Ok(v) if v.get("message").is_some() => {
                v["message"].as_str().unwrap_or_default().to_string()
            }
            _ => String::from_utf8_lossy(&self.body).trim().to_string(),
        }
    }
}

/// Where the API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Api {
    host: String,
    base: String,
    auth: Option<String>,
}

/// Most bytes of an answer read.
const MAX_BODY: usize = 64 << 20;

impl Api {
    /// `url` is `http://host:port` (a path after it is ignored); `auth` a `key:secret`.
    pub fn new(url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<Api> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url {url}: only http:// is supported"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            bail!("--url {url}: no host");
        }
        use base64::Engine;
        let auth =
            auth.map(|(k, s)| base64::engine::general_purpose::STANDARD.encode(format!("{k}:{s}")));
        Ok(Api {
            host: host.to_string(),
            base: "/api/v5".to_string(),
            auth,
        })
    }

    /// Send `method` to `path` (under `/api/v5`) with an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Response> {
        let addr = if self.host.contains(':') {
            self.host.clone()
        } else {
            format!("{}:80", self.host)
        };
        let mut stream = TcpStream::connect(&addr)
            .with_context(|| format!("cannot reach the management API at {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(serde_json::to_vec).transpose()?;
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.base, self.host
        );
        if let Some(auth) = &self.auth {
            req.push_str(&format!("Authorization: Basic {auth}\r\n"));
        }
        if let Some(b) = &body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        } else if method != "GET" && method != "DELETE" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes())?;
        if let Some(b) = &body {
            stream.write_all(b)?;
        }
        let mut raw = Vec::new();
        stream
            .take(MAX_BODY as u64)
            .read_to_end(&mut raw)
            .context("reading the API's answer")?;
        parse(&raw)
    }
}

/// Parse a whole HTTP/1.1 response.
fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("the API's answer has no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).context("the API's headers are not text")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("the API's status line is malformed"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        let n = length.unwrap_or(rest.len()).min(rest.len());
        rest[..n].to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("a chunk without its size line"))?;
        let size_text = std::str::from_utf8(&rest[..eol])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("a chunk size that is not hex")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            bail!("a chunk cut short");
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_answers_parse() {
        let r = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }
}
