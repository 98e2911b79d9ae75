//! [`Store`] on one redb file. The layout is described in the crate docs.

use crate::{Store, StoreError, StoredDelivery, StoredSession, SweepReport, FORMAT_VERSION};
use junction_types::Message;
use parking_lot::Mutex;
use redb::{
    Builder, Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError, Table, TableDefinition, TableError, WriteTransaction,
};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const MESSAGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("messages");
const MESSAGE_REFS: TableDefinition<'_, u64, u32> = TableDefinition::new("message_refs");
const MESSAGE_EXPIRY: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("message_expiry");
const SESSIONS: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("sessions");
const QUEUE: TableDefinition<'_, (&str, &str, u64), &[u8]> = TableDefinition::new("session_queue");
const SESSION_EXPIRY: TableDefinition<'_, (u64, &str, &str), ()> =
    TableDefinition::new("session_expiry");
const ORPHANS: TableDefinition<'_, u64, u64> = TableDefinition::new("orphans");
const RETAINED: TableDefinition<'_, &str, u64> = TableDefinition::new("retained");
const KV: TableDefinition<'_, (&str, &str), &[u8]> = TableDefinition::new("kv");

const FORMAT_VERSION_KEY: &str = "format_version";
const HIGH_WATER_KEY: &str = "message_id_high_water";
const SWEEP_EPOCH_KEY: &str = "sweep_epoch";

/// A [`Store`] in one redb file.
pub struct RedbStore {
    path: PathBuf,
    db: Database,
    /// Writes queued since the last commit.
    pending: Mutex<Vec<Op>>,
    /// Held for the whole of a commit, so that a caller whose writes are in a running
    /// commit waits for it before finding the queue empty (group commit).
    /// Lock order: `commit_lock` → `pending`; `pending` is never held across IO.
    commit_lock: Mutex<()>,
}

/// One queued write, encoded when queued.
enum Op {
    PutMessage {
        id: u64,
        expires_at_ms: Option<u64>,
        bytes: Vec<u8>,
    },
    PutSession {
        namespace: String,
        client_id: String,
        bytes: Vec<u8>,
        message_ids: BTreeSet<u64>,
        expiry_deadline_ms: Option<u64>,
    },
    DeleteSession {
        namespace: String,
        client_id: String,
    },
    QueuePut {
        namespace: String,
        client_id: String,
        seq: u64,
        message_id: u64,
        bytes: Vec<u8>,
    },
    QueueTrim {
        namespace: String,
        client_id: String,
        below: u64,
    },
    PutRetained {
        topic: String,
        message_id: u64,
    },
    DeleteRetained {
        topic: String,
    },
    PutKv {
        namespace: String,
        key: String,
        value: Vec<u8>,
    },
    DeleteKv {
        namespace: String,
        key: String,
    },
}

/// An internal failure, given the file's path at the API boundary.
enum Fault {
    Engine(redb::Error),
    Decode(String),
}

impl From<StorageError> for Fault {
    fn from(e: StorageError) -> Self {
        Fault::Engine(e.into())
    }
}
impl From<TableError> for Fault {
    fn from(e: TableError) -> Self {
        Fault::Engine(e.into())
    }
}
impl From<redb::TransactionError> for Fault {
    fn from(e: redb::TransactionError) -> Self {
        Fault::Engine(e.into())
    }
}
impl From<redb::CommitError> for Fault {
    fn from(e: redb::CommitError) -> Self {
        Fault::Engine(e.into())
    }
}

impl Fault {
    fn at(self, path: &Path) -> StoreError {
        let path = path.to_path_buf();
        match self {
            Fault::Decode(reason) => StoreError::Corrupt { path, reason },
            Fault::Engine(redb::Error::Corrupted(reason)) => StoreError::Corrupt { path, reason },
            Fault::Engine(redb::Error::Io(source)) => StoreError::Io { path, source },
            Fault::Engine(e) => StoreError::Backend {
                path,
                reason: e.to_string(),
            },
        }
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl FnOnce() -> String) -> Result<T, Fault> {
    postcard::from_bytes(bytes)
        .map_err(|e| Fault::Decode(format!("{} does not decode: {e}", what())))
}

impl RedbStore {
    /// Opens the data file at `path`, creating it (and a fresh layout) if it does not
    /// exist or is empty.
    ///
    /// Fails with [`StoreError::Corrupt`] for a file redb cannot read, and with
    /// [`StoreError::Format`] for a file whose data format version is newer than
    /// [`FORMAT_VERSION`] or missing; never resets an existing file.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opened = catch_unwind(AssertUnwindSafe(|| {
            // Verify every page's checksum on open: a file damaged outside redb is then
            // reported as corrupt instead of being trusted.
            Builder::new()
                .set_check_integrity_on_open(true)
                .create(&path)
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(open_error(&path, e)),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown failure".into());
                return Err(StoreError::Corrupt {
                    path,
                    reason: format!("the storage engine failed reading it: {what}"),
                });
            }
        };
        let store = RedbStore {
            path,
            db,
            pending: Mutex::new(Vec::new()),
            commit_lock: Mutex::new(()),
        };
        store.check_format()?;
        Ok(store)
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the format version, writing it (and creating every table) in a new file.
    fn check_format(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.fault(e))?;
        let is_new = txn
            .list_tables()
            .map_err(|e| self.fault(e))?
            .next()
            .is_none()
            && txn
                .list_multimap_tables()
                .map_err(|e| self.fault(e))?
                .next()
                .is_none();
        let found = if is_new {
            None
        } else {
            match txn.open_table(META) {
                Ok(meta) => match meta.get(FORMAT_VERSION_KEY) {
                    Ok(v) => v.map(|v| v.value()),
                    Err(e) => return Err(self.fault(e)),
                },
                // Absent, or written with other key/value types: not our layout.
                Err(TableError::TableTypeMismatch { .. })
                | Err(TableError::TableDoesNotExist(_)) => None,
                Err(TableError::TypeDefinitionChanged { .. })
                | Err(TableError::TableIsMultimap(_)) => None,
                Err(e) => return Err(self.fault(e)),
            }
        };
        // Version 1 (retained messages only; no session was ever written in it) becomes
        // version 2 (session records with a will delay, and the session_queue table)
        // by creating the new table and recording the new version.
        let migrate = match found {
            Some(FORMAT_VERSION) => false,
            None if is_new => false,
            Some(1) if self.no_sessions(&txn)? => true,
            found => {
                return Err(StoreError::Format {
                    path: self.path.clone(),
                    found,
                    supported: FORMAT_VERSION,
                })
            }
        };
        // Opening creates missing tables, so later read transactions find every one.
        let created = Tables::open(&txn).and_then(|mut t| {
            if is_new || migrate {
                t.meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
            }
            Ok(())
        });
        created.map_err(|f| f.at(&self.path))?;
        txn.commit().map_err(|e| self.fault(e))
    }

    /// True if the file has no session record (absent table or an empty one).
    fn no_sessions(&self, txn: &WriteTransaction) -> Result<bool, StoreError> {
        match txn.open_table(SESSIONS) {
            Ok(t) => t.is_empty().map_err(|e| self.fault(e)),
            Err(TableError::TableDoesNotExist(_)) => Ok(true),
            Err(e) => Err(self.fault(e)),
        }
    }

    fn fault(&self, e: impl Into<Fault>) -> StoreError {
        e.into().at(&self.path)
    }

    fn queue(&self, op: Op) {
        self.pending.lock().push(op);
    }

    fn encode<T: serde::Serialize>(
        &self,
        what: &'static str,
        value: &T,
    ) -> Result<Vec<u8>, StoreError> {
        postcard::to_allocvec(value).map_err(|e| StoreError::Encode {
            path: self.path.clone(),
            what,
            reason: e.to_string(),
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, Fault>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.fault(e))?;
        f(&txn).map_err(|e| e.at(&self.path))
    }

    /// Applies `ops` then runs `then`, in one write transaction; on failure puts `ops`
    /// back in the queue. The caller holds `commit_lock`.
    fn apply_or_requeue<T>(
        &self,
        ops: Vec<Op>,
        then: impl FnOnce(&mut Applier<'_>) -> Result<T, Fault>,
    ) -> Result<T, StoreError> {
        let result = self.apply(&ops, then);
        if result.is_err() && !ops.is_empty() {
            // Keep the batch, ahead of what was queued meanwhile, for the next commit.
            let mut pending = self.pending.lock();
            let newer = std::mem::replace(&mut *pending, ops);
            pending.extend(newer);
        }
        result.map_err(|f| f.at(&self.path))
    }

    fn apply<T>(
        &self,
        ops: &[Op],
        then: impl FnOnce(&mut Applier<'_>) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let txn = self.db.begin_write()?;
        let out = {
            let t = Tables::open(&txn)?;
            let epoch = t.meta.get(SWEEP_EPOCH_KEY)?.map(|v| v.value()).unwrap_or(0);
            let mut applier = Applier {
                t,
                epoch,
                removed_messages: 0,
            };
            for op in ops {
                applier.apply(op)?;
            }
            then(&mut applier)?
        };
        txn.commit()?;
        Ok(out)
    }

    fn read_message(txn: &ReadTransaction, id: u64) -> Result<Option<Message>, Fault> {
        let messages = txn.open_table(MESSAGES)?;
        let found = messages.get(id)?;
        match found {
            Some(bytes) => decode(bytes.value(), || format!("message {id}")).map(Some),
            None => Ok(None),
        }
    }
}

/// Appends a session's queue table entries, by sequence number, to its record's `queued`.
fn read_queue(txn: &ReadTransaction, s: &mut StoredSession) -> Result<(), Fault> {
    let queue = txn.open_table(QUEUE)?;
    let (ns, id) = (s.namespace.as_str(), s.client_id.as_str());
    for entry in queue.range((ns, id, 0)..=(ns, id, u64::MAX))? {
        let (key, value) = entry?;
        let seq = key.value().2;
        s.queued.push(decode(value.value(), || {
            format!("queue entry {ns:?}/{id:?}/{seq}")
        })?);
    }
    Ok(())
}

/// Maps a failed open to the error the operator sees.
fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path },
        DatabaseError::UpgradeRequired(v) => StoreError::Unsupported {
            path,
            reason: format!(
                "written in redb file format {v}, which this build must upgrade before it can read it"
            ),
        },
        DatabaseError::Storage(StorageError::Corrupted(reason)) => StoreError::Corrupt { path, reason },
        DatabaseError::Storage(StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            StoreError::Corrupt {
                path,
                reason: source.to_string(),
            }
        }
        DatabaseError::Storage(StorageError::Io(source)) => StoreError::Io { path, source },
        other => StoreError::Backend {
            path,
            reason: other.to_string(),
        },
    }
}

/// Every table, open in one write transaction.
struct Tables<'t> {
    meta: Table<'t, &'static str, u64>,
    messages: Table<'t, u64, &'static [u8]>,
    refs: Table<'t, u64, u32>,
    orphans: Table<'t, u64, u64>,
    message_expiry: Table<'t, (u64, u64), ()>,
    sessions: Table<'t, (&'static str, &'static str), &'static [u8]>,
    queue: Table<'t, (&'static str, &'static str, u64), &'static [u8]>,
    session_expiry: Table<'t, (u64, &'static str, &'static str), ()>,
    retained: Table<'t, &'static str, u64>,
    kv: Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self, Fault> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            messages: txn.open_table(MESSAGES)?,
            refs: txn.open_table(MESSAGE_REFS)?,
            orphans: txn.open_table(ORPHANS)?,
            message_expiry: txn.open_table(MESSAGE_EXPIRY)?,
            sessions: txn.open_table(SESSIONS)?,
            queue: txn.open_table(QUEUE)?,
            session_expiry: txn.open_table(SESSION_EXPIRY)?,
            retained: txn.open_table(RETAINED)?,
            kv: txn.open_table(KV)?,
        })
    }
}

/// Applies writes inside one transaction, keeping the reference counts.
struct Applier<'t> {
    t: Tables<'t>,
    /// The sweep epoch: sweeps counted since the file was made. A message that becomes
    /// unreferenced is recorded in `orphans` with it, and only a sweep of a later epoch
    /// deletes it, so the broker has a whole sweep interval to refer to a message it has
    /// just put (or to move it from one record to another) whatever the commits between.
    epoch: u64,
    removed_messages: usize,
}

impl Applier<'_> {
    fn apply(&mut self, op: &Op) -> Result<(), Fault> {
        match op {
            Op::PutMessage {
                id,
                expires_at_ms,
                bytes,
            } => self.put_message(*id, *expires_at_ms, bytes),
            Op::PutSession {
                namespace,
                client_id,
                bytes,
                message_ids,
                expiry_deadline_ms,
            } => self.put_session(
                namespace,
                client_id,
                Some((bytes, message_ids, *expiry_deadline_ms)),
            ),
            Op::DeleteSession {
                namespace,
                client_id,
            } => self.put_session(namespace, client_id, None),
            Op::QueuePut {
                namespace,
                client_id,
                seq,
                message_id,
                bytes,
            } => {
                let old = self
                    .t
                    .queue
                    .insert(
                        (namespace.as_str(), client_id.as_str(), *seq),
                        bytes.as_slice(),
                    )?
                    .map(|v| v.value().to_vec());
                self.add_ref(*message_id)?;
                if let Some(old) = old {
                    let d: StoredDelivery = decode(&old, || {
                        format!("queue entry {namespace:?}/{client_id:?}/{seq}")
                    })?;
                    self.drop_ref(d.message_id)?;
                }
                Ok(())
            }
            Op::QueueTrim {
                namespace,
                client_id,
                below,
            } => self.trim_queue(namespace, client_id, *below),
            Op::PutRetained { topic, message_id } => {
                let old = self
                    .t
                    .retained
                    .insert(topic.as_str(), *message_id)?
                    .map(|v| v.value());
                if old != Some(*message_id) {
                    self.add_ref(*message_id)?;
                    if let Some(old) = old {
                        self.drop_ref(old)?;
                    }
                }
                Ok(())
            }
            Op::DeleteRetained { topic } => {
                let old = self.t.retained.remove(topic.as_str())?.map(|v| v.value());
                if let Some(old) = old {
                    self.drop_ref(old)?;
                }
                Ok(())
            }
            Op::PutKv {
                namespace,
                key,
                value,
            } => {
                self.t
                    .kv
                    .insert((namespace.as_str(), key.as_str()), value.as_slice())?;
                Ok(())
            }
            Op::DeleteKv { namespace, key } => {
                self.t.kv.remove((namespace.as_str(), key.as_str()))?;
                Ok(())
            }
        }
    }

    fn put_message(
        &mut self,
        id: u64,
        expires_at_ms: Option<u64>,
        bytes: &[u8],
    ) -> Result<(), Fault> {
        let referenced = self.t.refs.get(id)?.is_some();
        if self.t.messages.get(id)?.is_some() {
            // Put again: whoever puts it is about to refer to it.
            if !referenced && self.t.orphans.get(id)?.is_some() {
                self.t.orphans.insert(id, self.epoch)?;
            }
            return Ok(());
        }
        self.t.messages.insert(id, bytes)?;
        if let Some(at) = expires_at_ms {
            self.t.message_expiry.insert((at, id), ())?;
        }
        let high_water = self.t.meta.get(HIGH_WATER_KEY)?.map(|v| v.value());
        if high_water.is_none_or(|h| id > h) {
            self.t.meta.insert(HIGH_WATER_KEY, id)?;
        }
        if !referenced {
            self.t.orphans.insert(id, self.epoch)?;
        }
        Ok(())
    }

    /// Replaces (or with `None` removes) a session record, moving the message references
    /// and the expiry index entry from the old record to the new one.
    fn put_session(
        &mut self,
        namespace: &str,
        client_id: &str,
        new: Option<(&Vec<u8>, &BTreeSet<u64>, Option<u64>)>,
    ) -> Result<(), Fault> {
        let old = match self.t.sessions.get((namespace, client_id))? {
            Some(bytes) => Some(decode::<StoredSession>(bytes.value(), || {
                format!("session record {namespace:?}/{client_id:?}")
            })?),
            None => None,
        };
        let no_ids = BTreeSet::new();
        let old_ids = old.as_ref().map(|s| s.message_ids()).unwrap_or_default();
        let new_ids = new.map(|(_, ids, _)| ids).unwrap_or(&no_ids);
        for id in new_ids.difference(&old_ids) {
            self.add_ref(*id)?;
        }
        for id in old_ids.difference(new_ids) {
            self.drop_ref(*id)?;
        }
        if let Some(deadline) = old.and_then(|s| s.expiry_deadline_ms) {
            self.t
                .session_expiry
                .remove((deadline, namespace, client_id))?;
        }
        match new {
            Some((bytes, _, deadline)) => {
                self.t
                    .sessions
                    .insert((namespace, client_id), bytes.as_slice())?;
                if let Some(deadline) = deadline {
                    self.t
                        .session_expiry
                        .insert((deadline, namespace, client_id), ())?;
                }
            }
            None => {
                self.t.sessions.remove((namespace, client_id))?;
                self.trim_queue(namespace, client_id, u64::MAX)?;
            }
        }
        Ok(())
    }

    /// Removes a session's queue entries numbered below `below`, with their references.
    fn trim_queue(&mut self, namespace: &str, client_id: &str, below: u64) -> Result<(), Fault> {
        let mut gone = Vec::new();
        for entry in self
            .t
            .queue
            .range((namespace, client_id, 0)..(namespace, client_id, below))?
        {
            let (key, value) = entry?;
            let seq = key.value().2;
            let d: StoredDelivery = decode(value.value(), || {
                format!("queue entry {namespace:?}/{client_id:?}/{seq}")
            })?;
            gone.push((seq, d.message_id));
        }
        for (seq, message_id) in gone {
            self.t.queue.remove((namespace, client_id, seq))?;
            self.drop_ref(message_id)?;
        }
        Ok(())
    }

    fn add_ref(&mut self, id: u64) -> Result<(), Fault> {
        let count = self.t.refs.get(id)?.map(|v| v.value()).unwrap_or(0);
        self.t.refs.insert(id, count.saturating_add(1))?;
        if count == 0 {
            self.t.orphans.remove(id)?;
        }
        Ok(())
    }

    fn drop_ref(&mut self, id: u64) -> Result<(), Fault> {
        let count = self.t.refs.get(id)?.map(|v| v.value()).unwrap_or(0);
        if count <= 1 {
            self.t.refs.remove(id)?;
            if self.t.messages.get(id)?.is_some() {
                self.t.orphans.insert(id, self.epoch)?;
            }
        } else {
            self.t.refs.insert(id, count - 1)?;
        }
        Ok(())
    }

    /// Deletes a message with its expiry index entry and count; returns it if it was stored.
    fn remove_message(&mut self, id: u64) -> Result<Option<Message>, Fault> {
        self.t.refs.remove(id)?;
        self.t.orphans.remove(id)?;
        let removed = match self.t.messages.remove(id)? {
            Some(bytes) => decode::<Message>(bytes.value(), || format!("message {id}"))?,
            None => return Ok(None),
        };
        if let Some(at) = removed.expires_at_ms {
            self.t.message_expiry.remove((at, id))?;
        }
        self.removed_messages += 1;
        Ok(Some(removed))
    }

    /// Deletes the messages unreferenced since an earlier epoch, and starts a new epoch.
    fn remove_orphans(&mut self) -> Result<(), Fault> {
        let mut due = Vec::new();
        for entry in self.t.orphans.iter()? {
            let (id, epoch) = entry?;
            if epoch.value() < self.epoch {
                due.push(id.value());
            }
        }
        for id in due {
            self.remove_message(id)?;
        }
        self.epoch += 1;
        self.t.meta.insert(SWEEP_EPOCH_KEY, self.epoch)?;
        Ok(())
    }

    fn sweep(&mut self, now_ms: u64, sessions: bool) -> Result<SweepReport, Fault> {
        let mut report = SweepReport::default();
        let mut due_sessions = Vec::new();
        let sessions_due_by = if sessions { now_ms } else { 0 };
        for entry in self.t.session_expiry.range::<(u64, &str, &str)>(..)? {
            let (key, _) = entry?;
            let (deadline, namespace, client_id) = key.value();
            if !sessions || deadline > sessions_due_by {
                break;
            }
            due_sessions.push((namespace.to_string(), client_id.to_string()));
        }
        for (namespace, client_id) in due_sessions {
            let will_id = match self
                .t
                .sessions
                .get((namespace.as_str(), client_id.as_str()))?
            {
                Some(bytes) => decode::<StoredSession>(bytes.value(), || {
                    format!("session record {namespace:?}/{client_id:?}")
                })?
                .will
                .map(|w| w.message_id),
                None => None,
            };
            if let Some(id) = will_id {
                let will = match self.t.messages.get(id)? {
                    Some(bytes) => Some(decode::<Message>(bytes.value(), || {
                        format!("message {id}")
                    })?),
                    None => None,
                };
                report.wills.extend(will.filter(|m| !m.is_expired(now_ms)));
            }
            self.put_session(&namespace, &client_id, None)?;
            report.sessions += 1;
        }

        let mut due_messages = Vec::new();
        for entry in self.t.message_expiry.range::<(u64, u64)>(..)? {
            let (key, _) = entry?;
            let (expires_at, id) = key.value();
            if expires_at > now_ms {
                break;
            }
            due_messages.push(id);
        }
        for id in due_messages {
            let Some(message) = self.remove_message(id)? else {
                continue;
            };
            let retained_here =
                self.t.retained.get(&*message.topic)?.map(|v| v.value()) == Some(id);
            if retained_here {
                self.t.retained.remove(&*message.topic)?;
                report.retained += 1;
            }
        }
        self.remove_orphans()?;
        report.messages = self.removed_messages;
        Ok(report)
    }
}

impl Store for RedbStore {
    fn put_message(&self, message: &Message) -> Result<(), StoreError> {
        let bytes = self.encode("message", message)?;
        self.queue(Op::PutMessage {
            id: message.id,
            expires_at_ms: message.expires_at_ms,
            bytes,
        });
        Ok(())
    }

    fn get_message(&self, id: u64) -> Result<Option<Message>, StoreError> {
        self.read(|txn| Self::read_message(txn, id))
    }

    fn message_count(&self) -> Result<u64, StoreError> {
        self.read(|txn| Ok(txn.open_table(MESSAGES)?.len()?))
    }

    fn message_id_high_water(&self) -> Result<u64, StoreError> {
        self.read(|txn| {
            let meta = txn.open_table(META)?;
            let value = meta.get(HIGH_WATER_KEY)?.map(|v| v.value());
            Ok(value.unwrap_or(0))
        })
    }

    fn put_session(&self, session: &StoredSession) -> Result<(), StoreError> {
        let bytes = self.encode("session", session)?;
        self.queue(Op::PutSession {
            namespace: session.namespace.clone(),
            client_id: session.client_id.clone(),
            bytes,
            message_ids: session.message_ids(),
            expiry_deadline_ms: session.expiry_deadline_ms,
        });
        Ok(())
    }

    fn delete_session(&self, namespace: &str, client_id: &str) -> Result<(), StoreError> {
        self.queue(Op::DeleteSession {
            namespace: namespace.into(),
            client_id: client_id.into(),
        });
        Ok(())
    }

    fn get_session(
        &self,
        namespace: &str,
        client_id: &str,
    ) -> Result<Option<StoredSession>, StoreError> {
        self.read(|txn| {
            let sessions = txn.open_table(SESSIONS)?;
            let found = sessions.get((namespace, client_id))?;
            match found {
                Some(bytes) => {
                    let mut s: StoredSession = decode(bytes.value(), || {
                        format!("session record {namespace:?}/{client_id:?}")
                    })?;
                    read_queue(txn, &mut s)?;
                    Ok(Some(s))
                }
                None => Ok(None),
            }
        })
    }

    fn list_sessions(&self) -> Result<Vec<StoredSession>, StoreError> {
        self.read(|txn| {
            let sessions = txn.open_table(SESSIONS)?;
            let mut out = Vec::new();
            for entry in sessions.iter()? {
                let (key, value) = entry?;
                let (namespace, client_id) = key.value();
                let mut s: StoredSession = decode(value.value(), || {
                    format!("session record {namespace:?}/{client_id:?}")
                })?;
                read_queue(txn, &mut s)?;
                out.push(s);
            }
            Ok(out)
        })
    }

    fn queue_put(
        &self,
        namespace: &str,
        client_id: &str,
        seq: u64,
        delivery: &StoredDelivery,
    ) -> Result<(), StoreError> {
        let bytes = self.encode("queue entry", delivery)?;
        self.queue(Op::QueuePut {
            namespace: namespace.into(),
            client_id: client_id.into(),
            seq,
            message_id: delivery.message_id,
            bytes,
        });
        Ok(())
    }

    fn queue_trim(&self, namespace: &str, client_id: &str, seq: u64) -> Result<(), StoreError> {
        self.queue(Op::QueueTrim {
            namespace: namespace.into(),
            client_id: client_id.into(),
            below: seq,
        });
        Ok(())
    }

    fn put_retained(&self, message: &Message) -> Result<(), StoreError> {
        let bytes = self.encode("message", message)?;
        let mut pending = self.pending.lock();
        pending.push(Op::PutMessage {
            id: message.id,
            expires_at_ms: message.expires_at_ms,
            bytes,
        });
        pending.push(Op::PutRetained {
            topic: message.topic.to_string(),
            message_id: message.id,
        });
        Ok(())
    }

    fn delete_retained(&self, topic: &str) -> Result<(), StoreError> {
        self.queue(Op::DeleteRetained {
            topic: topic.into(),
        });
        Ok(())
    }

    fn get_retained(&self, topic: &str) -> Result<Option<Message>, StoreError> {
        self.read(|txn| {
            let retained = txn.open_table(RETAINED)?;
            let id = retained.get(topic)?.map(|v| v.value());
            match id {
                Some(id) => Self::read_message(txn, id),
                None => Ok(None),
            }
        })
    }

    fn list_retained(&self) -> Result<Vec<Message>, StoreError> {
        self.read(|txn| {
            let retained = txn.open_table(RETAINED)?;
            let mut out = Vec::new();
            for entry in retained.iter()? {
                let (_, id) = entry?;
                // An entry whose message is gone (expired, not yet swept) is skipped.
                out.extend(Self::read_message(txn, id.value())?);
            }
            Ok(out)
        })
    }

    fn put_kv(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.queue(Op::PutKv {
            namespace: namespace.into(),
            key: key.into(),
            value: value.to_vec(),
        });
        Ok(())
    }

    fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.queue(Op::DeleteKv {
            namespace: namespace.into(),
            key: key.into(),
        });
        Ok(())
    }

    fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            let value = kv.get((namespace, key))?.map(|v| v.value().to_vec());
            Ok(value)
        })
    }

    fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let kv = txn.open_table(KV)?;
            let mut out = Vec::new();
            for entry in kv.range((namespace, "")..)? {
                let (key, value) = entry?;
                let (ns, key) = key.value();
                if ns != namespace {
                    break;
                }
                out.push((key.to_string(), value.value().to_vec()));
            }
            Ok(out)
        })
    }

    fn pending(&self) -> usize {
        self.pending.lock().len()
    }

    fn commit(&self) -> Result<(), StoreError> {
        // Taken before looking at the queue: a caller whose writes are in a running
        // commit waits here until they are durable, then finds the queue empty.
        let _commit = self.commit_lock.lock();
        let ops = std::mem::take(&mut *self.pending.lock());
        if ops.is_empty() {
            return Ok(());
        }
        self.apply_or_requeue(ops, |_| Ok(()))
    }

    fn sweep_expired(&self, now_ms: u64) -> Result<SweepReport, StoreError> {
        let _commit = self.commit_lock.lock();
        let ops = std::mem::take(&mut *self.pending.lock());
        self.apply_or_requeue(ops, |applier| applier.sweep(now_ms, true))
    }

    fn sweep_messages(&self, now_ms: u64) -> Result<SweepReport, StoreError> {
        let _commit = self.commit_lock.lock();
        let ops = std::mem::take(&mut *self.pending.lock());
        self.apply_or_requeue(ops, |applier| applier.sweep(now_ms, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoredDelivery, StoredWill};
    use junction_types::{MessageProperties, QoS};

    fn message(id: u64, topic: &str, expires_at_ms: Option<u64>) -> Message {
        Message {
            id,
            topic: topic.into(),
            payload: format!("payload {id}").into_bytes().into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: MessageProperties::default(),
            expires_at_ms,
            received_at_ms: 1,
            from: "publisher".into(),
            namespace: "".into(),
        }
    }

    fn queued(id: u64) -> StoredDelivery {
        StoredDelivery {
            message_id: id,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![],
        }
    }

    fn refs(store: &RedbStore, id: u64) -> Option<u32> {
        store
            .read(|txn| Ok(txn.open_table(MESSAGE_REFS)?.get(id)?.map(|v| v.value())))
            .ok()
            .flatten()
    }

    fn open_temp() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path().join("junction.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn reference_count_follows_session_records() {
        let (_dir, store) = open_temp();
        store.put_message(&message(1, "t", None)).unwrap();
        let mut a = StoredSession::new("", "a");
        a.queued = vec![queued(1), queued(1)];
        store.put_session(&a).unwrap();
        let mut b = StoredSession::new("", "b");
        b.will = Some(StoredWill {
            message_id: 1,
            publish_at_ms: None,
            delay_secs: 0,
        });
        store.put_session(&b).unwrap();
        store.commit().unwrap();
        // Counted once per record, however often a record names it.
        assert_eq!(refs(&store, 1), Some(2));
        a.queued.clear();
        store.put_session(&a).unwrap();
        store.commit().unwrap();
        assert_eq!(refs(&store, 1), Some(1));
        store.delete_session("", "b").unwrap();
        store.commit().unwrap();
        assert_eq!(refs(&store, 1), None);
        assert_eq!(store.sweep_expired(0).unwrap().messages, 0);
        assert_eq!(store.sweep_expired(0).unwrap().messages, 1);
        assert_eq!(store.get_message(1).unwrap(), None);
    }

    #[test]
    fn message_moved_between_records_in_one_batch_survives() {
        let (_dir, store) = open_temp();
        store.put_message(&message(7, "t", None)).unwrap();
        let mut a = StoredSession::new("", "a");
        a.queued = vec![queued(7)];
        store.put_session(&a).unwrap();
        store.commit().unwrap();
        a.queued.clear();
        store.put_session(&a).unwrap();
        let mut b = StoredSession::new("", "b");
        b.queued = vec![queued(7)];
        store.put_session(&b).unwrap();
        store.commit().unwrap();
        assert!(store.get_message(7).unwrap().is_some());
        assert_eq!(refs(&store, 7), Some(1));
    }

    #[test]
    fn unreferenced_message_lives_one_full_sweep_interval() {
        let (_dir, store) = open_temp();
        store.put_message(&message(3, "t", None)).unwrap();
        store.commit().unwrap();
        // A sweep between the put and the session that refers to it keeps it.
        store.sweep_expired(0).unwrap();
        let mut s = StoredSession::new("", "late");
        s.queued = vec![queued(3)];
        store.put_session(&s).unwrap();
        store.commit().unwrap();
        store.sweep_expired(0).unwrap();
        store.sweep_expired(0).unwrap();
        assert!(store.get_message(3).unwrap().is_some());
        // Once nothing refers to it, the second sweep after that removes it.
        store.delete_session("", "late").unwrap();
        store.commit().unwrap();
        store.sweep_expired(0).unwrap();
        assert_eq!(store.message_count().unwrap(), 1);
        store.sweep_expired(0).unwrap();
        assert_eq!(store.message_count().unwrap(), 0);
        // The id still counts for the high-water mark: it may have been handed out.
        assert_eq!(store.message_id_high_water().unwrap(), 3);
    }

    #[test]
    fn queue_entries_are_read_in_order_counted_trimmed_and_go_with_the_session() {
        let (_dir, store) = open_temp();
        for id in 1..=4 {
            store.put_message(&message(id, "q", None)).unwrap();
        }
        let mut s = StoredSession::new("gw", "q");
        s.queued = vec![queued(1)];
        store.put_session(&s).unwrap();
        // Written out of order; read back by sequence number, after the record's own.
        for (seq, id) in [(12, 4), (10, 2), (11, 3)] {
            store.queue_put("gw", "q", seq, &queued(id)).unwrap();
        }
        store.commit().unwrap();
        let ids = |store: &RedbStore| -> Vec<u64> {
            store
                .get_session("gw", "q")
                .unwrap()
                .map(|s| s.queued.iter().map(|d| d.message_id).collect())
                .unwrap_or_default()
        };
        assert_eq!(ids(&store), vec![1, 2, 3, 4]);
        assert_eq!(store.list_sessions().unwrap()[0].queued.len(), 4);
        assert_eq!(refs(&store, 2), Some(1));
        // Trimming below 12 drops 10 and 11 and their references.
        store.queue_trim("gw", "q", 12).unwrap();
        store.commit().unwrap();
        assert_eq!(ids(&store), vec![1, 4]);
        assert_eq!(refs(&store, 2), None);
        store.sweep_expired(0).unwrap();
        store.sweep_expired(0).unwrap();
        assert!(
            store.get_message(2).unwrap().is_none(),
            "unreferenced: swept"
        );
        assert!(
            store.get_message(4).unwrap().is_some(),
            "still queued: kept"
        );
        // Replacing an entry moves the reference.
        store.queue_put("gw", "q", 12, &queued(1)).unwrap();
        store.commit().unwrap();
        assert_eq!((refs(&store, 4), refs(&store, 1)), (None, Some(2)));
        // The record's removal takes the queue with it.
        store.delete_session("gw", "q").unwrap();
        store.commit().unwrap();
        assert_eq!(ids(&store), Vec::<u64>::new());
        assert_eq!(refs(&store, 1), None);
        store.queue_put("gw", "q", 1, &queued(1)).unwrap();
        store.put_session(&StoredSession::new("gw", "q")).unwrap();
        store.commit().unwrap();
        assert_eq!(
            ids(&store),
            vec![1],
            "a new queue starts empty but for what is put"
        );
    }

    #[test]
    fn replacing_retained_message_drops_the_old_one() {
        let (_dir, store) = open_temp();
        store.put_retained(&message(1, "r", None)).unwrap();
        store.commit().unwrap();
        store.put_retained(&message(2, "r", None)).unwrap();
        store.commit().unwrap();
        assert_eq!(store.get_retained("r").unwrap().map(|m| m.id), Some(2));
        assert_eq!(refs(&store, 1), None);
        assert_eq!(refs(&store, 2), Some(1));
        store.delete_retained("r").unwrap();
        store.commit().unwrap();
        store.sweep_expired(0).unwrap();
        store.sweep_expired(0).unwrap();
        assert_eq!(store.message_count().unwrap(), 0);
    }

    #[test]
    fn sweep_returns_unexpired_will_of_expired_session() {
        let (_dir, store) = open_temp();
        store.put_message(&message(9, "will", None)).unwrap();
        let mut s = StoredSession::new("stomp", "c");
        s.expiry_deadline_ms = Some(100);
        s.will = Some(StoredWill {
            message_id: 9,
            publish_at_ms: Some(150),
            delay_secs: 0,
        });
        store.put_session(&s).unwrap();
        store.commit().unwrap();
        let report = store.sweep_expired(99).unwrap();
        assert_eq!(report, SweepReport::default());
        let report = store.sweep_expired(100).unwrap();
        assert_eq!(report.sessions, 1);
        assert_eq!(
            report.messages, 0,
            "the will message waits for the next sweep"
        );
        assert_eq!(
            report.wills.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![9]
        );
        assert_eq!(store.get_session("stomp", "c").unwrap(), None);
        assert_eq!(store.sweep_expired(100).unwrap().messages, 1);
    }

    #[test]
    fn undecodable_session_record_is_reported_as_corrupt() {
        let (_dir, store) = open_temp();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(SESSIONS)
            .unwrap()
            .insert(("", "bad"), &[0xff_u8, 0xff, 0xff][..])
            .unwrap();
        txn.commit().unwrap();
        let err = store.get_session("", "bad").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("junction.db"), "{err}");
        // A write over it fails the same way, and the batch stays pending.
        store.delete_session("", "bad").unwrap();
        assert!(matches!(store.commit(), Err(StoreError::Corrupt { .. })));
        assert_eq!(store.pending(), 1);
    }

    #[test]
    fn later_write_in_a_batch_wins() {
        let (_dir, store) = open_temp();
        store.put_kv("ns", "k", b"1").unwrap();
        store.put_kv("ns", "k", b"2").unwrap();
        store.commit().unwrap();
        assert_eq!(store.get_kv("ns", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }
}
