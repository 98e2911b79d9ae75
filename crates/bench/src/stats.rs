//! Counters shared by every connection task, duplicate detection, broker process
//! readings from `/proc`, and the once-a-second progress line.

use super::histogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of one run, updated by the connection tasks once per batch.
#[derive(Debug, Default)]
pub struct Shared {
    /// Connections that got a CONNACK.
    pub connected: AtomicU64,
    /// Connections set up completely (CONNACK, and SUBACK for subscribers).
    pub ready: AtomicU64,
    /// Connections that failed (TCP, CONNACK or SUBACK).
    pub failed: AtomicU64,
    /// Subscriptions granted.
    pub subscribed: AtomicU64,
    /// Connections closed by the broker (or by an I/O error) while in use.
    pub disconnected: AtomicU64,
    /// PUBLISH packets written.
    pub sent: AtomicU64,
    /// Writes that carried PUBLISH packets (messages per write tells how the publishers'
    /// batches are sized, by the rate or by the acks that open the window).
    pub publish_writes: AtomicU64,
    /// PUBACK / PUBCOMP received by publishers.
    pub acked: AtomicU64,
    /// CoAP confirmable publishes whose 2.04 ACK did not come within `--drain` (or that
    /// were refused).
    pub unacked: AtomicU64,
    /// PUBLISH packets received by subscribers (duplicates included).
    pub received: AtomicU64,
    /// Subscriber reads that brought at least one PUBLISH (messages per read tells how
    /// well the broker batches its writes).
    pub receive_reads: AtomicU64,
    /// Received messages whose (publisher, seq) had already been received by the same
    /// subscriber.
    pub duplicates: AtomicU64,
    /// Received messages without a stamp (shorter than 16 bytes: not from this tool).
    pub unstamped: AtomicU64,
    /// Deliveries expected by the subscribers (pubsub mode), added by each publisher as
    /// it finishes: messages sent × matching subscribers.
    pub expected: AtomicU64,
    /// Publishers that have finished.
    pub publishers_done: AtomicU64,
    /// Wall clock (ns) of the first read that brought a PUBLISH.
    pub first_receive_ns: AtomicU64,
    /// Wall clock (ns) of the last read that brought a PUBLISH.
    pub last_receive_ns: AtomicU64,
    /// End-to-end latency, nanoseconds.
    pub latency: Histogram,
    /// The first error seen, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    /// Remember an error (the first one is kept).
    pub fn error(&self, error: impl std::fmt::Display) {
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| error.to_string());
        }
    }

    /// Current value of a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Add to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The first error seen, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

/// Which (publisher, seq) pairs one subscriber has seen: one bit per sequence number.
#[derive(Debug, Default)]
pub struct SeqTracker {
    seen: HashMap<u32, Vec<u64>>,
}

impl SeqTracker {
    /// Mark a message as seen; false if it had been seen before (a duplicate).
    pub fn first_time(&mut self, publisher: u32, seq: u32) -> bool {
        let bits = self.seen.entry(publisher).or_default();
        let word = (seq / 64) as usize;
        if word >= bits.len() {
            bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (seq % 64);
        let new = bits[word] & mask == 0;
        bits[word] |= mask;
        new
    }
}

/// Readings of the broker process from `/proc/<pid>` (Linux).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pid: u32,
    clock_ticks: u64,
}

impl Probe {
    /// A probe of `pid`, whose CPU times are counted in `clock_ticks` per second.
    pub fn new(pid: u32, clock_ticks: u64) -> Self {
        Probe {
            pid,
            clock_ticks: clock_ticks.max(1),
        }
    }

    /// User and system CPU time used so far, seconds.
    pub fn cpu_seconds(&self) -> Option<CpuTime> {
        let (user, system) = cpu_ticks(&format!("/proc/{}/stat", self.pid))?;
        let tck = self.clock_ticks as f64;
        Some(CpuTime {
            user: user as f64 / tck,
            system: system as f64 / tck,
        })
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// CPU time of a process, seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    /// In user space (utime).
    pub user: f64,
    /// In the kernel (stime): on loopback this includes most of TCP.
    pub system: f64,
}

impl CpuTime {
    /// User + system.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

/// CPU seconds of this process (the load tool itself), with `clock_ticks` per second.
pub fn own_cpu_seconds(clock_ticks: u64) -> Option<f64> {
    cpu_ticks("/proc/self/stat").map(|(u, s)| (u + s) as f64 / clock_ticks.max(1) as f64)
}

/// (utime, stime): fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks.
fn cpu_ticks(path: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) is in parentheses and may contain spaces: count fields
    // from the last ')'. Field 3 is the first after it, so utime (14) is index 11.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The soft limit of open files of this process, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Replace `%i` (sequence number) and `%c` (client id) in a topic or filter pattern.
pub fn render(pattern: &str, seq: usize, client_id: &str) -> String {
    pattern
        .replace("%i", &seq.to_string())
        .replace("%c", client_id)
}

/// Whether an MQTT topic filter matches a topic name (`+` one level, `#` the rest).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        match (f, topic_levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// Prints one progress line a second to stderr until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Start printing progress of `shared` under `label`.
    pub fn start(label: String, shared: std::sync::Arc<Shared>) -> Progress {
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut last_sent, mut last_received) = (0, 0);
            loop {
                tick.tick().await;
                let sent = Shared::get(&shared.sent);
                let received = Shared::get(&shared.received);
                let lat = &shared.latency;
                eprintln!(
                    "{label} {:>6.1}s conns {} (failed {}, lost {}) sent {}/s recv {}/s \
                     total sent {} recv {} latency p50 {:.2} ms p99 {:.2} ms",
                    start.elapsed().as_secs_f64(),
                    Shared::get(&shared.connected),
                    Shared::get(&shared.failed),
                    Shared::get(&shared.disconnected),
                    sent - last_sent,
                    received - last_received,
                    sent,
                    received,
                    lat.quantile(0.5) as f64 / 1e6,
                    lat.quantile(0.99) as f64 / 1e6,
                );
                (last_sent, last_received) = (sent, received);
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_mqtt() {
        assert!(filter_matches("a/b", "a/b"));
        assert!(!filter_matches("a/b", "a/b/c"));
        assert!(!filter_matches("a/b/c", "a/b"));
        assert!(filter_matches("a/+", "a/b"));
        assert!(!filter_matches("a/+", "a/b/c"));
        assert!(filter_matches("a/#", "a"));
        assert!(filter_matches("a/#", "a/b/c"));
        assert!(filter_matches("#", "x/y"));
        assert!(!filter_matches("bench/1", "bench/10"));
    }

    #[test]
    fn patterns_substitute_sequence_and_client_id() {
        assert_eq!(render("t/%i/%c", 7, "pub_7"), "t/7/pub_7");
    }

    #[test]
    fn duplicates_are_seen_per_publisher() {
        let mut t = SeqTracker::default();
        assert!(t.first_time(1, 0));
        assert!(t.first_time(1, 700));
        assert!(t.first_time(2, 0));
        assert!(!t.first_time(1, 0));
        assert!(!t.first_time(1, 700));
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some((250, 75)));
    }
}
