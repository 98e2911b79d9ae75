//! `junction bench`: an MQTT load generator modelled on emqtt-bench.
//!
//! `conn` holds idle connections, `pub` publishes, `sub` subscribes and measures latency,
//! and `pubsub` runs subscribers and publishers in one process with an exact expected
//! delivery count, so loss and duplicates can be reported. Each mode prints a progress line
//! a second on stderr and one JSON object on stdout at the end; every mode stops by itself
//! (connect deadline, `--duration`, `--limit`, `--expect`, `--drain`).
//!
//! The client is a tokio `TcpStream` with Junction's MQTT codec: each connection batches
//! what it has to write into one buffer and writes it with one syscall, and reads into a
//! large buffer, so the load tool costs far less CPU than the broker it drives. Latency is
//! measured from a send timestamp (wall clock, ns) carried in the first 16 payload bytes.
//! With `--broker-pid`, the broker's CPU time (`/proc/<pid>/stat`) and RSS
//! (`/proc/<pid>/status`) are read at the start and end of the measured phase.

mod client;
mod coap;
mod flood;
mod gw;
mod histogram;
mod lwm2m;
mod stats;
mod workload;

use anyhow::{bail, Context};
use client::{PublishTemplate, Target};
use gw::Proto;
use junction_codec_mqtt::{ProtocolVersion, QoS};
use serde_json::{json, Value};
use stats::{filter_matches, own_cpu_seconds, render, CpuTime, Probe, Progress, Shared};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use workload::{Pacing, PubJob};

/// Arguments of `junction bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to run (boxed: the options are large and the binary's command enum is not).
    #[command(subcommand)]
    pub mode: Box<Mode>,
}

/// The load tool's modes.
#[derive(clap::Subcommand, Debug)]
pub enum Mode {
    /// Open connections and hold them idle for --duration; report the connect rate and,
    /// with --broker-pid, the broker's RSS per connection.
    #[command(disable_help_flag = true)]
    Conn(ConnArgs),
    /// Publish from --count clients.
    #[command(disable_help_flag = true)]
    Pub(PubArgs),
    /// Subscribe from --count clients and measure end-to-end latency.
    #[command(disable_help_flag = true)]
    Sub(SubArgs),
    /// Subscribers and publishers in one process, with loss and duplicate counts.
    #[command(disable_help_flag = true)]
    Pubsub(PubSubArgs),
    /// MQTT-SN CONNECT datagrams from many source addresses as fast as possible, at a UDP
    /// listener that discards them; reports the broker's CPU per datagram.
    #[command(disable_help_flag = true)]
    Flood(flood::FloodArgs),
    /// LwM2M REGISTERs from many devices; reports registrations per second and, with
    /// --broker-pid, the broker's RSS per registered device.
    #[command(disable_help_flag = true)]
    Lwm2m(lwm2m::Lwm2mArgs),
}

/// Options every mode takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Milliseconds between two connection starts (0: as fast as --connect-concurrency
    /// allows).
    #[arg(short = 'i', long, default_value_t = 0)]
    pub interval: u64,
    /// CONNECT handshakes in flight at most.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Seconds allowed for all connections to be set up; the run goes on with those that
    /// made it.
    #[arg(long, default_value_t = 120.0)]
    pub connect_deadline: f64,
    /// MQTT protocol version: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(short = 'V', long = "version", default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub protocol: u8,
    /// QoS of publishes and subscriptions.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Keep alive, seconds (0: off).
    #[arg(short = 'k', long, default_value_t = 300)]
    pub keepalive: u16,
    /// Client id prefix: ids are `<prefix>_<n>` (pubsub: `<prefix>_pub_<n>`,
    /// `<prefix>_sub_<n>`). Default: the mode's name.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Seconds to run once connected (publishing, receiving or holding idle).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    pub password: Option<String>,
    /// Pid of the broker, to report its CPU time and RSS (Linux /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Clock ticks per second of /proc CPU times (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Scenario name written in the JSON result. Default: the mode's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Worker threads of the load tool (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// `junction bench conn`.
#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    #[command(flatten)]
    common: Common,
    /// Number of connections.
    #[arg(short = 'c', long, default_value_t = 1)]
    count: usize,
}

/// What publishers send.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishOptions {
    /// Topic pattern: `%i` is the client's number, `%c` its client id.
    #[arg(short = 't', long)]
    topic: String,
    /// Payload size in bytes (at least 16: send time and sequence number).
    #[arg(short = 's', long, default_value_t = 256)]
    size: usize,
    /// Milliseconds between two messages of one client (0: as fast as possible).
    /// Ignored when --rate is given.
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000)]
    interval_of_msg: u64,
    /// Target total messages per second across all publishers (0: use -I).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Total messages to publish across all publishers (0: until --duration).
    #[arg(short = 'L', long, default_value_t = 0)]
    limit: u64,
    /// QoS 1/2 messages in flight per publisher at most.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    inflight: u64,
}

/// `junction bench pub`.
#[derive(clap::Args, Debug)]
pub struct PubArgs {
    #[command(flatten)]
    common: Common,
    /// Number of publishers.
    #[arg(short = 'c', long, default_value_t = 1)]
    count: usize,
    #[command(flatten)]
    publish: PublishOptions,
}

/// `junction bench sub`.
#[derive(clap::Args, Debug)]
pub struct SubArgs {
    #[command(flatten)]
    common: Common,
    /// Number of subscribers.
    #[arg(short = 'c', long, default_value_t = 1)]
    count: usize,
    /// Topic filter pattern: `%i` is the client's number, `%c` its client id.
    #[arg(short = 't', long)]
    topic: String,
    /// Stop once this many messages have been received in total (0: at --duration).
    #[arg(long, default_value_t = 0)]
    expect: u64,
}

/// `junction bench pubsub`.
#[derive(clap::Args, Debug)]
pub struct PubSubArgs {
    #[command(flatten)]
    common: Common,
    /// Number of publishers.
    #[arg(long, default_value_t = 1)]
    pubs: usize,
    /// Number of subscribers.
    #[arg(long, default_value_t = 1)]
    subs: usize,
    /// Protocol of publishers and subscribers: mqtt, stomp (TCP), mqttsn or coap (UDP);
    /// the gateway protocols support QoS 0 only, CoAP QoS 0 and 1.
    #[arg(long, value_enum, default_value_t = Proto::Mqtt)]
    proto: Proto,
    /// Protocol of the publishers, if not --proto (e.g. MQTT publishers to CoAP
    /// observers).
    #[arg(long, value_enum)]
    pub_proto: Option<Proto>,
    /// Port of the publishers' listener, if not --port (with --pub-proto).
    #[arg(long)]
    pub_port: Option<u16>,
    /// Subscribers' topic filter pattern (`%i`, `%c`); default: the publish topic pattern.
    #[arg(long)]
    sub_topic: Option<String>,
    #[command(flatten)]
    publish: PublishOptions,
    /// After publishing ends, seconds to wait without any new message before declaring
    /// the missing ones lost.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Subscribers keep persistent sessions with this expiry interval, seconds (5.0:
    /// Session Expiry Interval; 3.x: clean_session = false).
    #[arg(long)]
    sub_session_expiry: Option<u32>,
}

/// Run the load tool.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The datagram modes run on this thread.
    let mode = match *args.mode {
        Mode::Flood(a) => return print_result(&flood::flood(a)?),
        Mode::Lwm2m(a) => return print_result(&lwm2m::lwm2m(a)?),
        other => other,
    };
    let common = match &mode {
        Mode::Conn(a) => &a.common,
        Mode::Pub(a) => &a.common,
        Mode::Sub(a) => &a.common,
        Mode::Pubsub(a) => &a.common,
        Mode::Flood(_) | Mode::Lwm2m(_) => unreachable!("run above"),
    };
    let threads = common
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        match mode {
            Mode::Conn(a) => conn(a).await,
            Mode::Pub(a) => publish(a).await,
            Mode::Sub(a) => subscribe(a).await,
            Mode::Pubsub(a) => pubsub(a).await,
            Mode::Flood(_) | Mode::Lwm2m(_) => unreachable!("run above"),
        }
    })?;
    // Connection tasks were aborted; don't wait for their sockets to close.
    runtime.shutdown_background();
    print_result(&result)
}

/// The one JSON line every mode ends with.
fn print_result(result: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")?;
    out.flush()?;
    Ok(())
}

/// Settings derived from [`Common`].
#[derive(Clone)]
struct Setup {
    target: Target,
    qos: QoS,
    pacing: Pacing,
    connect_deadline: Duration,
    duration: Duration,
    probe: Option<Probe>,
    clk_tck: u64,
    proto: Proto,
}

impl Setup {
    fn new(c: &Common, connections: usize) -> anyhow::Result<Setup> {
        let addr: SocketAddr = (c.host.as_str(), c.port)
            .to_socket_addrs()
            .with_context(|| format!("resolve {}", c.host))?
            .next()
            .with_context(|| format!("{} has no address", c.host))?;
        if let Some(limit) = stats::open_files_limit() {
            if connections as u64 + 64 > limit {
                eprintln!(
                    "bench: warning: {connections} connections but the open files limit is \
                     {limit}; raise it with `ulimit -n`"
                );
            }
        }
        let version = match c.protocol {
            3 => ProtocolVersion::V3_1,
            4 => ProtocolVersion::V3_1_1,
            _ => ProtocolVersion::V5,
        };
        Ok(Setup {
            target: Target {
                addr,
                version,
                keepalive: c.keepalive,
                username: c.username.clone(),
                password: c.password.clone(),
                session_expiry: None,
            },
            qos: QoS::from_u8(c.qos).unwrap_or(QoS::AtMostOnce),
            pacing: Pacing {
                interval: Duration::from_millis(c.interval),
                concurrency: c.connect_concurrency,
            },
            connect_deadline: secs(c.connect_deadline),
            duration: secs(c.duration),
            probe: c.broker_pid.map(|pid| Probe::new(pid, c.clk_tck)),
            clk_tck: c.clk_tck,
            proto: Proto::Mqtt,
        })
    }

    fn cpu(&self) -> Option<CpuTime> {
        self.probe.and_then(|p| p.cpu_seconds())
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Wait until `done()` or `deadline`, checking every 20 ms.
async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connect `count` clients (bounded by the setup's pacing and connect deadline) and wait
/// until each is ready or failed. Returns the seconds it took.
async fn open_all<F, Fut>(
    setup: &Setup,
    shared: &Arc<Shared>,
    handles: &mut Vec<JoinHandle<()>>,
    count: usize,
    make: F,
) -> f64
where
    F: FnMut(usize, tokio::sync::OwnedSemaphorePermit) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let began = Instant::now();
    let deadline = began + setup.connect_deadline;
    let settled_before = Shared::get(&shared.ready) + Shared::get(&shared.failed);
    let spawn = workload::spawn_clients(handles, count, setup.pacing, make);
    let spawned_in_time = tokio::time::timeout_at(deadline, spawn).await.is_ok();
    wait_until(deadline, || {
        Shared::get(&shared.ready) + Shared::get(&shared.failed) - settled_before >= count as u64
    })
    .await;
    let settled = Shared::get(&shared.ready) + Shared::get(&shared.failed) - settled_before;
    if !spawned_in_time || settled < count as u64 {
        shared.error(format!(
            "only {settled} of {count} connections were set up within the connect deadline"
        ));
    }
    began.elapsed().as_secs_f64()
}

/// Connect one client and count the outcome; `None` if it failed.
async fn connect_counted(
    target: &Target,
    client_id: &str,
    read_chunk: usize,
    shared: &Shared,
) -> Option<client::Client> {
    match client::Client::connect(target, client_id, read_chunk).await {
        Ok(c) => {
            Shared::add(&shared.connected, 1);
            Some(c)
        }
        Err(e) => {
            Shared::add(&shared.failed, 1);
            shared.error(format!("{client_id}: {e:#}"));
            None
        }
    }
}

fn abort_all(handles: &[JoinHandle<()>]) {
    for h in handles {
        h.abort();
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Latency quantiles in microseconds.
fn latency_json(shared: &Shared) -> Value {
    let h = &shared.latency;
    let us = |ns: u64| round(ns as f64 / 1000.0, 1);
    json!({
        "p50_us": us(h.quantile(0.50)),
        "p90_us": us(h.quantile(0.90)),
        "p99_us": us(h.quantile(0.99)),
        "max_us": us(h.max()),
        "latency_samples": h.count(),
    })
}

/// Add `extra`'s fields to `base`.
fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// CPU used by the broker and by the load tool between two readings.
fn cpu_json(
    setup: &Setup,
    broker_before: Option<CpuTime>,
    own_before: Option<f64>,
    delivered: u64,
) -> Value {
    let broker = broker_before
        .zip(setup.cpu())
        .map(|(before, after)| after.since(before));
    let own = own_before
        .zip(own_cpu_seconds(setup.clk_tck))
        .map(|(before, after)| after - before);
    let per_cpu = broker
        .map(|b| b.total())
        .filter(|&s| s > 0.0)
        .map(|s| round(delivered as f64 / s, 0));
    json!({
        "broker_cpu_s": broker.map(|b| round(b.total(), 2)),
        "broker_user_s": broker.map(|b| round(b.user, 2)),
        "broker_sys_s": broker.map(|b| round(b.system, 2)),
        "client_cpu_s": own.map(|s| round(s, 2)),
        "msgs_per_broker_cpu_s": per_cpu,
    })
}

fn conn_json(shared: &Shared) -> Value {
    json!({
        "connected": Shared::get(&shared.connected),
        "connect_failures": Shared::get(&shared.failed),
        "disconnects": Shared::get(&shared.disconnected),
        "error": shared.first_error(),
    })
}

async fn conn(args: ConnArgs) -> anyhow::Result<Value> {
    let c = &args.common;
    let setup = Setup::new(c, args.count)?;
    let prefix = c.prefix.clone().unwrap_or_else(|| "conn".into());
    let shared = Arc::new(Shared::default());
    let rss_before = setup.probe.and_then(|p| p.rss_kib());
    let cpu_before = setup.cpu();
    let _progress = Progress::start("conn".into(), shared.clone());
    let mut handles = Vec::with_capacity(args.count);
    let connect_secs = open_all(&setup, &shared, &mut handles, args.count, |n, permit| {
        let target = setup.target.clone();
        let shared = shared.clone();
        let id = format!("{prefix}_{n}");
        async move {
            // A small buffer: idle connections only ever read a PINGRESP.
            let client = connect_counted(&target, &id, 256, &shared).await;
            drop(permit);
            if let Some(client) = client {
                Shared::add(&shared.ready, 1);
                workload::idle(client, shared, target.keepalive).await;
            }
        }
    })
    .await;
    let connected = Shared::get(&shared.connected);
    eprintln!(
        "conn: {connected} connected in {connect_secs:.1} s; holding for {:.0} s",
        setup.duration.as_secs_f64()
    );
    tokio::time::sleep(setup.duration).await;
    let rss_after = setup.probe.and_then(|p| p.rss_kib());
    let cpu = cpu_json(&setup, cpu_before, None, 0);
    abort_all(&handles);
    let per_conn = rss_before
        .zip(rss_after)
        .filter(|_| connected > 0)
        .map(|(b, a)| round((a as f64 - b as f64) / connected as f64, 2));
    let result = json!({
        "scenario": c.name.clone().unwrap_or_else(|| "conn".into()),
        "mode": "conn",
        "count": args.count,
        "connect_s": round(connect_secs, 2),
        "connects_per_sec": round(connected as f64 / connect_secs.max(1e-9), 0),
        "held_s": setup.duration.as_secs_f64(),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_kib_per_conn": per_conn,
        "broker_cpu_s": cpu["broker_cpu_s"],
    });
    Ok(merge(result, conn_json(&shared)))
}

/// Per-publisher settings shared by `pub` and `pubsub`.
struct PubPlan {
    options: PublishOptions,
    count: usize,
    prefix: String,
    /// Subscribers that match each publisher's topic (empty: no subscribers here).
    fanout: Vec<u64>,
}

impl PubPlan {
    fn period(&self) -> Option<Duration> {
        let o = &self.options;
        if o.rate > 0.0 {
            Some(Duration::from_secs_f64(self.count as f64 / o.rate))
        } else if o.interval_of_msg > 0 {
            Some(Duration::from_millis(o.interval_of_msg))
        } else {
            None
        }
    }

    /// Messages publisher `n` (1-based) sends at most: `--limit` spread evenly.
    fn limit(&self, n: usize) -> u64 {
        let total = self.options.limit;
        if total == 0 {
            return u64::MAX;
        }
        let count = self.count as u64;
        total / count + u64::from(((n - 1) as u64) < total % count)
    }

    fn topic(&self, n: usize) -> (String, String) {
        let id = format!("{}_{n}", self.prefix);
        (render(&self.options.topic, n, &id), id)
    }
}

/// Connect the publishers of `plan`; each waits for the start signal, then publishes.
async fn start_publishers(
    setup: &Setup,
    plan: &PubPlan,
    shared: &Arc<Shared>,
    handles: &mut Vec<JoinHandle<()>>,
    go: &tokio::sync::watch::Sender<Option<(Instant, Instant)>>,
    drain: Duration,
) -> anyhow::Result<f64> {
    if setup.proto != Proto::Mqtt {
        return Ok(start_gw_publishers(setup, plan, shared, handles, go, drain).await);
    }
    let period = plan.period();
    let mut jobs = Vec::with_capacity(plan.count);
    for n in 1..=plan.count {
        let (topic, id) = plan.topic(n);
        let template =
            PublishTemplate::new(setup.target.version, &topic, setup.qos, plan.options.size)?;
        let offset = period.map_or(Duration::ZERO, |p| {
            p.mul_f64((n - 1) as f64 / plan.count as f64)
        });
        let job = PubJob {
            number: n as u32,
            template,
            qos: setup.qos,
            period,
            offset,
            limit: plan.limit(n),
            inflight: plan.options.inflight,
            fanout: plan.fanout.get(n - 1).copied().unwrap_or(0),
            keepalive: setup.target.keepalive,
        };
        jobs.push(Some((id, job)));
    }
    let secs = open_all(setup, shared, handles, plan.count, |n, permit| {
        let (id, job) = jobs[n - 1].take().expect("each publisher is spawned once");
        let target = setup.target.clone();
        let shared = shared.clone();
        let mut go = go.subscribe();
        async move {
            let client = connect_counted(&target, &id, workload::SMALL_READ, &shared).await;
            drop(permit);
            if let Some(client) = client {
                Shared::add(&shared.ready, 1);
                let times = go.wait_for(Option::is_some).await.map(|t| *t);
                if let Ok(Some((start, stop_at))) = times {
                    workload::publisher(client, job, start, stop_at, drain, shared.clone()).await;
                }
            }
            Shared::add(&shared.publishers_done, 1);
        }
    })
    .await;
    Ok(secs)
}

async fn publish(args: PubArgs) -> anyhow::Result<Value> {
    let c = &args.common;
    let setup = Setup::new(c, args.count)?;
    let shared = Arc::new(Shared::default());
    let plan = PubPlan {
        options: args.publish.clone(),
        count: args.count,
        prefix: c.prefix.clone().unwrap_or_else(|| "pub".into()),
        fanout: Vec::new(),
    };
    let _progress = Progress::start("pub".into(), shared.clone());
    let mut handles = Vec::new();
    let (go, _) = tokio::sync::watch::channel(None);
    let connect_secs =
        start_publishers(&setup, &plan, &shared, &mut handles, &go, secs(5.0)).await?;
    let (cpu_before, own_before) = (setup.cpu(), own_cpu_seconds(setup.clk_tck));
    let start = Instant::now() + Duration::from_millis(10);
    let stop_at = start + setup.duration;
    go.send_replace(Some((start, stop_at)));
    wait_until(stop_at + secs(10.0), || {
        Shared::get(&shared.publishers_done) >= args.count as u64
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    abort_all(&handles);
    let sent = Shared::get(&shared.sent);
    let result = json!({
        "scenario": c.name.clone().unwrap_or_else(|| "pub".into()),
        "mode": "pub",
        "clients": args.count,
        "qos": c.qos,
        "size": plan.options.size,
        "connect_s": round(connect_secs, 2),
        "elapsed_s": round(elapsed, 3),
        "sent": sent,
        "acked": Shared::get(&shared.acked),
        "msgs_per_sec": round(sent as f64 / elapsed.max(1e-9), 0),
    });
    let result = merge(result, cpu_json(&setup, cpu_before, own_before, sent));
    Ok(merge(result, conn_json(&shared)))
}

/// Connect and subscribe `count` subscribers to `filters[n - 1]`.
async fn start_subscribers(
    setup: &Setup,
    filters: &[(String, String)],
    shared: &Arc<Shared>,
    handles: &mut Vec<JoinHandle<()>>,
) -> f64 {
    if setup.proto != Proto::Mqtt {
        return start_gw_subscribers(setup, filters, shared, handles).await;
    }
    open_all(setup, shared, handles, filters.len(), |n, permit| {
        let (filter, id) = filters[n - 1].clone();
        let target = setup.target.clone();
        let shared = shared.clone();
        let qos = setup.qos;
        async move {
            let Some(mut client) =
                connect_counted(&target, &id, workload::LARGE_READ, &shared).await
            else {
                return;
            };
            if let Err(e) = client.subscribe(&filter, qos).await {
                Shared::add(&shared.failed, 1);
                shared.error(format!("{id}: {e:#}"));
                return;
            }
            drop(permit);
            Shared::add(&shared.subscribed, 1);
            Shared::add(&shared.ready, 1);
            workload::subscriber(client, shared, target.keepalive).await;
        }
    })
    .await
}

/// Connect the gateway-protocol publishers of `plan`; each waits for the start signal.
async fn start_gw_publishers(
    setup: &Setup,
    plan: &PubPlan,
    shared: &Arc<Shared>,
    handles: &mut Vec<JoinHandle<()>>,
    go: &tokio::sync::watch::Sender<Option<(Instant, Instant)>>,
    drain: Duration,
) -> f64 {
    let period = plan.period();
    let mut jobs: Vec<Option<(String, gw::GwJob)>> = (1..=plan.count)
        .map(|n| {
            let (topic, id) = plan.topic(n);
            let offset = period.map_or(Duration::ZERO, |p| {
                p.mul_f64((n - 1) as f64 / plan.count as f64)
            });
            Some((
                id,
                gw::GwJob {
                    number: n as u32,
                    topic,
                    size: plan.options.size,
                    period,
                    offset,
                    limit: plan.limit(n),
                    fanout: plan.fanout.get(n - 1).copied().unwrap_or(0),
                    qos: setup.qos.as_u8(),
                    inflight: plan.options.inflight,
                    drain,
                },
            ))
        })
        .collect();
    open_all(setup, shared, handles, plan.count, |n, permit| {
        let (id, job) = jobs[n - 1].take().expect("each publisher is spawned once");
        let (proto, addr, keepalive) = (setup.proto, setup.target.addr, setup.target.keepalive);
        let shared = shared.clone();
        let mut go = go.subscribe();
        async move {
            let client =
                gw::GwClient::open(proto, addr, &id, keepalive, &job.topic, false, job.qos).await;
            drop(permit);
            match client {
                Ok(client) => {
                    Shared::add(&shared.connected, 1);
                    Shared::add(&shared.ready, 1);
                    let times = go.wait_for(Option::is_some).await.map(|t| *t);
                    if let Ok(Some((start, stop_at))) = times {
                        gw::publisher(client, job, start, stop_at, shared.clone()).await;
                    }
                }
                Err(e) => {
                    Shared::add(&shared.failed, 1);
                    shared.error(format!("{id}: {e:#}"));
                }
            }
            Shared::add(&shared.publishers_done, 1);
        }
    })
    .await
}

/// Connect and subscribe gateway-protocol subscribers to `filters[n - 1]`.
async fn start_gw_subscribers(
    setup: &Setup,
    filters: &[(String, String)],
    shared: &Arc<Shared>,
    handles: &mut Vec<JoinHandle<()>>,
) -> f64 {
    open_all(setup, shared, handles, filters.len(), |n, permit| {
        let (filter, id) = filters[n - 1].clone();
        let (proto, addr, keepalive) = (setup.proto, setup.target.addr, setup.target.keepalive);
        let qos = setup.qos.as_u8();
        let shared = shared.clone();
        async move {
            let client = gw::GwClient::open(proto, addr, &id, keepalive, &filter, true, qos).await;
            drop(permit);
            match client {
                Ok(client) => {
                    Shared::add(&shared.connected, 1);
                    Shared::add(&shared.subscribed, 1);
                    Shared::add(&shared.ready, 1);
                    gw::subscriber(client, shared).await;
                }
                Err(e) => {
                    Shared::add(&shared.failed, 1);
                    shared.error(format!("{id}: {e:#}"));
                }
            }
        }
    })
    .await
}

fn receive_json(shared: &Shared, seconds: f64) -> Value {
    let received = Shared::get(&shared.received);
    let duplicates = Shared::get(&shared.duplicates);
    let unique = received - duplicates;
    merge(
        json!({
            "received": received,
            "unique": unique,
            "dup": duplicates,
            "unstamped": Shared::get(&shared.unstamped),
            "msgs_per_sec": round(unique as f64 / seconds.max(1e-9), 0),
            "msgs_per_read": round(
                received as f64 / Shared::get(&shared.receive_reads).max(1) as f64,
                1
            ),
        }),
        latency_json(shared),
    )
}

async fn subscribe(args: SubArgs) -> anyhow::Result<Value> {
    let c = &args.common;
    let setup = Setup::new(c, args.count)?;
    let prefix = c.prefix.clone().unwrap_or_else(|| "sub".into());
    let shared = Arc::new(Shared::default());
    let filters: Vec<(String, String)> = (1..=args.count)
        .map(|n| {
            let id = format!("{prefix}_{n}");
            (render(&args.topic, n, &id), id)
        })
        .collect();
    let _progress = Progress::start("sub".into(), shared.clone());
    let mut handles = Vec::new();
    let connect_secs = start_subscribers(&setup, &filters, &shared, &mut handles).await;
    let (cpu_before, own_before) = (setup.cpu(), own_cpu_seconds(setup.clk_tck));
    let stop_at = Instant::now() + setup.duration;
    wait_until(stop_at, || {
        args.expect > 0 && Shared::get(&shared.received) >= args.expect
    })
    .await;
    abort_all(&handles);
    let first = Shared::get(&shared.first_receive_ns);
    let last = Shared::get(&shared.last_receive_ns);
    let seconds = last.saturating_sub(first) as f64 / 1e9;
    let unique = Shared::get(&shared.received) - Shared::get(&shared.duplicates);
    let result = json!({
        "scenario": c.name.clone().unwrap_or_else(|| "sub".into()),
        "mode": "sub",
        "clients": args.count,
        "qos": c.qos,
        "connect_s": round(connect_secs, 2),
        "elapsed_s": round(seconds, 3),
        "expected": (args.expect > 0).then_some(args.expect),
    });
    let result = merge(result, receive_json(&shared, seconds));
    let result = merge(result, cpu_json(&setup, cpu_before, own_before, unique));
    Ok(merge(result, conn_json(&shared)))
}

async fn pubsub(args: PubSubArgs) -> anyhow::Result<Value> {
    let c = &args.common;
    if args.pubs == 0 {
        bail!("--pubs must be at least 1");
    }
    let mut setup = Setup::new(c, args.pubs + args.subs)?;
    setup.proto = args.proto;
    let mut pub_setup = setup.clone();
    pub_setup.proto = args.pub_proto.unwrap_or(args.proto);
    if let Some(port) = args.pub_port {
        pub_setup.target.addr.set_port(port);
    }
    for proto in [setup.proto, pub_setup.proto] {
        if !proto.supports(c.qos) {
            bail!("--proto {proto:?} does not support QoS {}", c.qos);
        }
    }
    let prefix = c.prefix.clone().unwrap_or_else(|| "pubsub".into());
    let sub_pattern = args
        .sub_topic
        .clone()
        .unwrap_or_else(|| args.publish.topic.clone());
    let filters: Vec<(String, String)> = (1..=args.subs)
        .map(|n| {
            let id = format!("{prefix}_sub_{n}");
            (render(&sub_pattern, n, &id), id)
        })
        .collect();
    let mut plan = PubPlan {
        options: args.publish.clone(),
        count: args.pubs,
        prefix: format!("{prefix}_pub"),
        fanout: Vec::new(),
    };
    plan.fanout = (1..=args.pubs)
        .map(|n| {
            let (topic, _) = plan.topic(n);
            filters
                .iter()
                .filter(|(f, _)| filter_matches(f, &topic))
                .count() as u64
        })
        .collect();
    let label = c.name.clone().unwrap_or_else(|| "pubsub".into());
    let shared = Arc::new(Shared::default());
    let _progress = Progress::start(label.clone(), shared.clone());
    let mut handles = Vec::new();
    let sub_secs = {
        let mut subs = setup.clone();
        subs.target.session_expiry = args.sub_session_expiry;
        start_subscribers(&subs, &filters, &shared, &mut handles).await
    };
    let drain = secs(args.drain);
    let (go, _) = tokio::sync::watch::channel(None);
    let pub_secs = start_publishers(&pub_setup, &plan, &shared, &mut handles, &go, drain).await?;
    eprintln!(
        "{label}: {} subscribers ready in {sub_secs:.1} s, {} publishers in {pub_secs:.1} s",
        Shared::get(&shared.subscribed),
        Shared::get(&shared.ready) - Shared::get(&shared.subscribed),
    );

    let (cpu_before, own_before) = (setup.cpu(), own_cpu_seconds(setup.clk_tck));
    let start = Instant::now() + Duration::from_millis(10);
    let start_ns = client::now_ns() + 10_000_000;
    let stop_at = start + setup.duration;
    go.send_replace(Some((start, stop_at)));
    // Publishing: until every publisher is done (limit reached, acks in) or the duration
    // and the ack drain are over.
    wait_until(stop_at + drain, || {
        Shared::get(&shared.publishers_done) >= args.pubs as u64
    })
    .await;
    // Draining: until every expected delivery arrived, or nothing arrived for --drain.
    let hard_stop = Instant::now() + drain.max(Duration::from_secs(5)) * 6;
    let mut last_count = Shared::get(&shared.received);
    let mut last_progress = Instant::now();
    loop {
        let unique = Shared::get(&shared.received) - Shared::get(&shared.duplicates);
        let now = Instant::now();
        if unique >= Shared::get(&shared.expected) || now >= hard_stop {
            break;
        }
        let received = Shared::get(&shared.received);
        if received != last_count {
            (last_count, last_progress) = (received, now);
        } else if now - last_progress >= drain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Shared::get(&shared.sent);
    let expected = Shared::get(&shared.expected);
    let unique = Shared::get(&shared.received) - Shared::get(&shared.duplicates);
    let cpu = cpu_json(&setup, cpu_before, own_before, unique);
    abort_all(&handles);
    let seconds = Shared::get(&shared.last_receive_ns).saturating_sub(start_ns) as f64 / 1e9;
    let result = json!({
        "scenario": label,
        "mode": "pubsub",
        "proto": format!("{:?}", setup.proto).to_lowercase(),
        "pub_proto": format!("{:?}", pub_setup.proto).to_lowercase(),
        "pubs": args.pubs,
        "subs": args.subs,
        "qos": c.qos,
        "size": plan.options.size,
        "rate_target": (plan.options.rate > 0.0).then_some(plan.options.rate),
        "elapsed_s": round(seconds, 3),
        "sent": sent,
        "acked": Shared::get(&shared.acked),
        "unacked": Shared::get(&shared.unacked),
        "expected": expected,
        "lost": expected.saturating_sub(unique),
        "pub_msgs_per_sec": round(sent as f64 / seconds.max(1e-9), 0),
        "pub_msgs_per_write": round(
            sent as f64 / Shared::get(&shared.publish_writes).max(1) as f64,
            1
        ),
    });
    let result = merge(result, receive_json(&shared, seconds));
    let result = merge(result, cpu);
    Ok(merge(result, conn_json(&shared)))
}
