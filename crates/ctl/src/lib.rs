//! `junction ctl`: manage a running node through its HTTP API. Tables by default,
//! `--json` for the API's own JSON; the `gateway*` commands print what EMQX's
//! `emqx ctl` prints (reference §3).

pub mod http;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use http::{Api, Response};
use junction_types::time::parse_rfc3339;
use serde_json::Value;
use std::io::Write;

/// `junction ctl …`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The management API.
    #[arg(
        long,
        env = "JUNCTION_CTL_URL",
        default_value = "http://127.0.0.1:18083"
    )]
    pub url: String,
    /// API key (with --secret).
    #[arg(long, env = "JUNCTION_CTL_KEY")]
    pub key: Option<String>,
    /// API secret.
    #[arg(long, env = "JUNCTION_CTL_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Ctl,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Ctl {
    /// Is the node running?
    Status,
    /// MQTT clients.
    Clients {
        #[command(subcommand)]
        command: ClientsCmd,
    },
    /// Subscriptions of every client.
    Subscriptions {
        #[command(subcommand)]
        command: SubscriptionsCmd,
    },
    /// MQTT listeners.
    Listeners,
    /// Gateways: list, lookup, load, unload, start, stop.
    Gateway {
        #[command(subcommand)]
        command: GatewayCmd,
    },
    /// The registered gateways.
    #[command(name = "gateway-registry")]
    GatewayRegistry {
        #[command(subcommand)]
        command: RegistryCmd,
    },
    /// A gateway's clients.
    #[command(name = "gateway-clients")]
    GatewayClients {
        #[command(subcommand)]
        command: GatewayClientsCmd,
    },
    /// A gateway's counters.
    #[command(name = "gateway-metrics")]
    GatewayMetrics {
        /// Gateway name.
        name: String,
    },
    /// Read the config file again and apply it.
    Reload,
}

/// `clients …`.
#[derive(Subcommand, Debug)]
pub enum ClientsCmd {
    /// Every connected MQTT client.
    List,
    /// One client.
    Show {
        /// Client id.
        clientid: String,
    },
    /// Disconnect a client.
    Kick {
        /// Client id.
        clientid: String,
    },
}

/// `subscriptions …`.
#[derive(Subcommand, Debug)]
pub enum SubscriptionsCmd {
    /// Every subscription.
    List,
}

/// `gateway …`.
#[derive(Subcommand, Debug)]
pub enum GatewayCmd {
    /// List all gateways.
    List,
    /// A gateway's details.
    Lookup {
        /// Gateway name.
        name: String,
    },
    /// Load a gateway with a JSON config.
    Load {
        /// Gateway name.
        name: String,
        /// Its config, JSON.
        conf: String,
    },
    /// Unload a gateway.
    Unload {
        /// Gateway name.
        name: String,
    },
    /// Stop a gateway.
    Stop {
        /// Gateway name.
        name: String,
    },
    /// Start a gateway.
    Start {
        /// Gateway name.
        name: String,
    },
}

/// `gateway-registry …`.
#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// List all registered gateways.
    List,
}

/// `gateway-clients …`.
#[derive(Subcommand, Debug)]
pub enum GatewayClientsCmd {
    /// List all clients of a gateway.
    List {
        /// Gateway name.
        name: String,
    },
    /// One client of a gateway.
    Lookup {
        /// Gateway name.
        name: String,
        /// Client id.
        clientid: String,
    },
    /// Disconnect a client of a gateway.
    Kick {
        /// Gateway name.
        name: String,
        /// Client id.
        clientid: String,
    },
}

/// Run a command, printing to stdout. An error (the API unreachable, refused
/// credentials) makes the command fail.
pub fn run(args: CtlArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(args, &mut out)
}

/// Run a command, printing to `out`.
pub fn run_to(args: CtlArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let auth = match (&args.key, &args.secret) {
        (Some(k), Some(s)) => Some((k.as_str(), s.as_str())),
        (None, None) => None,
        _ => bail!("--key and --secret go together"),
    };
    let api = Api::new(&args.url, auth)?;
    let ctx = Ctx {
        api,
        json: args.json,
    };
    ctx.run(args.command, out)
}

struct Ctx {
    api: Api,
    json: bool,
}

/// A path segment, percent-encoded.
fn seg(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fail on a refused call (credentials, server errors); pass other answers on.
fn checked(r: Response) -> anyhow::Result<Response> {
    match r.status {
        401 | 403 => bail!(
            "the API refused the credentials ({}): {}",
            r.status,
            r.message()
        ),
        500..=599 => bail!("the API failed ({}): {}", r.status, r.message()),
        _ => Ok(r),
    }
}

/// `ms` of an RFC 3339 field (0 when absent).
fn ms(v: &Value) -> u64 {
    v.as_str().and_then(parse_rfc3339).unwrap_or(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "undefined".into(),
        other => other.to_string(),
    }
}

/// Rows as a table with a header, columns padded to their widest cell.
fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    Ok(())
}

impl Ctx {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Response> {
        checked(self.api.call(method, path, body)?)
    }

    /// Every item of a paged list.
    fn all_pages(&self, path: &str) -> anyhow::Result<Option<Vec<Value>>> {
        let mut all = Vec::new();
        for page in 1.. {
            let sep = if path.contains('?') { '&' } else { '?' };
            let r = self.call("GET", &format!("{path}{sep}page={page}&limit=1000"), None)?;
            if r.status != 200 {
                return Ok(None);
            }
            let v = r.json()?;
            all.extend(v["data"].as_array().cloned().unwrap_or_default());
            if v["meta"]["hasnext"] != Value::Bool(true) {
                break;
            }
        }
        Ok(Some(all))
    }

    fn print_json(&self, out: &mut dyn Write, v: &Value) -> anyhow::Result<()> {
        writeln!(out, "{}", serde_json::to_string_pretty(v)?)?;
        Ok(())
    }

    fn run(&self, command: Ctl, out: &mut dyn Write) -> anyhow::Result<()> {
        match command {
            Ctl::Status => {
                let r = self.call("GET", "/status", None)?;
                write!(out, "{}", String::from_utf8_lossy(&r.body))?;
            }
            Ctl::Clients { command } => self.clients(command, out)?,
            Ctl::Subscriptions {
                command: SubscriptionsCmd::List,
            } => {
                let all = self.all_pages("/subscriptions")?.unwrap_or_default();
                if self.json {
                    return self.print_json(out, &Value::Array(all));
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| vec![text(&s["clientid"]), text(&s["topic"]), text(&s["qos"])])
                    .collect();
                table(out, &["CLIENTID", "TOPIC", "QOS"], &rows)?;
            }
            Ctl::Listeners => {
                let v = self.call("GET", "/listeners", None)?.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                let rows: Vec<Vec<String>> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        vec![
                            text(&l["id"]),
                            text(&l["bind"]),
                            text(&l["running"]),
                            format!(
                                "{}/{}",
                                text(&l["current_connections"]),
                                text(&l["max_connections"])
                            ),
                        ]
                    })
                    .collect();
                table(out, &["ID", "BIND", "RUNNING", "CONNECTIONS"], &rows)?;
            }
            Ctl::Gateway { command } => self.gateway(command, out)?,
            Ctl::GatewayRegistry {
                command: RegistryCmd::List,
            } => {
                let v = self.call("GET", "/gateway_registry", None)?.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                for g in v.as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "Registered Name: {}, Callback Module: {}",
                        text(&g["name"]),
                        text(&g["module"])
                    )?;
                }
            }
            Ctl::GatewayClients { command } => self.gateway_clients(command, out)?,
            Ctl::GatewayMetrics { name } => {
                let r = self.call("GET", &format!("/gateways/{}/metrics", seg(&name)), None)?;
                if r.status != 200 {
                    writeln!(out, "Bad Gateway Name.")?;
                    return Ok(());
                }
                let v = r.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                let mut all: Vec<(&String, &Value)> = v.as_object().into_iter().flatten().collect();
                all.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in all {
                    writeln!(out, "{k:<30}: {}", text(v))?;
                }
            }
            Ctl::Reload => {
                let r = self.call("POST", "/configs/reload", None)?;
                if r.status != 200 {
                    bail!("reload: {}", r.message());
                }
                let v = r.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                writeln!(out, "ok")?;
                for section in v["applied"].as_array().into_iter().flatten() {
                    writeln!(out, "changed, applied: {}", text(section))?;
                }
                for section in v["restart_needed"].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "changed, applied at the next restart: {}",
                        text(section)
                    )?;
                }
            }
        }
        Ok(())
    }

    fn clients(&self, command: ClientsCmd, out: &mut dyn Write) -> anyhow::Result<()> {
        match command {
            ClientsCmd::List => {
                let all = self.all_pages("/clients")?.unwrap_or_default();
                if self.json {
                    return self.print_json(out, &Value::Array(all));
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|c| {
                        vec![
                            text(&c["clientid"]),
                            text(&c["username"]),
                            format!("{}:{}", text(&c["ip_address"]), text(&c["port"])),
                            format!("{} {}", text(&c["proto_name"]), text(&c["proto_ver"])),
                            text(&c["connected_at"]),
                        ]
                    })
                    .collect();
                table(
                    out,
                    &["CLIENTID", "USERNAME", "PEER", "PROTOCOL", "CONNECTED_AT"],
                    &rows,
                )?;
            }
            ClientsCmd::Show { clientid } => {
                let r = self.call("GET", &format!("/clients/{}", seg(&clientid)), None)?;
                if r.status == 404 {
                    writeln!(out, "Not Found.")?;
                    return Ok(());
                }
                let v = r.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                for (k, v) in v.as_object().into_iter().flatten() {
                    writeln!(out, "{k}: {}", text(v))?;
                }
            }
            ClientsCmd::Kick { clientid } => {
                let r = self.call("DELETE", &format!("/clients/{}", seg(&clientid)), None)?;
                writeln!(out, "{}", if r.status == 204 { "ok" } else { "Not Found." })?;
            }
        }
        Ok(())
    }

    fn gateway(&self, command: GatewayCmd, out: &mut dyn Write) -> anyhow::Result<()> {
        match command {
            GatewayCmd::List => {
                let v = self.call("GET", "/gateways", None)?.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                for g in v.as_array().into_iter().flatten() {
                    let name = text(&g["name"]);
                    match g["status"].as_str() {
                        Some("running") => writeln!(
                            out,
                            "Gateway(name={name}, status=running, clients={}, started_at={})",
                            text(&g["current_connections"]),
                            text(&g["started_at"])
                        )?,
                        Some("stopped") => writeln!(
                            out,
                            "Gateway(name={name}, status=stopped, stopped_at={})",
                            text(&g["stopped_at"])
                        )?,
                        _ => writeln!(out, "Gateway(name={name}, status=unloaded)")?,
                    }
                }
            }
            GatewayCmd::Lookup { name } => {
                let r = self.call("GET", &format!("/gateways/{}", seg(&name)), None)?;
                if r.status != 200 {
                    writeln!(out, "undefined")?;
                    return Ok(());
                }
                let v = r.json()?;
                if self.json {
                    return self.print_json(out, &v);
                }
                writeln!(out, "name: {}", text(&v["name"]))?;
                writeln!(out, "status: {}", text(&v["status"]))?;
                if v["status"] != "unloaded" {
                    writeln!(out, "created_at: {}", text(&v["created_at"]))?;
                    for key in ["started_at", "stopped_at"] {
                        if v.get(key).is_some() {
                            writeln!(out, "{key}: {}", text(&v[key]))?;
                        }
                    }
                    let mut config = v.clone();
                    if let Some(obj) = config.as_object_mut() {
                        for key in [
                            "name",
                            "status",
                            "created_at",
                            "started_at",
                            "stopped_at",
                            "current_connections",
                        ] {
                            obj.remove(key);
                        }
                    }
                    writeln!(out, "config: {config}")?;
                }
            }
            GatewayCmd::Load { name, conf } => {
                let body: Value = serde_json::from_str(&conf)
                    .with_context(|| format!("the config of {name} is not JSON"))?;
                let r = self.call("GET", &format!("/gateways/{}", seg(&name)), None)?;
                if r.status != 200 {
                    writeln!(out, "Error: {}", r.message())?;
                    return Ok(());
                }
                if r.json()?["status"] != "unloaded" {
                    writeln!(out, "Error: The {name} gateway already loaded")?;
                    return Ok(());
                }
                let r = self.call("PUT", &format!("/gateways/{}", seg(&name)), Some(&body))?;
                self.ok_or_error(out, &r)?;
            }
            GatewayCmd::Unload { name } => {
                let r = self.call("DELETE", &format!("/gateways/{}", seg(&name)), None)?;
                self.ok_or_error(out, &r)?;
            }
            GatewayCmd::Stop { name } => self.enable(out, &name, false)?,
            GatewayCmd::Start { name } => self.enable(out, &name, true)?,
        }
        Ok(())
    }

    /// `gateway start|stop`: `ok` whether or not it was already so, as EMQX.
    fn enable(&self, out: &mut dyn Write, name: &str, enable: bool) -> anyhow::Result<()> {
        let r = self.call(
            "PUT",
            &format!("/gateways/{}/enable/{enable}", seg(name)),
            None,
        )?;
        self.ok_or_error(out, &r)
    }

    fn ok_or_error(&self, out: &mut dyn Write, r: &Response) -> anyhow::Result<()> {
        if (200..300).contains(&r.status) {
            writeln!(out, "ok")?;
        } else {
            writeln!(out, "Error: {}", r.message())?;
        }
        Ok(())
    }

    fn gateway_clients(
        &self,
        command: GatewayClientsCmd,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        match command {
            GatewayClientsCmd::List { name } => {
                let Some(all) = self.all_pages(&format!("/gateways/{}/clients", seg(&name)))?
                else {
                    writeln!(out, "Bad Gateway Name.")?;
                    return Ok(());
                };
                if self.json {
                    return self.print_json(out, &Value::Array(all));
                }
                for c in &all {
                    writeln!(out, "{}", client_line(c))?;
                }
            }
            GatewayClientsCmd::Lookup { name, clientid } => {
                let r = self.call(
                    "GET",
                    &format!("/gateways/{}/clients/{}", seg(&name), seg(&clientid)),
                    None,
                )?;
                match r.status {
                    200 => {
                        let v = r.json()?;
                        if self.json {
                            return self.print_json(out, &v);
                        }
                        writeln!(out, "{}", client_line(&v))?;
                    }
                    404 if r.message() == "Client not found" => writeln!(out, "Not Found.")?,
                    _ => writeln!(out, "Bad Gateway Name.")?,
                }
            }
            GatewayClientsCmd::Kick { name, clientid } => {
                let r = self.call(
                    "DELETE",
                    &format!("/gateways/{}/clients/{}", seg(&name), seg(&clientid)),
                    None,
                )?;
                writeln!(out, "{}", if r.status == 204 { "ok" } else { "Not Found." })?;
            }
        }
        Ok(())
    }
}

/// EMQX's one-line client: `Client(<id>, username=…, peername=…, …)`.
fn client_line(c: &Value) -> String {
    format!(
        "Client({}, username={}, peername={}:{}, clean_start={}, keepalive={}, subscriptions={}, delivered_msgs={}, connected={}, created_at={}, connected_at={})",
        text(&c["clientid"]),
        text(&c["username"]),
        text(&c["ip_address"]),
        text(&c["port"]),
        text(&c["clean_start"]),
        text(&c["keepalive"]),
        text(&c["subscriptions_cnt"]),
        text(&c["send_msg"]),
        text(&c["connected"]),
        ms(&c["created_at"]),
        ms(&c["connected_at"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(seg("plain-id_1.x~"), "plain-id_1.x~");
    }

    #[test]
    fn tables_pad_to_the_widest_cell() {
        let mut out = Vec::new();
        table(&mut out, &["A", "BB"], &[vec!["long".into(), "x".into()]]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A     BB\nlong  x\n");
    }

    #[test]
    fn a_client_line_is_emqx_s() {
        let c = json!({"clientid": "c1", "username": null, "ip_address": "127.0.0.1", "port": 5,
            "clean_start": true, "keepalive": 10, "subscriptions_cnt": 2, "send_msg": 3,
            "connected": true, "created_at": "1970-01-01T00:00:01.000+00:00",
            "connected_at": "1970-01-01T00:00:02.000+00:00"});
        assert_eq!(
            client_line(&c),
            "Client(c1, username=undefined, peername=127.0.0.1:5, clean_start=true, keepalive=10, subscriptions=2, delivered_msgs=3, connected=true, created_at=1000, connected_at=2000)"
        );
    }
}
