//! `junction bench lwm2m`: --count LwM2M devices, each a UDP socket of its own loopback
//! source address (127.20.x.y), REGISTER (`POST /rd?ep=…&lt=…`) with --window in flight;
//! reports registrations per second and, with --broker-pid, the broker's CPU per
//! registration and its RSS per registered device once they are all held.

use super::stats::Probe;
use anyhow::Context;
use bytes::{Bytes, BytesMut};
use junction_codec_coap::{decode, encode, option, Code, Message, MessageType, Token};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Options of `lwm2m`.
#[derive(clap::Args, Debug, Clone)]
pub struct Lwm2mArgs {
    /// Gateway host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Gateway port (UDP).
    #[arg(short = 'p', long, default_value_t = 5783)]
    pub port: u16,
    /// Devices to register.
    #[arg(short = 'c', long, default_value_t = 1_000)]
    pub count: u32,
    /// REGISTERs waiting for their answer at once.
    #[arg(long, default_value_t = 200)]
    pub window: usize,
    /// Registration lifetime, seconds.
    #[arg(long, default_value_t = 3600)]
    pub lifetime: u32,
    /// Seconds to hold the registrations before the RSS is read.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Pid of the broker, to report its CPU time and RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Scenario name written in the JSON result.
    #[arg(long)]
    pub name: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

fn register(n: u32, lifetime: u32) -> anyhow::Result<Bytes> {
    let mut m = Message::new(MessageType::Confirmable, Code::POST, (n & 0xffff) as u16)
        .with_token(Token::from_u64(u64::from(n)))
        .with_payload(Bytes::from_static(b"</1/0>,</3/0>,</4/0>"));
    m.options.push(option::URI_PATH, Bytes::from_static(b"rd"));
    m.push_uri_query("ep", &format!("bench-{n}"));
    m.push_uri_query("lt", &lifetime.to_string());
    m.push_uri_query("lwm2m", "1.1");
    m.options.push_uint(option::CONTENT_FORMAT, 40);
    let mut b = BytesMut::new();
    encode(&m, &mut b)?;
    Ok(b.freeze())
}

/// Register every device and report.
pub fn lwm2m(a: Lwm2mArgs) -> anyhow::Result<Value> {
    let target: SocketAddr = (a.host.as_str(), a.port)
        .to_socket_addrs()?
        .next()
        .context("no address for the gateway")?;
    let count = a.count.clamp(1, 60_000);
    let sockets: Vec<UdpSocket> = (0..count)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 20, (i >> 8) as u8, (i & 0xff) as u8);
            let s = UdpSocket::bind((ip, 0)).context("binding a loopback source address")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            Ok(s)
        })
        .collect::<anyhow::Result<_>>()?;
    let probe = a.broker_pid.map(|pid| Probe::new(pid, a.clk_tck));
    let rss_before = probe.as_ref().and_then(Probe::rss_kib);
    let cpu_before = probe.as_ref().and_then(Probe::cpu_seconds);
    let start = Instant::now();
    let (mut registered, mut failed, mut retransmitted) = (0u64, 0u64, 0u64);
    let mut buf = [0u8; 512];
    for (w, window) in sockets.chunks(a.window.max(1)).enumerate() {
        let base = (w * a.window.max(1)) as u32;
        let datagrams: Vec<Bytes> = (0..window.len() as u32)
            .map(|i| register(base + i, a.lifetime))
            .collect::<anyhow::Result<_>>()?;
        for (s, d) in window.iter().zip(&datagrams) {
            s.send_to(d, target)?;
        }
        for (s, d) in window.iter().zip(&datagrams) {
            let mut answered = false;
            for attempt in 0..3 {
                if attempt > 0 {
                    retransmitted += 1;
                    s.send_to(d, target)?;
                }
                match s.recv(&mut buf) {
                    Ok(n) => {
                        let ok = decode(Bytes::copy_from_slice(&buf[..n]))
                            .is_ok_and(|m| m.code == Code::CREATED);
                        answered = ok;
                        break;
                    }
                    Err(_) => continue,
                }
            }
            if answered {
                registered += 1;
            } else {
                failed += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = probe
        .as_ref()
        .and_then(Probe::cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after.since(before));
    std::thread::sleep(Duration::from_secs_f64(a.hold.max(0.0)));
    let rss_after = probe.as_ref().and_then(Probe::rss_kib);
    let broker_cpu = cpu.map(|c| c.total());
    let per_device = rss_before
        .zip(rss_after)
        .filter(|_| registered > 0)
        .map(|(b, a)| (a as f64 - b as f64) / registered as f64);
    drop(sockets);
    Ok(json!({
        "scenario": a.name.unwrap_or_else(|| "lwm2m-register".into()),
        "devices": count,
        "registered": registered,
        "failed": failed,
        "retransmitted": retransmitted,
        "seconds": elapsed,
        "registrations_per_sec": registered as f64 / elapsed.max(1e-9),
        "broker_cpu_s": broker_cpu,
        "registrations_per_broker_cpu_s": broker_cpu.filter(|c| *c > 0.0).map(|c| registered as f64 / c),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_kib_per_device": per_device,
    }))
}
