//! Device management from MQTT (reference §5.4): a command's JSON read into the CoAP
//! request it asks for, and the device's answer rendered as EMQX's response JSON. Pure:
//! the channel sends, waits and publishes.
//!
//! A command is `{"reqID":…, "msgType":"read", "data":{"path":"/3/0/1"}}`; every member
//! but `data` is echoed in what is published about it. Beyond EMQX: `data.contentFormat`
//! (`tlv`, `text`, `json`, `senml+json`, `senml+cbor`) chooses the payload format of a
//! write or create and the format a read or observe asks for (Accept), and
//! `read-composite`, `observe-composite` and `cancel-observe-composite` name several
//! paths at once (LwM2M 1.1: FETCH with a SenML list of names).

use bytes::{Bytes, BytesMut};
use junction_codec_coap::link_format::{self, Limits};
use junction_codec_coap::{option, Code, Message, MessageType};
use junction_codec_lwm2m::{
    decode_oma_json, decode_opaque, decode_senml_cbor, decode_senml_json, decode_text,
    decode_tlv_values, emqx_content, encode_oma_json, encode_senml_cbor, encode_senml_json,
    encode_text, encode_tlv_values, parse_write_command, retype, untimed, ContentFormat,
    ObjectRegistry, Path, Record, ResourceType, TimedRecord,
};
use serde_json::{Map, Value as Json};

/// What a command asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GET.
    Read,
    /// GET, Accept link-format.
    Discover,
    /// PUT (replace) or POST (partial update) with the values.
    Write,
    /// PUT with attributes as Uri-Query.
    WriteAttr,
    /// POST with the arguments.
    Execute,
    /// POST to the object with the new instance.
    Create,
    /// DELETE.
    Delete,
    /// GET, Observe 0.
    Observe,
    /// GET, Observe 1, with the observation's token.
    CancelObserve,
    /// FETCH of several paths (LwM2M 1.1 Read-Composite).
    ReadComposite,
    /// FETCH of several paths, Observe 0 (LwM2M 1.1 Observe-Composite).
    ObserveComposite,
    /// FETCH of the same paths, Observe 1, with the observation's token.
    CancelObserveComposite,
}

impl Kind {
    fn of(msg_type: &str) -> Option<Kind> {
        Some(match msg_type {
            "read" => Kind::Read,
            "discover" => Kind::Discover,
            "write" => Kind::Write,
            "write-attr" => Kind::WriteAttr,
            "execute" => Kind::Execute,
            "create" => Kind::Create,
            "delete" => Kind::Delete,
            "observe" => Kind::Observe,
            "cancel-observe" => Kind::CancelObserve,
            "read-composite" => Kind::ReadComposite,
            "observe-composite" => Kind::ObserveComposite,
            "cancel-observe-composite" => Kind::CancelObserveComposite,
            _ => return None,
        })
    }

    /// Whether a successful answer carries values to decode.
    fn has_values(self) -> bool {
        matches!(
            self,
            Kind::Read | Kind::Observe | Kind::ReadComposite | Kind::ObserveComposite
        )
    }

    /// A composite operation: `data.paths` instead of `data.path`.
    pub fn is_composite(self) -> bool {
        matches!(
            self,
            Kind::ReadComposite | Kind::ObserveComposite | Kind::CancelObserveComposite
        )
    }
}

/// A command from MQTT, ready to send.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command's members but `data`, echoed in every message about it.
    pub echo: Map<String, Json>,
    /// What it asks.
    pub kind: Kind,
    /// The path as the command wrote it (`reqPath`), query included.
    pub req_path: String,
    /// The path, for decoding the answer.
    pub path: Path,
    /// The request, without message id or token; its Uri-Path is relative to the
    /// device's alternate path, which [`Command::message`] adds.
    request: Message,
    /// When the command (an MQTT message) expires, in Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

/// A command that cannot be sent: published as a 4.00 result with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCommand {
    /// The command's members but `data`, when it was a JSON object.
    pub echo: Map<String, Json>,
    /// The path it named, if any.
    pub req_path: String,
    /// Why.
    pub error: String,
}

/// The largest command payload: a command to a constrained device fits a few
/// datagrams.
pub const MAX_COMMAND: usize = 64 << 10;

/// Read a command. `Ok(None)` for a payload that is not a JSON object (EMQX drops it).
pub fn parse(
    payload: &[u8],
    registry: &ObjectRegistry,
    expires_at_ms: Option<u64>,
) -> Result<Option<Command>, BadCommand> {
    if payload.len() > MAX_COMMAND {
        return Ok(None);
    }
    let Ok(Json::Object(mut command)) = serde_json::from_slice::<Json>(payload) else {
        return Ok(None);
    };
    let data = command.remove("data").unwrap_or(Json::Null);
    let echo = command;
    // A composite operation's `reqPath` is its paths, joined by commas.
    let req_path = match data.get("path").or_else(|| data.get("basePath")) {
        Some(p) => p.as_str().unwrap_or_default().to_string(),
        None => match data.get("paths") {
            Some(Json::Array(paths)) => paths
                .iter()
                .filter_map(Json::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        },
    };
    let bad = |error: String| BadCommand {
        echo: echo.clone(),
        req_path: req_path.clone(),
        error,
    };
    let msg_type = echo.get("msgType").and_then(Json::as_str).unwrap_or("");
    let kind = Kind::of(msg_type).ok_or_else(|| bad(format!("unknown msgType {msg_type:?}")))?;
    let request = build(kind, &data, &req_path, registry).map_err(bad)?;
    let (path_text, _) = req_path.split_once('?').unwrap_or((&req_path, ""));
    let path = match kind {
        // Its answer names full paths; the root object stands for "the device".
        k if k.is_composite() => Path::object(0).expect("object 0 is a path"),
        _ => Path::parse(path_text).map_err(|e| bad(e.to_string()))?,
    };
    Ok(Some(Command {
        echo,
        kind,
        req_path,
        path,
        request,
        expires_at_ms,
    }))
}

/// The CoAP request of a command.
fn build(
    kind: Kind,
    data: &Json,
    req_path: &str,
    registry: &ObjectRegistry,
) -> Result<Message, String> {
    let format = match data.get("contentFormat").and_then(Json::as_str) {
        None => None,
        Some(name) => Some(format_named(name).ok_or_else(|| {
            format!("contentFormat: tlv, text, json, senml+json or senml+cbor, not {name:?}")
        })?),
    };
    let (path_text, query) = match req_path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req_path, None),
    };
    let mut m = Message::new(MessageType::Confirmable, Code::GET, 0);
    let set_path = |m: &mut Message| -> Result<(), String> {
        let path = Path::parse(path_text).map_err(|e| e.to_string())?;
        m.set_uri_path(&path.to_string());
        Ok(())
    };
    match kind {
        Kind::Read | Kind::Observe | Kind::CancelObserve => {
            set_path(&mut m)?;
            if kind != Kind::Read {
                m.options
                    .push_uint(option::OBSERVE, u32::from(kind == Kind::CancelObserve));
            }
            if let Some(f) = format {
                m.options.push_uint(option::ACCEPT, u32::from(f.code()));
            }
        }
        Kind::Discover => {
            set_path(&mut m)?;
            m.options
                .push_uint(option::ACCEPT, u32::from(ContentFormat::LinkFormat.code()));
        }
        Kind::Delete => {
            set_path(&mut m)?;
            m.code = Code::DELETE;
        }
        Kind::Execute => {
            set_path(&mut m)?;
            m.code = Code::POST;
            let args = data.get("args").and_then(Json::as_str).unwrap_or("");
            if !args.is_empty() {
                m.options.push_uint(
                    option::CONTENT_FORMAT,
                    u32::from(ContentFormat::Text.code()),
                );
                m = m.with_payload(Bytes::copy_from_slice(args.as_bytes()));
            }
        }
        Kind::WriteAttr => {
            set_path(&mut m)?;
            m.code = Code::PUT;
            for key in ["pmin", "pmax", "gt", "lt", "st", "epmin", "epmax"] {
                match data.get(key) {
                    None | Some(Json::Null) => {}
                    Some(Json::String(v)) => m.push_uri_query(key, v),
                    Some(Json::Number(n)) => m.push_uri_query(key, &n.to_string()),
                    Some(_) => return Err(format!("{key}: a string or a number")),
                }
            }
        }
        Kind::Write | Kind::Create => {
            let write = parse_write_command(data).map_err(|e| e.to_string())?;
            let records = typed(write.records, registry)?;
            let format = format.unwrap_or(ContentFormat::Tlv);
            let payload = encode(&records, &write.base, format)?;
            m.set_uri_path(&write.base.to_string());
            m.code = match kind {
                // Create, and a batch write to an object instance, are POSTs; a write to
                // a resource replaces it (LwM2M 1.1 Core §8.2.6, EMQX's rule).
                Kind::Create => Code::POST,
                _ if data.get("content").is_some() && write.base.depth() == 2 => Code::POST,
                _ => Code::PUT,
            };
            if let Some(q) = write.query.as_deref() {
                push_query(&mut m, q);
            }
            m.options
                .push_uint(option::CONTENT_FORMAT, u32::from(format.code()));
            m = m.with_payload(payload);
        }
        Kind::ReadComposite | Kind::ObserveComposite | Kind::CancelObserveComposite => {
            let Some(Json::Array(paths)) = data.get("paths") else {
                return Err("paths is missing or not an array".into());
            };
            if paths.is_empty() || paths.len() > 64 {
                return Err("paths: 1 to 64 paths".into());
            }
            let mut list = Vec::with_capacity(paths.len());
            for p in paths {
                let text = p.as_str().ok_or("paths: strings")?;
                let path = Path::parse(text).map_err(|e| e.to_string())?;
                list.push(serde_json::json!({ "n": path.to_string() }));
            }
            m.code = Code::FETCH;
            if kind != Kind::ReadComposite {
                let cancel = kind == Kind::CancelObserveComposite;
                m.options.push_uint(option::OBSERVE, u32::from(cancel));
            }
            let senml = u32::from(ContentFormat::SenmlJson.code());
            m.options.push_uint(option::CONTENT_FORMAT, senml);
            m.options.push_uint(
                option::ACCEPT,
                u32::from(format.unwrap_or(ContentFormat::SenmlJson).code()),
            );
            m = m.with_payload(Bytes::from(Json::Array(list).to_string()));
        }
    }
    if let Some(q) = query.filter(|_| !matches!(kind, Kind::Write | Kind::Create)) {
        push_query(&mut m, q);
    }
    Ok(m)
}

fn push_query(m: &mut Message, query: &str) {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        m.options
            .push(option::URI_QUERY, Bytes::copy_from_slice(pair.as_bytes()));
    }
}

fn format_named(name: &str) -> Option<ContentFormat> {
    Some(match name {
        "tlv" => ContentFormat::Tlv,
        "text" => ContentFormat::Text,
        "json" => ContentFormat::OmaJson,
        "senml+json" => ContentFormat::SenmlJson,
        "senml+cbor" => ContentFormat::SenmlCbor,
        _ => return None,
    })
}

/// The command's values converted to the types their definitions declare, where known.
fn typed(records: Vec<Record>, registry: &ObjectRegistry) -> Result<Vec<Record>, String> {
    records
        .into_iter()
        .map(|(path, value)| match registry.resource_type(&path) {
            Some(ty) if ty != ResourceType::None => retype(value, ty)
                .map(|v| (path, v))
                .map_err(|e| format!("{path}: {e}")),
            _ => Ok((path, value)),
        })
        .collect()
}

fn encode(records: &[Record], base: &Path, format: ContentFormat) -> Result<Bytes, String> {
    let timed = || -> Vec<TimedRecord> {
        records
            .iter()
            .map(|(path, value)| TimedRecord {
                path: *path,
                value: value.clone(),
                time: None,
            })
            .collect()
    };
    match format {
        ContentFormat::Tlv => {
            let mut buf = BytesMut::new();
            encode_tlv_values(records, base, &mut buf).map_err(|e| e.to_string())?;
            Ok(buf.freeze())
        }
        ContentFormat::Text => match records {
            [(path, value)] if path == base => encode_text(value)
                .map(Bytes::from)
                .map_err(|e| e.to_string()),
            _ => Err("text carries one resource, written at its own path".into()),
        },
        ContentFormat::OmaJson => encode_oma_json(&timed(), base)
            .map(Bytes::from)
            .map_err(|e| e.to_string()),
        ContentFormat::SenmlJson => encode_senml_json(&timed())
            .map(Bytes::from)
            .map_err(|e| e.to_string()),
        ContentFormat::SenmlCbor => encode_senml_cbor(&timed())
            .map(Bytes::from)
            .map_err(|e| e.to_string()),
        _ => Err("not a write format".into()),
    }
}

impl Command {
    /// Whether this (a cancel-observe) ends the observation `observe`: the same path, or
    /// for a composite one the same paths.
    pub fn cancels(&self, observe: &Command) -> bool {
        match (self.kind, observe.kind) {
            (Kind::CancelObserve, Kind::Observe) => self.path == observe.path,
            (Kind::CancelObserveComposite, Kind::ObserveComposite) => {
                self.req_path == observe.req_path
            }
            _ => false,
        }
    }

    /// The request to send, its path under the device's alternate path.
    pub fn message(&self, alternate_path: &str) -> Message {
        let mut m = self.request.clone();
        let alt = alternate_path.trim_matches('/');
        if !alt.is_empty() {
            let relative: Vec<Bytes> = m.options.get_all(option::URI_PATH).cloned().collect();
            m.options.remove(option::URI_PATH);
            for segment in alt.split('/').filter(|s| !s.is_empty()) {
                m.options
                    .push(option::URI_PATH, Bytes::copy_from_slice(segment.as_bytes()));
            }
            for segment in relative {
                m.options.push(option::URI_PATH, segment);
            }
        }
        m
    }

    /// The message published about this command: its echoed members, `msgType` (the
    /// command's, or `ack`, `coap_timeout`, `coap_reset`, `notify`) and `data`.
    pub fn published(&self, msg_type: Option<&str>, data: Json) -> Json {
        let mut out = self.echo.clone();
        if let Some(t) = msg_type {
            out.insert("msgType".into(), Json::String(t.to_string()));
        }
        out.insert("data".into(), data);
        Json::Object(out)
    }

    /// The `data` of a result: the device's answer decoded (values of a read or an
    /// observe, links of a discover).
    pub fn result(&self, answer: &Message, registry: &ObjectRegistry) -> Json {
        result_data(self.kind, &self.req_path, &self.path, answer, registry)
    }
}

impl BadCommand {
    /// The 4.00 result published for it.
    pub fn published(&self) -> Json {
        let mut out = self.echo.clone();
        out.insert(
            "data".into(),
            serde_json::json!({
                "reqPath": self.req_path,
                "code": "4.00",
                "codeMsg": "bad_request",
                "error": self.error,
            }),
        );
        Json::Object(out)
    }
}

/// `{"reqPath", "code", "codeMsg", "content"?}` of a device's answer to a request of
/// `kind` on `path`.
pub fn result_data(
    kind: Kind,
    req_path: &str,
    path: &Path,
    answer: &Message,
    registry: &ObjectRegistry,
) -> Json {
    let mut data = Map::new();
    data.insert("reqPath".into(), Json::String(req_path.to_string()));
    let mut code = answer.code;
    let mut error = None;
    let mut content = None;
    if code.is_success() && !answer.payload.is_empty() {
        if kind == Kind::Discover {
            content = Some(links(&answer.payload));
        } else if kind.has_values() {
            match values(answer, path, registry) {
                Ok(records) => content = Some(emqx_content(&records)),
                Err(e) => {
                    // EMQX answers 4.00 for a value it cannot read (an object without
                    // a definition, a malformed payload).
                    code = Code::BAD_REQUEST;
                    error = Some(e);
                }
            }
        }
    }
    data.insert("code".into(), Json::String(code.to_string()));
    data.insert(
        "codeMsg".into(),
        Json::String(code.name().unwrap_or("unknown").to_string()),
    );
    if let Some(c) = content {
        data.insert("content".into(), c);
    }
    if let Some(e) = error {
        data.insert("error".into(), Json::String(e));
    }
    Json::Object(data)
}

/// The links of a discover answer, each as a string.
fn links(payload: &[u8]) -> Json {
    let text = String::from_utf8_lossy(payload);
    match link_format::parse(&text, Limits::default()) {
        Ok(links) => Json::Array(
            links
                .iter()
                .filter_map(|l| link_format::serialize(std::slice::from_ref(l)).ok())
                .map(Json::String)
                .collect(),
        ),
        Err(_) => Json::Array(
            text.split(',')
                .map(|s| Json::String(s.trim().to_string()))
                .collect(),
        ),
    }
}

/// The values of an answer, typed by the object definitions.
pub fn values(
    answer: &Message,
    path: &Path,
    registry: &ObjectRegistry,
) -> Result<Vec<Record>, String> {
    let format = match answer.content_format() {
        None => ContentFormat::Text,
        Some(n) => ContentFormat::from_code(n)
            .ok_or_else(|| format!("content format {n} is not an LwM2M one"))?,
    };
    let defined = || {
        registry
            .get(path.object_id())
            .map(|_| ())
            .ok_or_else(|| format!("object {} is not defined", path.object_id()))
    };
    let payload = &answer.payload;
    let self_typed = |records: Vec<TimedRecord>| -> Result<Vec<Record>, String> {
        untimed(records)
            .into_iter()
            .map(|(p, v)| match registry.resource_type(&p) {
                Some(ty) if ty != ResourceType::None => retype(v, ty)
                    .map(|v| (p, v))
                    .map_err(|e| format!("{p}: {e}")),
                _ => Ok((p, v)),
            })
            .collect()
    };
    match format {
        ContentFormat::Tlv => {
            defined()?;
            decode_tlv_values(payload, path, |p| registry.type_or_opaque(p))
                .map_err(|e| e.to_string())
        }
        ContentFormat::Text => {
            defined()?;
            if path.resource_id().is_none() {
                return Err("plain text answers a resource".into());
            }
            let ty = registry.type_or_opaque(path);
            decode_text(payload, ty)
                .map(|v| vec![(*path, v)])
                .map_err(|e| e.to_string())
        }
        ContentFormat::Opaque => Ok(vec![(*path, decode_opaque(payload.clone()))]),
        ContentFormat::OmaJson => self_typed(decode_oma_json(payload).map_err(|e| e.to_string())?),
        ContentFormat::SenmlJson => {
            self_typed(decode_senml_json(payload).map_err(|e| e.to_string())?)
        }
        ContentFormat::SenmlCbor => {
            self_typed(decode_senml_cbor(payload).map_err(|e| e.to_string())?)
        }
        ContentFormat::LinkFormat => Err("link format carries no values".into()),
    }
}
