//! When pending writes are committed: on a timer ([`Durability::Batched`], driven by a
//! [`Committer`] thread) or by the broker itself before every acknowledgement
//! ([`Durability::EveryAck`]).

use crate::{Store, StoreError};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Default `durable_sessions.commit_interval`: 10 ms.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// How the broker makes its writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Writes are batched and committed in one transaction every `interval`
    /// (`durable_sessions.commit_interval`). A power loss loses at most the writes of the
    /// last interval; a clean stop loses none if the broker stops the [`Committer`].
    Batched {
        /// Time between two commits.
        interval: Duration,
    },
    /// The broker calls [`Store::commit`] before it sends each acknowledgement (PUBACK,
    /// PUBREC, SUBACK…), so nothing acknowledged is ever lost. Concurrent callers share
    /// one transaction (group commit).
    EveryAck,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Batched {
            interval: DEFAULT_COMMIT_INTERVAL,
        }
    }
}

impl Durability {
    /// True when the broker must call [`Store::commit`] before acknowledging.
    pub fn commit_before_ack(&self) -> bool {
        matches!(self, Durability::EveryAck)
    }

    /// The commit interval of the batched mode.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Durability::Batched { interval } => Some(*interval),
            Durability::EveryAck => None,
        }
    }
}

/// A std thread that commits a store's pending batch every interval.
///
/// [`Committer::stop`] (or dropping it) wakes the thread, which commits once more and
/// exits, so a clean shutdown loses nothing. It does not need a tokio runtime.
pub struct Committer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Committer {
    /// Starts the thread. `on_error` is called with every failed periodic commit (the
    /// batch stays pending and is retried on the next tick).
    pub fn spawn(
        store: Arc<dyn Store>,
        interval: Duration,
        on_error: impl Fn(&StoreError) + Send + 'static,
    ) -> Result<Committer, StoreError> {
        Committer::spawn_with(move || store.commit(), interval, on_error)
    }

    /// Like [`Committer::spawn`], with the commit step given: the broker writes what
    /// changed since the last tick (its dirty sessions) and then commits.
    pub fn spawn_with(
        commit: impl Fn() -> Result<(), StoreError> + Send + 'static,
        interval: Duration,
        on_error: impl Fn(&StoreError) + Send + 'static,
    ) -> Result<Committer, StoreError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("junction-store-commit".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) = commit() {
                            on_error(&e);
                        }
                    }
                    // Asked to stop, or the handle is gone: the last commit.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return commit(),
                }
            })
            .map_err(|e| StoreError::Committer(e.to_string()))?;
        Ok(Committer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread after a last commit, and returns that commit's result.
    pub fn stop(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        if let Some(stop) = self.stop.take() {
            // The thread may already be gone; then there is nobody to tell.
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| StoreError::Committer("the commit thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Errors of the last commit cannot be reported from drop; `stop` returns them.
        let _ = self.shutdown();
    }
}
