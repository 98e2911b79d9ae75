//! `junction bench flood`: MQTT-SN CONNECT datagrams as fast as one thread can send them,
//! from many loopback source addresses (127.10.x.y, as a spoofing attacker's would look),
//! at a UDP listener whose peer table is full or rate-limited, so the listener discards
//! them. With --broker-pid, reports the datagrams the broker took per CPU-second.

use super::stats::Probe;
use anyhow::Context;
use junction_codec_mqttsn as sn;
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// Options of `flood`.
#[derive(clap::Args, Debug, Clone)]
pub struct FloodArgs {
    /// Listener host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Listener port (UDP).
    #[arg(short = 'p', long, default_value_t = 1884)]
    pub port: u16,
    /// Datagrams to send.
    #[arg(short = 'L', long, default_value_t = 500_000)]
    pub count: u64,
    /// Distinct source addresses (127.10.x.y) the datagrams come from.
    #[arg(long, default_value_t = 5_000)]
    pub sources: u32,
    /// Stop after this many seconds even if --count is not reached.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Pid of the broker, to report its CPU time.
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

/// Run the flood on this thread and report.
pub fn flood(a: FloodArgs) -> anyhow::Result<Value> {
    let target: SocketAddr = (a.host.as_str(), a.port)
        .to_socket_addrs()?
        .next()
        .context("no address for the listener")?;
    let sources = a.sources.clamp(1, 60_000);
    let sockets: Vec<UdpSocket> = (0..sources)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 10, (i >> 8) as u8, (i & 0xff) as u8);
            UdpSocket::bind((ip, 0)).context("binding a loopback source address")
        })
        .collect::<anyhow::Result<_>>()?;
    let mut datagrams = Vec::with_capacity(sources as usize);
    for i in 0..sources {
        let mut b = bytes::BytesMut::new();
        sn::encode(
            &sn::Message::Connect {
                flags: sn::Flags::default(),
                protocol_id: 1,
                duration: 0,
                client_id: format!("flood-{i}").into(),
            },
            &mut b,
        )?;
        datagrams.push(b);
    }
    let probe = a.broker_pid.map(|pid| Probe::new(pid, a.clk_tck));
    let cpu_before = probe.as_ref().and_then(Probe::cpu_seconds);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.duration);
    let mut sent = 0u64;
    let mut failed = 0u64;
    'send: while sent < a.count {
        for (sock, d) in sockets.iter().zip(&datagrams) {
            match sock.send_to(d, target) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
            if sent >= a.count {
                break 'send;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Let the listener finish reading what is queued before the CPU is read.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = probe
        .as_ref()
        .and_then(Probe::cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after.since(before));
    let broker_cpu = cpu.map(|c| c.total());
    Ok(json!({
        "scenario": a.name.unwrap_or_else(|| "flood".into()),
        "sent": sent,
        "send_failures": failed,
        "sources": sources,
        "seconds": elapsed,
        "sent_per_sec": sent as f64 / elapsed.max(1e-9),
        "broker_cpu_s": broker_cpu,
        "broker_user_s": cpu.map(|c| c.user),
        "broker_sys_s": cpu.map(|c| c.system),
        "datagrams_per_broker_cpu_s": broker_cpu.filter(|c| *c > 0.0).map(|c| sent as f64 / c),
    }))
}
