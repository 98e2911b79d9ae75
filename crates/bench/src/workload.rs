//! What each connection does once connected: publish on a schedule, receive and measure,
//! or sit idle. One task per connection; every task stops by itself or is aborted by the
//! run when its scenario ends.

use super::client::{now_ns, read_stamp, Client, PublishTemplate};
use super::stats::{SeqTracker, Shared};
use junction_codec_mqtt::{Packet, PubAck, QoS};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

/// Most PUBLISH packets encoded into one write.
const MAX_BATCH: u64 = 256;

/// Read buffer of a connection that only receives acks or nothing.
pub const SMALL_READ: usize = 4 * 1024;
/// Read buffer of a subscriber.
pub const LARGE_READ: usize = 64 * 1024;

/// How connections are opened: at most `concurrency` handshakes in flight, and at least
/// `interval` between two connection starts.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Time between connection starts (zero: as fast as the concurrency bound allows).
    pub interval: Duration,
    /// Handshakes in flight at most.
    pub concurrency: usize,
}

/// Spawn `count` connection tasks, numbered from 1. `make(n, permit)` builds task `n`; it
/// must drop the permit once its handshake is done. Handles are pushed into `handles` as
/// they are spawned, so a caller that gives up waiting still holds every task.
pub async fn spawn_clients<F, Fut>(
    handles: &mut Vec<JoinHandle<()>>,
    count: usize,
    pacing: Pacing,
    mut make: F,
) where
    F: FnMut(usize, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(pacing.concurrency.max(1)));
    let mut next_start = Instant::now();
    for n in 1..=count {
        if !pacing.interval.is_zero() {
            sleep_until(next_start).await;
            next_start += pacing.interval;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        handles.push(tokio::spawn(make(n, permit)));
    }
}

/// Keep-alive pings: a PINGREQ every `keepalive` seconds (never when it is 0).
fn pinger(keepalive: u16) -> tokio::time::Interval {
    let period = Duration::from_secs(u64::from(keepalive.max(1)));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Hold a connection open, answering nothing but keeping it alive, until aborted.
pub async fn idle(mut client: Client, shared: Arc<Shared>, keepalive: u16) {
    let mut ping = pinger(keepalive);
    loop {
        tokio::select! {
            read = client.read_more() => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => while let Ok(Some(_)) = client.decode() {},
            },
            _ = ping.tick(), if keepalive > 0 => {
                let sent = client.send(&Packet::PingReq);
                if sent.is_err() || client.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    Shared::add(&shared.disconnected, 1);
}

/// What one publisher sends.
#[derive(Debug)]
pub struct PubJob {
    /// The publisher's number (1-based), stamped into every payload.
    pub number: u32,
    /// Frame template (topic, QoS, size).
    pub template: PublishTemplate,
    /// QoS of the publishes.
    pub qos: QoS,
    /// Time between two messages of this publisher; `None` sends as fast as the window
    /// and the socket allow.
    pub period: Option<Duration>,
    /// Delay of this publisher's first message after the common start, to spread
    /// publishers evenly over one period.
    pub offset: Duration,
    /// Messages to send at most.
    pub limit: u64,
    /// QoS 1/2 messages in flight at most.
    pub inflight: u64,
    /// Subscribers that will receive each message (pubsub mode; 0 otherwise).
    pub fanout: u64,
    /// Keep alive, seconds.
    pub keepalive: u16,
}

/// Publish per `job` from `start` until `stop_at` or `job.limit`, then wait up to `drain`
/// for outstanding acks. Returns the number of messages sent.
pub async fn publisher(
    mut client: Client,
    job: PubJob,
    start: Instant,
    stop_at: Instant,
    drain: Duration,
    shared: Arc<Shared>,
) -> u64 {
    let first_due = start + job.offset;
    let drain_until = stop_at + drain;
    let qos0 = job.qos == QoS::AtMostOnce;
    let mut sent: u64 = 0;
    let mut outstanding: u64 = 0;
    let mut packet_id: u16 = 0;
    let mut ping = pinger(job.keepalive);
    loop {
        let now = Instant::now();
        let sending = now < stop_at && sent < job.limit;
        if sending {
            let due = match job.period {
                None => job.limit,
                Some(_) if now < first_due => 0,
                Some(p) => {
                    let elapsed = (now - first_due).as_nanos() / p.as_nanos().max(1);
                    (elapsed as u64 + 1).min(job.limit)
                }
            };
            let window = if qos0 {
                MAX_BATCH
            } else {
                job.inflight - outstanding
            };
            let n = due.saturating_sub(sent).min(window).min(MAX_BATCH);
            if n > 0 {
                let stamp = now_ns();
                for _ in 0..n {
                    if !qos0 {
                        packet_id = packet_id.checked_add(1).unwrap_or(1);
                    }
                    job.template
                        .put(&mut client.wbuf, packet_id, stamp, job.number, sent as u32);
                    sent += 1;
                }
                if !qos0 {
                    outstanding += n;
                }
                if let Err(e) = client.flush().await {
                    shared.error(format!("publisher {}: {e}", job.number));
                    Shared::add(&shared.disconnected, 1);
                    break;
                }
                Shared::add(&shared.sent, n);
                Shared::add(&shared.publish_writes, 1);
                Shared::add(&shared.expected, n * job.fanout);
                continue;
            }
        } else if outstanding == 0 || now >= drain_until {
            break;
        }
        // Wake for the next message due, for acks, or for the end of the phase.
        let window_open = qos0 || outstanding < job.inflight;
        let next_due = match job.period {
            Some(p) if sending && window_open => Some(first_due + p * sent as u32),
            _ => None,
        };
        let phase_end = if sending { stop_at } else { drain_until };
        tokio::select! {
            read = client.read_more() => {
                match read {
                    Ok(0) => {
                        shared.error(format!("publisher {}: connection closed by the broker", job.number));
                        Shared::add(&shared.disconnected, 1);
                        break;
                    }
                    Err(e) => {
                        shared.error(format!("publisher {}: {e}", job.number));
                        Shared::add(&shared.disconnected, 1);
                        break;
                    }
                    Ok(_) => {}
                }
                match handle_acks(&mut client, &mut outstanding) {
                    Ok(acked) => Shared::add(&shared.acked, acked),
                    Err(e) => {
                        shared.error(format!("publisher {}: {e}", job.number));
                        break;
                    }
                }
                if client.flush().await.is_err() {
                    Shared::add(&shared.disconnected, 1);
                    break;
                }
            }
            _ = sleep_until(next_due.unwrap_or(phase_end)), if next_due.is_some() => {}
            _ = sleep_until(phase_end) => {}
            _ = ping.tick(), if job.keepalive > 0 => {
                let sent = client.send(&Packet::PingReq);
                if sent.is_err() || client.flush().await.is_err() {
                    Shared::add(&shared.disconnected, 1);
                    break;
                }
            }
        }
    }
    sent
}

/// Decode every ack read so far; PUBREC is answered with PUBREL (into the write buffer).
/// Returns how many messages were completed.
fn handle_acks(client: &mut Client, outstanding: &mut u64) -> anyhow::Result<u64> {
    let mut completed = 0;
    while let Some(packet) = client.decode()? {
        match packet {
            Packet::PubAck(_) | Packet::PubComp(_) => completed += 1,
            Packet::PubRec(ack) => client.send(&Packet::PubRel(PubAck {
                packet_id: ack.packet_id,
                ..PubAck::default()
            }))?,
            Packet::Disconnect(d) => {
                anyhow::bail!("DISCONNECT from broker, reason {:#04x}", d.reason_code)
            }
            _ => {}
        }
    }
    *outstanding = outstanding.saturating_sub(completed);
    Ok(completed)
}

/// Receive until aborted: count messages, record their latency, detect duplicates, and
/// acknowledge QoS 1/2 (all acks of one read in one write).
pub async fn subscriber(mut client: Client, shared: Arc<Shared>, keepalive: u16) {
    let mut seen = SeqTracker::default();
    let mut ping = pinger(keepalive);
    loop {
        tokio::select! {
            read = client.read_more() => match read {
                Ok(0) => {
                    shared.error("subscriber: connection closed by the broker");
                    break;
                }
                Err(e) => {
                    shared.error(format!("subscriber: {e}"));
                    break;
                }
                Ok(_) => {
                    if let Err(e) = receive(&mut client, &shared, &mut seen) {
                        shared.error(format!("subscriber: {e}"));
                        break;
                    }
                    if let Err(e) = client.flush().await {
                        shared.error(format!("subscriber: {e}"));
                        break;
                    }
                }
            },
            _ = ping.tick(), if keepalive > 0 => {
                let sent = client.send(&Packet::PingReq);
                if sent.is_err() || client.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    Shared::add(&shared.disconnected, 1);
}

/// Handle every packet read so far by a subscriber.
fn receive(client: &mut Client, shared: &Shared, seen: &mut SeqTracker) -> anyhow::Result<()> {
    // One clock reading per read: every message in it arrived at the same moment.
    let now = now_ns();
    let (mut received, mut duplicates, mut unstamped) = (0, 0, 0);
    while let Some(packet) = client.decode()? {
        match packet {
            Packet::Publish(p) => {
                received += 1;
                match read_stamp(&p.payload) {
                    Some((sent_ns, publisher, seq)) => {
                        shared.latency.record(now.saturating_sub(sent_ns));
                        if !seen.first_time(publisher, seq) {
                            duplicates += 1;
                        }
                    }
                    None => unstamped += 1,
                }
                let ack = PubAck {
                    packet_id: p.packet_id.unwrap_or(0),
                    ..PubAck::default()
                };
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => client.send(&Packet::PubAck(ack))?,
                    QoS::ExactlyOnce => client.send(&Packet::PubRec(ack))?,
                }
            }
            Packet::PubRel(rel) => client.send(&Packet::PubComp(PubAck {
                packet_id: rel.packet_id,
                ..PubAck::default()
            }))?,
            Packet::Disconnect(d) => {
                anyhow::bail!("DISCONNECT from broker, reason {:#04x}", d.reason_code)
            }
            _ => {}
        }
    }
    if received > 0 {
        shared.last_receive_ns.fetch_max(now, Ordering::Relaxed);
        let _ =
            shared
                .first_receive_ns
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        Shared::add(&shared.received, received);
        Shared::add(&shared.receive_reads, 1);
        Shared::add(&shared.duplicates, duplicates);
        Shared::add(&shared.unstamped, unstamped);
    }
    Ok(())
}
