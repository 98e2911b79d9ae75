//! The one error type of the store. Every variant names the data file, so that a start
//! that fails on it tells the operator which file to look at.

use std::fmt;
use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is not a database the storage engine can read (truncated, overwritten,
    /// a checksum mismatch), or a record in it does not decode.
    #[error("data file {}: corrupt or not a Junction data file: {reason}", path.display())]
    Corrupt {
        /// The data file.
        path: PathBuf,
        /// What was found wrong.
        reason: String,
    },
    /// The file carries a data format version this build does not read: newer than this
    /// build, or missing / invalid.
    #[error(
        "data file {}: data format version {} is not supported (this build reads version {supported}); \
         use a Junction release that wrote it, or move the file away to start empty",
        path.display(),
        FoundVersion(*found)
    )]
    Format {
        /// The data file.
        path: PathBuf,
        /// The version stored in the file; `None` when it is missing or not a number.
        found: Option<u64>,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The file is written in an older storage-engine file format that must be upgraded
    /// before this build can open it.
    #[error("data file {}: {reason}", path.display())]
    Unsupported {
        /// The data file.
        path: PathBuf,
        /// What the storage engine reported.
        reason: String,
    },
    /// Another process (or another store in this one) has the file open.
    #[error("data file {}: already open by another process", path.display())]
    Locked {
        /// The data file.
        path: PathBuf,
    },
    /// The file could not be opened, read or written.
    #[error("data file {}: {source}", path.display())]
    Io {
        /// The data file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Any other storage-engine failure (a failed transaction or commit).
    #[error("data file {}: storage engine error: {reason}", path.display())]
    Backend {
        /// The data file.
        path: PathBuf,
        /// What the storage engine reported.
        reason: String,
    },
    /// A value could not be encoded (a bug, not a property of the file).
    #[error("data file {}: cannot encode {what}: {reason}", path.display())]
    Encode {
        /// The data file.
        path: PathBuf,
        /// Which kind of record.
        what: &'static str,
        /// What the encoder reported.
        reason: String,
    },
    /// The background committer thread could not be started or stopped.
    #[error("store committer thread: {0}")]
    Committer(String),
}

/// Displays a found format version, `missing` for `None`.
struct FoundVersion(Option<u64>);

impl fmt::Display for FoundVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("(missing or invalid)"),
        }
    }
}
