//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::reply::Reply;
use crate::spool::QueueId;

/// What can go wrong in the spool and the listener.
///
/// Temporary failures (the disk, the network) and permanent ones (a damaged or missing entry, a
/// malformed queue id) stay apart: [`Error::is_temporary`] says which, and [`Error::reply`] gives
/// the SMTP answer (`451 4.3.0` or `554 5.3.0`) without leaking paths or other internals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the spool failed (disk full, permissions, a failed fsync). Temporary.
    #[error("spool I/O on {path}: {source}")]
    Spool {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A spool entry's envelope cannot be read back. Permanent for that entry.
    #[error("spool entry {id} has a damaged envelope")]
    DamagedEntry {
        /// The entry.
        id: QueueId,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// No such entry in the spool (never stored, or already removed). Permanent.
    #[error("no spool entry {0}")]
    NotFound(QueueId),
    /// Text that is not a queue id (16 lowercase hex digits). Permanent.
    #[error("{0:?} is not a queue id")]
    InvalidQueueId(String),
    /// The connection to a client failed (I/O error, TLS handshake). Temporary.
    #[error("connection failed: {0}")]
    Connection(#[source] io::Error),
}

impl Error {
    /// Whether trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Spool { .. } | Self::Connection(_))
    }

    /// The reply a client gets when this error stops its message.
    pub fn reply(&self) -> Reply {
        if self.is_temporary() {
            Reply::new(451, [4, 3, 0], "Temporary local problem, try again later")
        } else {
            Reply::new(554, [5, 3, 0], "Message could not be stored")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_permanent_stay_apart() {
        let disk = Error::Spool {
            path: "/var/spool/signet/secret-path".into(),
            source: io::Error::other("disk full"),
        };
        assert!(disk.is_temporary());
        assert_eq!(disk.reply().code(), 451);
        assert!(!disk.reply().to_string().contains("secret-path"));
        let missing = Error::InvalidQueueId("../etc".into());
        assert!(!missing.is_temporary());
        assert_eq!(missing.reply().code(), 554);
    }
}
