//! The fifteen STOMP commands (STOMP 1.2, "Augmented BNF": `client-command`,
//! `server-command`).

use std::fmt;

/// A frame's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `CONNECT` (client).
    Connect,
    /// `STOMP` (client; the 1.1+ spelling of CONNECT).
    Stomp,
    /// `SEND` (client).
    Send,
    /// `SUBSCRIBE` (client).
    Subscribe,
    /// `UNSUBSCRIBE` (client).
    Unsubscribe,
    /// `ACK` (client).
    Ack,
    /// `NACK` (client, 1.1+).
    Nack,
    /// `BEGIN` (client).
    Begin,
    /// `COMMIT` (client).
    Commit,
    /// `ABORT` (client).
    Abort,
    /// `DISCONNECT` (client).
    Disconnect,
    /// `CONNECTED` (server).
    Connected,
    /// `MESSAGE` (server).
    Message,
    /// `RECEIPT` (server).
    Receipt,
    /// `ERROR` (server).
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// Length of the longest command name (`UNSUBSCRIBE`).
    pub(crate) const MAX_LEN: usize = 11;

    /// The command as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL); commands are case-sensitive.
    pub fn from_bytes(line: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|command| command.as_str().as_bytes() == line)
    }

    /// Whether some command starts with `partial`, i.e. an unfinished command line can still
    /// become valid.
    pub(crate) fn could_start(partial: &[u8]) -> bool {
        Command::ALL
            .iter()
            .any(|command| command.as_str().as_bytes().starts_with(partial))
    }

    /// CONNECT, STOMP and CONNECTED never escape their headers, whatever the version
    /// (STOMP 1.2, "Value Encoding": kept compatible with 1.0 clients).
    pub const fn is_connect_like(self) -> bool {
        matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
