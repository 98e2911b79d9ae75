//! Why a configuration was refused.

use std::path::PathBuf;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The config text is not valid HOCON (or a `${substitution}` failed).
    #[error("cannot parse config {}: {message}", path.display())]
    Parse {
        /// The file, or `<string>` for text given directly.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A key is unknown or its value is refused.
    #[error("{key_path}: {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `listeners.tcp.default.bind`.
        key_path: String,
        /// What is wrong with it, e.g. `unknown key` or
        /// `invalid size "12XB" (expected e.g. "1MB")`.
        message: String,
    },
}

impl ConfigError {
    /// A bad value at `key_path`.
    pub fn invalid(key_path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key_path: key_path.into(),
            message: message.into(),
        }
    }
}
