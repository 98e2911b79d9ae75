//! Connected datagram peers, served by their listener's one task instead of a task each.
//!
//! A registered LwM2M device or a subscribed CoAP client is idle nearly all the time, and
//! a task per peer (its future holds the channel; tokio's task cell adds its header and
//! scheduler state) cost more than the channel itself. Here a connected peer is a table
//! entry: its channel, its link, its kick and call slots, and one small waker. What can
//! wake it — a datagram, a delivery or framework call (the session cell's signal), a kick
//! (its oneshot), its timer — reaches the listener's task: datagrams are read there, the
//! cell and the kick wake the peer's waker, which puts the peer's key on the listener's
//! ready queue, and timers are one ordered set per listener.
//!
//! Each turn of the listener's loop runs every ready peer and every due timer, then
//! flushes what the touched peers wrote: the broker's ack barrier is awaited once for
//! all of them (one commit acknowledges a whole batch), and a peer whose step failed is
//! closed through the one close path after its last output is sent.

use super::datagram::{DatagramChannel, DatagramProtocol, Link, Listener, PeerEntry};
use super::peer_queue::PeerReceiver;
use super::CloseReason;
use crate::call::CallBox;
use bytes::Bytes;
use junction_broker::KickWait;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Keys of peers with something to do, and the listener's task to wake for them.
#[derive(Default)]
pub(super) struct ReadyQueue {
    keys: Mutex<Vec<u64>>,
    notify: Notify,
}

impl ReadyQueue {
    fn push(&self, key: u64) {
        self.keys.lock().push(key);
        self.notify.notify_one();
    }

    /// Wait until some peer is ready (a wake before the wait is kept as a permit).
    pub(super) async fn wait(&self) {
        self.notify.notified().await
    }
}

/// One peer's waker: puts its key on the ready queue, once until the peer is run.
struct PeerWaker {
    ready: Arc<ReadyQueue>,
    key: u64,
    queued: AtomicBool,
}

impl Wake for PeerWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.key);
        }
    }
}

/// A connected peer as the opening task hands it over.
pub(super) struct Handoff<C> {
    pub addr: SocketAddr,
    /// The opening task's id in the listener's peer map.
    pub task: u64,
    pub channel: C,
    pub kick: KickWait,
    pub calls: Arc<CallBox>,
    pub link: Link,
    /// Datagrams that arrived while the task finished: served first.
    pub rx: PeerReceiver,
}

struct Served<C> {
    addr: SocketAddr,
    channel: C,
    kick: KickWait,
    calls: Arc<CallBox>,
    link: Link,
    waker: Arc<PeerWaker>,
    /// The deadline this peer has in the timer set.
    armed: Option<Instant>,
    /// On the touched list of this turn.
    touched: bool,
    /// A step failed: closed once this turn's output is sent.
    closing: Option<CloseReason>,
}

/// A listener's connected peers.
pub(super) struct Table<C> {
    peers: HashMap<u64, Box<Served<C>>>,
    timers: BTreeSet<(Instant, u64)>,
    pub(super) ready: Arc<ReadyQueue>,
    touched: Vec<u64>,
    scratch: Vec<u64>,
    plain: Vec<Bytes>,
    next_key: u64,
}

impl<C: DatagramChannel> Table<C> {
    pub(super) fn new() -> Self {
        Table {
            peers: HashMap::new(),
            timers: BTreeSet::new(),
            ready: Arc::default(),
            touched: Vec::new(),
            scratch: Vec::new(),
            plain: Vec::new(),
            next_key: 1,
        }
    }

    /// When the earliest timer is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    fn touch(touched: &mut Vec<u64>, key: u64, served: &mut Served<C>) {
        if !served.touched {
            served.touched = true;
            touched.push(key);
        }
    }

    /// Take over a peer the opening task admitted, with the datagrams that waited in its
    /// queue. A peer the listener forgot meanwhile (it stopped, or the address started
    /// over) is closed in this turn's flush.
    pub(super) async fn admit<P: DatagramProtocol>(
        &mut self,
        l: &Listener<P>,
        handoff: Handoff<C>,
    ) {
        let key = self.next_key;
        self.next_key += 1;
        let Handoff {
            addr,
            task,
            channel,
            kick,
            calls,
            link,
            mut rx,
        } = handoff;
        let ours = {
            let mut peers = l.peers.lock();
            match peers.get_mut(&addr) {
                Some(entry @ PeerEntry::Opening(..)) if entry.task() == Some(task) => {
                    *entry = PeerEntry::Connected(key);
                    true
                }
                _ => false,
            }
        };
        // Queued at once: the first run registers the waker with the session cell and
        // the kick, and serves what they already hold.
        let waker = Arc::new(PeerWaker {
            ready: self.ready.clone(),
            key,
            queued: AtomicBool::new(true),
        });
        self.ready.push(key);
        let mut served = Box::new(Served {
            addr,
            channel,
            kick,
            calls,
            link,
            waker,
            armed: None,
            touched: false,
            closing: None,
        });
        if !ours {
            served.closing = Some(CloseReason::SockClosed);
        }
        // The acceptance the channel wrote is sent in this turn's flush.
        Self::touch(&mut self.touched, key, &mut served);
        self.peers.insert(key, served);
        while let Some(d) = rx.try_recv() {
            self.on_datagram(l, key, d).await;
        }
    }

    /// A datagram from connected peer `key`.
    pub(super) async fn on_datagram<P: DatagramProtocol>(
        &mut self,
        l: &Listener<P>,
        key: u64,
        d: Bytes,
    ) {
        let Some(served) = self.peers.get_mut(&key) else {
            return;
        };
        if served.closing.is_some() {
            return;
        }
        Self::touch(&mut self.touched, key, served);
        let stats = &served.channel.session().stats;
        stats
            .recv_oct
            .fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut result = served
            .link
            .open_up(l, served.addr, d, &mut self.plain)
            .await;
        let now = Instant::now();
        for d in self.plain.drain(..) {
            if result.is_ok() {
                result = served.channel.on_datagram(d, now);
            }
        }
        if let Err(reason) = result {
            served.closing = Some(reason);
        }
    }

    /// Run every ready peer and every due timer, then send what they wrote and close
    /// those whose step failed.
    pub(super) async fn turn<P: DatagramProtocol>(&mut self, l: &Listener<P>) {
        self.run_ready();
        self.run_timers();
        self.flush(l).await;
    }

    fn run_ready(&mut self) {
        std::mem::swap(&mut self.scratch, &mut *self.ready.keys.lock());
        let now = Instant::now();
        for key in self.scratch.drain(..) {
            let Some(served) = self.peers.get_mut(&key) else {
                continue;
            };
            served.waker.queued.store(false, Ordering::Release);
            if served.closing.is_some() {
                continue;
            }
            let waker = Waker::from(served.waker.clone());
            let mut cx = Context::from_waker(&waker);
            if let Poll::Ready(kicked) = served.kick.poll_kicked(&mut cx) {
                served.closing = Some(CloseReason::Kicked(kicked));
                Self::touch(&mut self.touched, key, served);
                continue;
            }
            if served
                .channel
                .session()
                .cell
                .poll_notified(&mut cx)
                .is_ready()
            {
                for call in served.calls.take() {
                    served.channel.on_call(call);
                }
                if let Err(reason) = served.channel.on_deliveries(now) {
                    served.closing = Some(reason);
                }
                Self::touch(&mut self.touched, key, served);
                // A ready signal leaves no waker behind: poll again, which registers it,
                // or (more came meanwhile) run the peer again next turn.
                if served.closing.is_none()
                    && served
                        .channel
                        .session()
                        .cell
                        .poll_notified(&mut cx)
                        .is_ready()
                {
                    served.waker.queued.store(true, Ordering::Release);
                    self.ready.push(key);
                }
            }
        }
    }

    fn run_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(served) = self.peers.get_mut(&key) else {
                continue;
            };
            served.armed = None;
            if served.closing.is_some() {
                continue;
            }
            if let Err(reason) = served.channel.on_timer(now) {
                served.closing = Some(reason);
            }
            Self::touch(&mut self.touched, key, served);
        }
    }

    async fn flush<P: DatagramProtocol>(&mut self, l: &Listener<P>) {
        if self.touched.is_empty() {
            return;
        }
        // One commit acknowledges every peer of this turn.
        let mut acks = false;
        for key in &self.touched {
            if let Some(served) = self.peers.get_mut(key) {
                acks |= std::mem::take(&mut served.channel.output().ack);
            }
        }
        if acks {
            if let Some(barrier) = l.ctx.ack_barrier() {
                if let Err(e) = barrier().await {
                    tracing::error!(error = %e, "commit before acknowledging failed");
                    for key in &self.touched {
                        if let Some(served) = self.peers.get_mut(key) {
                            served.channel.output().datagrams.retain(|(_, ack)| !ack);
                        }
                    }
                }
            }
        }
        let mut congested = false;
        let mut touched = std::mem::take(&mut self.touched);
        for key in touched.drain(..) {
            let Some(served) = self.peers.get_mut(&key) else {
                continue;
            };
            served.touched = false;
            send_output(l, served).await;
            congested |= std::mem::take(&mut served.channel.output().congested);
            if let Some(reason) = served.closing {
                let served = self.peers.remove(&key).expect("present");
                if let Some(at) = served.armed {
                    self.timers.remove(&(at, key));
                }
                close(l, key, served, reason).await;
                continue;
            }
            let next = served.channel.next_timer();
            if next != served.armed {
                if let Some(at) = served.armed {
                    self.timers.remove(&(at, key));
                }
                if let Some(at) = next {
                    self.timers.insert((at, key));
                }
                served.armed = next;
            }
        }
        self.touched = touched;
        if congested {
            // Let the subscribers' tasks write before the next datagram is routed.
            tokio::task::yield_now().await;
        }
    }

    /// The listener stops: every peer is closed as if its socket had.
    pub(super) async fn close_all<P: DatagramProtocol>(&mut self, l: &Listener<P>) {
        for (key, served) in std::mem::take(&mut self.peers) {
            close(l, key, served, CloseReason::SockClosed).await;
        }
        self.timers.clear();
    }
}

/// Send what the channel wrote (acknowledgements the barrier refused are already gone).
async fn send_output<P: DatagramProtocol, C: DatagramChannel>(
    l: &Listener<P>,
    served: &mut Served<C>,
) {
    // Taken whole: an idle peer keeps no output buffer.
    let datagrams = std::mem::take(&mut served.channel.output().datagrams);
    for (d, _) in datagrams {
        if served.link.send(l, served.addr, &d).await {
            let stats = &served.channel.session().stats;
            stats.send_oct.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
    }
}

/// The one close path of a connected peer: the protocol's goodbye (unless the peer's
/// socket or session is gone), the DTLS close, the listener's map, the framework's close.
async fn close<P: DatagramProtocol, C: DatagramChannel>(
    l: &Listener<P>,
    key: u64,
    mut served: Box<Served<C>>,
    reason: CloseReason,
) {
    {
        let mut peers = l.peers.lock();
        if matches!(peers.get(&served.addr), Some(PeerEntry::Connected(k)) if *k == key) {
            peers.remove(&served.addr);
        }
    }
    if reason != CloseReason::SockClosed {
        served.channel.goodbye(reason);
        send_output(l, &mut served).await;
        served.link.close(l, served.addr).await;
    }
    let (will, expiry) = served.channel.on_close(reason);
    let session = served.channel.session();
    session.ctx.close(session, reason, will, expiry);
}
