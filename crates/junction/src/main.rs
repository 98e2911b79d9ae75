//! The `junction` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use junction::Server;
use junction_config::Config;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "junction",
    version,
    about = "One broker for every IoT protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the broker.
    Start {
        /// Configuration file (HOCON, EMQX keys). Default: etc/junction.conf if it exists.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage a running node through its HTTP API.
    Ctl(junction_ctl::CtlArgs),
    /// Load tool: connect, publish and subscribe against an MQTT broker.
    Bench(junction_bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Start { config } => start(config),
        Command::Ctl(args) => junction_ctl::run(args),
        Command::Bench(args) => junction_bench::run(args),
    }
}

fn start(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config_path.or_else(|| {
        let default = PathBuf::from("etc/junction.conf");
        default.exists().then_some(default)
    });
    let config = Config::load(path.as_deref(), std::env::vars())
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let level = format!("{:?}", config.log.console.level).to_lowercase();
    // `log.console.enable = false` silences the console (RUST_LOG still wins, for debugging).
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| match level.as_str() {
        _ if !config.log.console.enable => "off".into(),
        "debug" => "debug".into(),
        "info" | "notice" => "info".into(),
        "warning" => "warn".into(),
        _ => "error".into(),
    });
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("node.data_dir {}", config.node.data_dir.display()))?;
    // One worker thread runs tokio's single-threaded scheduler. It has no LIFO slot, so a
    // subscriber woken by a publisher's delivery runs after the other connections already
    // due, and what one round of reads routes to it leaves in one write (fan-in at 10,000
    // msgs/s: 5 to 6 messages per subscriber read instead of 2.5; BENCHMARKS.md). Publishers
    // that find its outbox half full yield to it (`Routed::congested`).
    let mut runtime = match config.node.worker_threads {
        Some(n) if n <= 1 => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.min(1024) as usize);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = runtime.enable_all().build()?;
    rt.block_on(async move {
        let server = Server::start_from(&config, path, junction::gateways::registry()).await?;
        for (id, addr) in &server.listeners() {
            // One line per listener on stderr, so scripts can wait for readiness.
            eprintln!("junction: listener {id} on {addr}");
        }
        eprintln!("junction: started");
        shutdown_signal().await;
        eprintln!("junction: stopping");
        server.shutdown().await;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
