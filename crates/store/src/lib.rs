//! Durable broker state for Junction.
//!
//! [`Store`] is what the broker persists through: sessions, the messages they wait for,
//! retained messages, and key/value namespaces for the built-in users, authorization
//! rules, banned entries, API keys and configuration changes. [`RedbStore`] keeps it in
//! one file with the embedded [redb](https://docs.rs/redb) database; a clustered backend
//! can implement the same trait later.
//!
//! # Writing and committing
//!
//! Writes (`put_*`, `delete_*`) go into a pending batch in memory; [`Store::commit`]
//! applies the whole batch in one write transaction and returns once it is on disk.
//! Reads see committed data only. Who calls `commit` is decided by [`Durability`]:
//!
//! - [`Durability::Batched`] (`durable_sessions.commit_interval`): a [`Committer`]
//!   thread commits every interval. **On power loss the writes made since the last
//!   commit are lost** (at most one interval's worth); everything committed survives.
//!   On a clean stop nothing is lost, provided the broker stops the committer (which
//!   commits a last time) or calls `commit` on shutdown.
//! - [`Durability::EveryAck`]: the broker calls `commit` before each acknowledgement,
//!   so nothing acknowledged is lost. Concurrent callers wait for one another and share
//!   transactions: a caller whose writes went into someone else's commit returns when
//!   that commit is done.
//!
//! A failed commit leaves its batch pending, to be retried by the next commit.
//!
//! # Layout of the file
//!
//! | table            | key                                | value                                   |
//! |------------------|------------------------------------|-----------------------------------------|
//! | `meta`           | `"format_version"`, `"message_id_high_water"`, `"sweep_epoch"` | `u64`       |
//! | `messages`       | message id `u64`                   | encoded [`junction_types::Message`]     |
//! | `message_refs`   | message id `u64`                   | number of records referring to it `u32` |
//! | `message_expiry` | `(expires_at_ms, message id)`      | `()` (index for the sweep)              |
//! | `orphans`        | message id `u64`                   | sweep epoch it became unreferenced      |
//! | `sessions`       | `(namespace, client id)`           | encoded [`StoredSession`]               |
//! | `session_queue`  | `(namespace, client id, seq)`      | encoded [`StoredDelivery`]              |
//! | `session_expiry` | `(deadline_ms, namespace, client id)` | `()` (index for the sweep)           |
//! | `retained`       | topic                              | message id `u64`                        |
//! | `kv`             | `(namespace, key)`                 | bytes, owned by the caller              |
//!
//! A message is stored once however many sessions wait for it; session records and
//! retained entries hold its id, and `message_refs` counts the records (a record that
//! names an id twice counts once; each `session_queue` entry counts once more). The count
//! is kept by the store itself: it compares each session record with the one it
//! replaces, in the transaction that writes it, and counts queue entries as they come
//! and go.
//!
//! A message nobody refers to (put and not yet referenced, or whose count dropped to
//! zero) is recorded in `orphans` with the current sweep epoch, and deleted by the first
//! sweep of a later epoch — the second sweep from then on. The delay is deliberate: the
//! broker puts a message and then, one session at a time, the records that refer to it,
//! and a commit or a sweep may fall in between; one full sweep interval is left for the
//! reference to arrive (a message referred to again leaves `orphans`).
//!
//! [`Store::sweep_expired`] deletes sessions whose expiry deadline passed and messages
//! whose expiry passed (with their retained entry), found through the expiry indexes,
//! then the orphans of earlier epochs; a sweep reads little more than what it deletes.
//! The broker calls it periodically (every few seconds) and at start-up, where it also
//! returns the wills of sessions that expired while the broker was down. redb reuses the pages freed by a
//! commit, so a broker whose sessions and messages expire keeps a file of bounded size.
//! A record that still names a removed (expired) message is left as is: readers skip
//! ids that are no longer in the messages table, and ids are never reused because the
//! store keeps the highest id ever stored ([`Store::message_id_high_water`]), from
//! which the broker restarts its message counter.
//!
//! # Encoding and format version
//!
//! Values are encoded with [postcard](https://docs.rs/postcard): serde-based, compact
//! (variable-length integers, no field names), fast, and stable by specification
//! (postcard 1.x wire format is frozen). It is not self-describing, so any change to a
//! stored type is a change of data format: bump [`FORMAT_VERSION`] and migrate.
//!
//! The `meta` table holds the format version. On open, a file with a newer or missing
//! version fails with [`StoreError::Format`]; a file redb cannot read (truncated,
//! garbage, a checksum mismatch) fails with [`StoreError::Corrupt`]. Both name the file,
//! and neither panics or resets the file: the file is checked page by page on open, and
//! a panic inside the storage engine during the open is turned into `Corrupt`.

mod durability;
mod error;
mod record;
mod redb_store;

pub use durability::{Committer, Durability, DEFAULT_COMMIT_INTERVAL};
pub use error::StoreError;
pub use record::{
    AwaitingRel, InflightStage, StoredDelivery, StoredInflight, StoredSession, StoredSubscription,
    StoredWill, SweepReport,
};
pub use redb_store::RedbStore;

use junction_types::Message;

/// The data format version this build reads and writes.
pub const FORMAT_VERSION: u64 = 2;

/// Key/value namespaces used by the broker (any other name works as well).
pub mod kv {
    /// Built-in authentication users.
    pub const USERS: &str = "authn_users";
    /// Built-in authorization rules.
    pub const AUTHZ_RULES: &str = "authz_rules";
    /// Banned clients, usernames and addresses.
    pub const BANNED: &str = "banned";
    /// HTTP API keys.
    pub const API_KEYS: &str = "api_keys";
    /// Dashboard users (the management API's logins).
    pub const DASHBOARD_USERS: &str = "dashboard_users";
    /// Configuration changes made through the API.
    pub const CONFIG_CHANGES: &str = "config_changes";
}

/// Durable broker state. Object-safe; share it as `Arc<dyn Store>`.
///
/// Writes are queued and applied by [`Store::commit`]; reads see committed state.
pub trait Store: Send + Sync {
    /// Queues `message` for storage under its id (a no-op if that id is stored already).
    /// A message no session record or retained entry refers to is removed by the second
    /// [`Store::sweep_expired`] after it is put.
    fn put_message(&self, message: &Message) -> Result<(), StoreError>;
    /// The committed message with this id.
    fn get_message(&self, id: u64) -> Result<Option<Message>, StoreError>;
    /// Number of committed messages.
    fn message_count(&self) -> Result<u64, StoreError>;
    /// The highest message id ever committed (0 if none): restart the id counter above it.
    fn message_id_high_water(&self) -> Result<u64, StoreError>;

    /// Queues a session record, replacing any with the same namespace and client id.
    /// The messages it refers to must be put (in this batch or before).
    fn put_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// Queues the removal of a session record.
    fn delete_session(&self, namespace: &str, client_id: &str) -> Result<(), StoreError>;
    /// The committed session record.
    fn get_session(
        &self,
        namespace: &str,
        client_id: &str,
    ) -> Result<Option<StoredSession>, StoreError>;
    /// Every committed session record, by namespace then client id.
    fn list_sessions(&self) -> Result<Vec<StoredSession>, StoreError>;

    /// Queues one delivery of a session's message queue under sequence number `seq`
    /// (replacing any entry with that number). The queue of a session is kept apart from
    /// its record, one entry per message, so that a long queue is written as it grows
    /// and shrinks rather than whole on every change. [`Store::get_session`] and
    /// [`Store::list_sessions`] return it after the record's own `queued`, by `seq`.
    /// The message must be put (in this batch or before).
    fn queue_put(
        &self,
        namespace: &str,
        client_id: &str,
        seq: u64,
        delivery: &StoredDelivery,
    ) -> Result<(), StoreError>;
    /// Queues the removal of a session's queue entries numbered below `seq` (all of them
    /// with `u64::MAX`). Removing the session record removes its queue as well.
    fn queue_trim(&self, namespace: &str, client_id: &str, seq: u64) -> Result<(), StoreError>;

    /// Queues `message` as the retained message of its topic (stores the message too).
    fn put_retained(&self, message: &Message) -> Result<(), StoreError>;
    /// Queues the removal of the retained message of `topic`.
    fn delete_retained(&self, topic: &str) -> Result<(), StoreError>;
    /// The committed retained message of `topic` (expired or not: the broker checks).
    fn get_retained(&self, topic: &str) -> Result<Option<Message>, StoreError>;
    /// Every committed retained message, by topic.
    fn list_retained(&self) -> Result<Vec<Message>, StoreError>;

    /// Queues `value` under `key` in `namespace` (see [`kv`]).
    fn put_kv(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Queues the removal of `key` in `namespace`.
    fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError>;
    /// The committed value of `key` in `namespace`.
    fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every committed key and value of `namespace`, by key.
    fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Number of queued, uncommitted writes.
    fn pending(&self) -> usize;
    /// Applies every queued write in one transaction and waits until it is durable.
    fn commit(&self) -> Result<(), StoreError>;
    /// Commits the queued writes, then deletes sessions whose expiry deadline is at or
    /// before `now_ms`, messages expired at `now_ms` (and their retained entries), and
    /// messages no longer referred to since before the previous sweep, in one
    /// transaction; starts a new sweep epoch.
    fn sweep_expired(&self, now_ms: u64) -> Result<SweepReport, StoreError>;
    /// [`Store::sweep_expired`] without the sessions: for a running broker, which ends
    /// sessions by its own timers and deletes their records then (a session it still
    /// holds, resumed just before its deadline, must not lose its record to a sweep).
    fn sweep_messages(&self, now_ms: u64) -> Result<SweepReport, StoreError>;
}
