//! One datagram peer's queue, between the listener's receive loop and the peer's task.
//!
//! A tokio channel allocates a block of 32 slots when it is made, per peer, whether the
//! peer ever sends a second datagram or not; with tens of thousands of mostly idle
//! devices (LwM2M registrations) that block is a large share of what each costs. This
//! queue holds nothing until a datagram waits and grows as datagrams do, bounded: past
//! its capacity the datagram is dropped, as the network would.
//!
//! Dropping the [`PeerSender`] (the listener forgets the peer, or stops) ends the
//! receiver's stream once it is drained; dropping the [`PeerReceiver`] (the task ended)
//! makes every later send fail with the datagram back, so the listener can treat it as
//! the first datagram of a new peer.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

struct State {
    items: VecDeque<Bytes>,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Queue {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

/// The listener's end.
pub(crate) struct PeerSender(Arc<Queue>);

/// The task's end.
pub(crate) struct PeerReceiver(Arc<Queue>);

/// Why a datagram was not queued.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The queue holds `capacity` datagrams: this one is dropped.
    Full,
    /// The task is gone: the datagram comes back.
    Closed(Bytes),
}

/// A queue holding at most `capacity` datagrams.
pub(crate) fn peer_queue(capacity: usize) -> (PeerSender, PeerReceiver) {
    let q = Arc::new(Queue {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
        }),
        notify: Notify::new(),
        capacity,
    });
    (PeerSender(q.clone()), PeerReceiver(q))
}

impl PeerSender {
    /// Queue `d` for the task, without waiting.
    pub fn try_send(&self, d: Bytes) -> Result<(), SendError> {
        {
            let mut s = self.0.state.lock();
            if s.receiver_gone {
                return Err(SendError::Closed(d));
            }
            if s.items.len() >= self.0.capacity {
                return Err(SendError::Full);
            }
            s.items.push_back(d);
        }
        self.0.notify.notify_one();
        Ok(())
    }
}

impl Drop for PeerSender {
    fn drop(&mut self) {
        self.0.state.lock().sender_gone = true;
        self.0.notify.notify_one();
    }
}

impl PeerReceiver {
    /// The next datagram; `None` once the sender is gone and the queue drained. Cancel
    /// safe: a datagram is taken only by a call that returns it.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            {
                let mut s = self.0.state.lock();
                if let Some(d) = s.items.pop_front() {
                    return Some(d);
                }
                if s.sender_gone {
                    return None;
                }
            }
            // A notification sent since the check is kept as a permit: none is lost.
            self.0.notify.notified().await;
        }
    }
}

impl PeerReceiver {
    /// The next datagram already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        self.0.state.lock().items.pop_front()
    }
}

impl Drop for PeerReceiver {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.receiver_gone = true;
        s.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_arrive_in_order_and_past_capacity_are_dropped() {
        let (tx, mut rx) = peer_queue(2);
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        tx.try_send(Bytes::from_static(b"b")).unwrap();
        assert!(matches!(
            tx.try_send(Bytes::from_static(b"c")),
            Err(SendError::Full)
        ));
        assert_eq!(rx.recv().await.unwrap(), "a");
        assert_eq!(rx.recv().await.unwrap(), "b");
        tx.try_send(Bytes::from_static(b"d")).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await.unwrap(), "d", "drained before it ends");
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_and_a_gone_one_hands_the_datagram_back() {
        let (tx, mut rx) = peer_queue(4);
        let waiter = tokio::spawn(async move {
            let got = rx.recv().await;
            (got, rx)
        });
        tokio::task::yield_now().await;
        tx.try_send(Bytes::from_static(b"x")).unwrap();
        let (got, rx) = waiter.await.unwrap();
        assert_eq!(got.unwrap(), "x");
        drop(rx);
        match tx.try_send(Bytes::from_static(b"y")) {
            Err(SendError::Closed(d)) => assert_eq!(d, "y"),
            other => panic!("{other:?}"),
        }
    }
}
