//! The durable spool: accepted messages on disk, fsync'd before the client hears `250`.
//!
//! Each entry is one file, `<id>.msg`: a header line, the envelope as one line of JSON, then
//! the message as received. [`Spool::store`] writes it under a `tmp-` name, fsyncs it, renames
//! it into place and fsyncs the directory: the rename is the commit, so a crash leaves a whole
//! entry or none (and [`Spool::open`] deletes leftover `tmp-` files). A delivery attempt that
//! changes the envelope (attempts, recipients still to do) writes `<id>.env` beside the entry,
//! which then overrides the stored envelope.
//!
//! Addresses are stored in their wire form (`"bob smith"@example.org`, format version 2).
//! Version 1 stored them as smtp-proto had read them, unquoted; such entries are still read:
//! the domain follows the last `@` (a domain has none), the rest is the local part, which is
//! then quoted again where it needs it.
//!
//! One file per message, not two, because creating and deleting inodes is what a busy spool
//! spends most on (ext4 looks through recently freed inodes for every new one; see
//! BENCHMARKS.md). Throughput also comes from group commit: sessions write and fsync their own
//! files in parallel (the file system merges concurrent flushes), and one directory fsync
//! covers every rename made before it started, so twenty sessions storing at once share one
//! instead of queueing for twenty (see [`GroupSync`]).
//!
//! The methods do blocking file I/O; async callers go through `spawn_blocking` (as
//! [`crate::SpoolSink`] does).

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Condvar, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::address::{Domain, Mailbox};
use crate::error::Error;

const TEMP_PREFIX: &str = "tmp-";
/// An entry: [`ENTRY_MAGIC`], the envelope as one line of JSON, then the message.
const ENTRY_SUFFIX: &str = ".msg";
/// An envelope update (after a delivery attempt), overriding the one in the entry.
const ENVELOPE_SUFFIX: &str = ".env";
/// The message file of the earlier two-file layout, migrated by [`Spool::open`].
const OLD_MESSAGE_SUFFIX: &str = ".eml";
const ENTRY_MAGIC: &[u8] = b"signet-spool 1\n";
/// What is read of an entry for its envelope alone: enough for the header of a message with a
/// few dozen recipients (a longer one is read whole), little enough that a rescan of a long
/// queue reads headers, not messages.
const HEADER_ONLY: usize = 4096;
/// 2: addresses in their wire form. 1: addresses unquoted (read, never written).
const FORMAT_VERSION: u32 = 2;

/// A spool entry's name: unique within the spool, and sorting as text sorts by arrival time.
///
/// It is the arrival time in microseconds since the Unix epoch, bumped past the previous id when
/// two messages arrive within the same microsecond (or the clock steps back), written as 16
/// lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u64);

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for QueueId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let valid = text.len() == 16
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !valid {
            return Err(Error::InvalidQueueId(text.into()));
        }
        u64::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| Error::InvalidQueueId(text.into()))
    }
}

/// What the spool keeps beside a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The envelope sender; `None` for the null sender (stored as `""`).
    #[serde(with = "reverse_path")]
    pub sender: Option<Mailbox>,
    /// The envelope recipients.
    pub recipients: Vec<Mailbox>,
    /// The tenant the message belongs to (opaque here).
    pub tenant: String,
    /// When the message was accepted.
    pub received_at: SystemTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When the next delivery attempt is due.
    pub next_attempt: SystemTime,
    /// The client declared `BODY=8BITMIME`; delivery must too.
    pub eight_bit_mime: bool,
    /// The client declared `SMTPUTF8`; delivery must too.
    pub smtputf8: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredEnvelope {
    version: u32,
    #[serde(flatten)]
    envelope: Envelope,
}

#[derive(Deserialize)]
struct Version {
    version: u32,
}

/// A format version 1 envelope: the addresses unquoted.
#[derive(Deserialize)]
struct StoredEnvelopeV1 {
    sender: String,
    recipients: Vec<String>,
    tenant: String,
    received_at: SystemTime,
    attempts: u32,
    next_attempt: SystemTime,
    eight_bit_mime: bool,
    smtputf8: bool,
}

impl StoredEnvelopeV1 {
    fn upgrade(self) -> Result<Envelope, serde_json::Error> {
        let sender = if self.sender.is_empty() {
            None
        } else {
            Some(unquoted_mailbox(&self.sender)?)
        };
        let recipients = self
            .recipients
            .iter()
            .map(|r| unquoted_mailbox(r))
            .collect::<Result<_, _>>()?;
        Ok(Envelope {
            sender,
            recipients,
            tenant: self.tenant,
            received_at: self.received_at,
            attempts: self.attempts,
            next_attempt: self.next_attempt,
            eight_bit_mime: self.eight_bit_mime,
            smtputf8: self.smtputf8,
        })
    }
}

/// A version 1 address: `local@domain` with the local part's quotes and escapes removed.
fn unquoted_mailbox(text: &str) -> Result<Mailbox, serde_json::Error> {
    let (local_part, domain) = text.rsplit_once('@').unwrap_or(("", text));
    let domain = match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(literal) => Domain::AddressLiteral(literal.to_owned()),
        None => Domain::Name(domain.to_owned()),
    };
    Mailbox::new(local_part, domain).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!("address {text:?}: {e}"))
    })
}

/// The sender as the spool stores it: the null sender as `""`.
mod reverse_path {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::address::Mailbox;

    #[allow(clippy::ref_option)] // the signature serde's `with` asks for
    pub fn serialize<S: Serializer>(
        sender: &Option<Mailbox>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match sender {
            Some(mailbox) => serializer.collect_str(mailbox),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Mailbox>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format_args!("address {text:?}: {e}")))
    }
}

/// A spool directory.
#[derive(Debug)]
pub struct Spool {
    directory: PathBuf,
    /// The last id handed out.
    last_id: Mutex<u64>,
    /// Serialises update and remove, so that an update never brings back a removed entry.
    entries: Mutex<()>,
    /// Shared fsyncs of the directory.
    directory_sync: GroupSync,
    /// The directory, open for its fsyncs (not opened again for each).
    directory_handle: File,
}

impl Spool {
    /// Opens (creating it, mode 0700, if needed) the spool in `directory`, and deletes what a
    /// crash may have left: temporary files, and envelope updates whose entry is gone. Entries
    /// in the earlier two-file layout (`.eml` + `.env`) are rewritten as one file first.
    pub fn open(directory: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(directory.into(), true)
    }

    /// Opens the spool of a server that may be running (for `signet queue`), leaving alone what
    /// [`Spool::open`] would clean up: a `tmp-` file may be a store under way in the server, and
    /// an envelope update without its entry a removal under way.
    pub fn open_alongside(directory: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::open_with(directory.into(), false)
    }

    fn open_with(directory: PathBuf, clean_up: bool) -> Result<Self, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .map_err(|source| io_error(&directory, source))?;
        let mut entries = BTreeSet::new();
        let mut envelopes = BTreeSet::new();
        let mut old_messages = BTreeSet::new();
        let mut last_id = 0;
        for entry in fs::read_dir(&directory).map_err(|source| io_error(&directory, source))? {
            let entry = entry.map_err(|source| io_error(&directory, source))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TEMP_PREFIX) {
                if clean_up {
                    remove_file(&entry.path())?;
                }
                continue;
            }
            let (set, id) = if let Some(id) = parse_name(name, ENTRY_SUFFIX) {
                (&mut entries, id)
            } else if let Some(id) = parse_name(name, ENVELOPE_SUFFIX) {
                (&mut envelopes, id)
            } else if let Some(id) = parse_name(name, OLD_MESSAGE_SUFFIX) {
                (&mut old_messages, id)
            } else {
                continue;
            };
            last_id = last_id.max(id.0);
            set.insert(id);
        }
        let directory_handle =
            File::open(&directory).map_err(|source| io_error(&directory, source))?;
        let spool = Self {
            directory,
            last_id: Mutex::new(last_id),
            entries: Mutex::new(()),
            directory_sync: GroupSync::default(),
            directory_handle,
        };
        if !clean_up {
            return Ok(spool);
        }
        for id in &old_messages {
            if !entries.contains(id) && envelopes.contains(id) {
                spool.migrate(*id)?;
                entries.insert(*id);
            }
            remove_file(&spool.old_message_path(*id))?;
        }
        for orphan in envelopes.difference(&entries) {
            remove_file(&spool.envelope_path(*orphan))?;
        }
        spool.sync_directory()?;
        Ok(spool)
    }

    /// Stores a message and its envelope durably, as one file; when this returns `Ok`, it is on
    /// disk and a crash will not lose it.
    pub fn store(&self, envelope: &Envelope, message: &[u8]) -> Result<QueueId, Error> {
        let id = next_id(&mut lock(&self.last_id));
        self.write_entry(id, envelope, message)?;
        Ok(id)
    }

    /// Writes entry `id` under a temporary name, fsyncs it, renames it into place and fsyncs
    /// the directory (shared with whoever else is storing).
    fn write_entry(&self, id: QueueId, envelope: &Envelope, message: &[u8]) -> Result<(), Error> {
        let temp = self.temp_path(id, ENTRY_SUFFIX);
        let mut bytes = Vec::with_capacity(message.len() + 512);
        bytes.extend_from_slice(ENTRY_MAGIC);
        bytes.extend_from_slice(&encode(envelope));
        bytes.push(b'\n');
        bytes.extend_from_slice(message);
        let result = write_synced(&temp, &bytes)
            .and_then(|()| rename(&temp, &self.entry_path(id)))
            .and_then(|()| self.sync_directory());
        if result.is_err() {
            // Best effort: whatever is left is cleaned up by the next open anyway.
            let _ = fs::remove_file(&temp);
            let _ = fs::remove_file(self.entry_path(id));
        }
        result
    }

    /// The ids of all entries, oldest first.
    pub fn list(&self) -> Result<Vec<QueueId>, Error> {
        let mut ids = Vec::new();
        let entries =
            fs::read_dir(&self.directory).map_err(|source| io_error(&self.directory, source))?;
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&self.directory, source))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|name| parse_name(name, ENTRY_SUFFIX))
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// An entry's envelope: the latest update, or the one it was stored with.
    pub fn envelope(&self, id: QueueId) -> Result<Envelope, Error> {
        let path = self.envelope_path(id);
        match fs::read(&path) {
            Ok(bytes) => decode(id, &bytes),
            Err(source) if source.kind() == io::ErrorKind::NotFound => {
                let (envelope, _) = self.read_entry(id, HEADER_ONLY)?;
                Ok(envelope)
            }
            Err(source) => Err(io_error(&path, source)),
        }
    }

    /// An entry's message.
    pub fn message(&self, id: QueueId) -> Result<Vec<u8>, Error> {
        self.read_entry(id, usize::MAX).map(|(_, message)| message)
    }

    /// An entry's envelope and message.
    pub fn load(&self, id: QueueId) -> Result<(Envelope, Vec<u8>), Error> {
        let (stored, message) = self.read_entry(id, usize::MAX)?;
        let envelope = match fs::read(self.envelope_path(id)) {
            Ok(bytes) => decode(id, &bytes)?,
            Err(_) => stored,
        };
        Ok((envelope, message))
    }

    /// Replaces an entry's envelope (after a delivery attempt: attempts, next attempt, the
    /// recipients still to do), atomically and durably, beside the entry. An entry that was
    /// removed stays removed.
    pub fn update(&self, id: QueueId, envelope: &Envelope) -> Result<(), Error> {
        let path = self.envelope_path(id);
        let temp = self.temp_path(id, ENVELOPE_SUFFIX);
        let result = write_synced(&temp, &encode(envelope)).and_then(|()| {
            let _entries = lock(&self.entries);
            if self.entry_path(id).exists() {
                rename(&temp, &path)
            } else {
                Err(Error::NotFound(id))
            }
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.and_then(|()| self.sync_directory())
    }

    /// Removes an entry (delivered, or given up on): the entry file goes, then its envelope
    /// update if it has one (an update left behind by a crash is deleted by the next open).
    pub fn remove(&self, id: QueueId) -> Result<(), Error> {
        let path = self.entry_path(id);
        {
            let _entries = lock(&self.entries);
            fs::remove_file(&path).map_err(|source| not_found_or(id, &path, source))?;
        }
        // Durable before returning, or a crash could deliver the message once more.
        self.sync_directory()?;
        remove_file(&self.envelope_path(id))
    }

    /// Removes delivered entries, many at once: their files go, one directory fsync makes that
    /// durable for all of them, then their envelope updates go. An entry already gone (say,
    /// deleted with `signet queue delete`) is no error.
    pub fn remove_all(&self, ids: &[QueueId]) -> Result<(), Error> {
        let mut first_error = None;
        {
            let _entries = lock(&self.entries);
            for id in ids {
                if let Err(error) = remove_file(&self.entry_path(*id)) {
                    first_error.get_or_insert(error);
                }
            }
        }
        self.sync_directory()?;
        for id in ids {
            if let Err(error) = remove_file(&self.envelope_path(*id)) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The spool directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Reads an entry: its stored envelope and up to `limit` bytes of the file (the header alone
    /// with [`HEADER_ONLY`]), the message being what follows the header.
    fn read_entry(&self, id: QueueId, limit: usize) -> Result<(Envelope, Vec<u8>), Error> {
        let path = self.entry_path(id);
        let file = File::open(&path).map_err(|source| not_found_or(id, &path, source))?;
        let mut bytes = Vec::new();
        io::Read::take(file, u64::try_from(limit).unwrap_or(u64::MAX))
            .read_to_end(&mut bytes)
            .map_err(|source| io_error(&path, source))?;
        let damaged = || Error::DamagedEntry {
            id,
            source: serde::de::Error::custom("the entry has no spool header"),
        };
        let rest = bytes.strip_prefix(ENTRY_MAGIC).ok_or_else(damaged)?;
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            if bytes.len() as u64 == u64::try_from(limit).unwrap_or(u64::MAX) {
                return self.read_entry(id, usize::MAX); // a header longer than guessed
            }
            return Err(damaged());
        };
        let envelope = decode(id, &rest[..end])?;
        let offset = ENTRY_MAGIC.len() + end + 1;
        bytes.drain(..offset);
        Ok((envelope, bytes))
    }

    /// Rewrites an entry of the two-file layout (`.eml` + `.env`) as one file.
    fn migrate(&self, id: QueueId) -> Result<(), Error> {
        let envelope = {
            let path = self.envelope_path(id);
            decode(
                id,
                &fs::read(&path).map_err(|source| io_error(&path, source))?,
            )?
        };
        let path = self.old_message_path(id);
        let message = fs::read(&path).map_err(|source| io_error(&path, source))?;
        self.write_entry(id, &envelope, &message)
    }

    fn entry_path(&self, id: QueueId) -> PathBuf {
        self.directory.join(format!("{id}{ENTRY_SUFFIX}"))
    }

    fn envelope_path(&self, id: QueueId) -> PathBuf {
        self.directory.join(format!("{id}{ENVELOPE_SUFFIX}"))
    }

    fn old_message_path(&self, id: QueueId) -> PathBuf {
        self.directory.join(format!("{id}{OLD_MESSAGE_SUFFIX}"))
    }

    fn temp_path(&self, id: QueueId, suffix: &str) -> PathBuf {
        self.directory.join(format!("{TEMP_PREFIX}{id}{suffix}"))
    }

    fn sync_directory(&self) -> Result<(), Error> {
        self.directory_sync
            .sync(|| self.directory_handle.sync_all())
            .map_err(|source| io_error(&self.directory, source))
    }
}

/// Group commit for one fsync target: a caller gets `Ok` only after a sync that *started*
/// after it called has succeeded. Callers that arrive while a sync runs wait for the next one,
/// which one of them runs for all; so N concurrent callers cost about two syncs, not N.
#[derive(Debug, Default)]
struct GroupSync {
    state: Mutex<GroupState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Tickets handed out: the latest caller's number.
    requested: u64,
    /// Every ticket up to this one is covered by a successful sync.
    completed: u64,
    /// A sync is under way.
    running: bool,
}

impl GroupSync {
    fn sync(&self, run: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.requested += 1;
        let ticket = state.requested;
        loop {
            if state.completed >= ticket {
                return Ok(());
            }
            if state.running {
                state = self
                    .done
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Everything asked for so far was written before its ticket was taken, hence
            // before this sync starts: one sync covers all of it.
            let covers = state.requested;
            state.running = true;
            drop(state);
            let result = run();
            state = lock(&self.state);
            state.running = false;
            if result.is_ok() {
                state.completed = state.completed.max(covers);
            }
            self.done.notify_all();
            result?;
        }
    }
}

/// A panic while holding one of the spool's locks cannot leave what it guards inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn next_id(last_id: &mut u64) -> QueueId {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        });
    *last_id = now.max(*last_id + 1);
    QueueId(*last_id)
}

fn parse_name(name: &str, suffix: &str) -> Option<QueueId> {
    name.strip_suffix(suffix)?.parse().ok()
}

fn encode(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(&StoredEnvelope {
        version: FORMAT_VERSION,
        envelope: envelope.clone(),
    })
    .expect("an envelope always serialises")
}

fn decode(id: QueueId, bytes: &[u8]) -> Result<Envelope, Error> {
    let damaged = |source| Error::DamagedEntry { id, source };
    let Version { version } = serde_json::from_slice(bytes).map_err(damaged)?;
    if version == 1 {
        let stored: StoredEnvelopeV1 = serde_json::from_slice(bytes).map_err(damaged)?;
        return stored.upgrade().map_err(damaged);
    }
    let stored: StoredEnvelope = serde_json::from_slice(bytes).map_err(damaged)?;
    Ok(stored.envelope)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|source| io_error(to, source))
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(path, error)),
        _ => Ok(()),
    }
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Spool {
        path: path.to_owned(),
        source,
    }
}

fn not_found_or(id: QueueId, path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::NotFound {
        Error::NotFound(id)
    } else {
        io_error(path, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn envelope() -> Envelope {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Envelope {
            sender: Some("joe@example.com".parse().unwrap()),
            recipients: vec![
                "a@example.net".parse().unwrap(),
                r#""bob smith"@example.org"#.parse().unwrap(),
            ],
            tenant: "contoso".into(),
            received_at: now,
            attempts: 0,
            next_attempt: now,
            eight_bit_mime: true,
            smtputf8: false,
        }
    }

    fn names(directory: &Path) -> BTreeSet<String> {
        fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect()
    }

    #[test]
    fn store_list_load_update_remove() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        assert_eq!(spool.list().unwrap(), []);

        let first = spool
            .store(&envelope(), b"Subject: 1\r\n\r\none\r\n")
            .unwrap();
        let second = spool
            .store(&envelope(), b"Subject: 2\r\n\r\ntwo\r\n")
            .unwrap();
        assert!(first < second);
        assert!(first.to_string() < second.to_string());
        assert_eq!(spool.list().unwrap(), [first, second]);

        let (loaded, message) = spool.load(first).unwrap();
        assert_eq!(loaded, envelope());
        assert_eq!(message, b"Subject: 1\r\n\r\none\r\n");

        let mut retried = envelope();
        retried.attempts = 1;
        retried.next_attempt += Duration::from_mins(10);
        spool.update(first, &retried).unwrap();
        assert_eq!(spool.envelope(first).unwrap(), retried);

        spool.remove(first).unwrap();
        assert_eq!(spool.list().unwrap(), [second]);
        assert!(matches!(spool.load(first), Err(Error::NotFound(id)) if id == first));
        assert!(matches!(
            spool.update(first, &retried),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(spool.remove(first), Err(Error::NotFound(_))));
        assert_eq!(
            names(directory.path()),
            BTreeSet::from([format!("{second}.msg")]),
            "one file per entry; the update went with its entry"
        );
    }

    #[test]
    fn remove_all_takes_entries_and_their_updates_and_skips_ones_already_gone() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let ids: Vec<QueueId> = (0..4)
            .map(|n| {
                spool
                    .store(&envelope(), format!("Subject: {n}\r\n\r\n").as_bytes())
                    .unwrap()
            })
            .collect();
        let mut retried = envelope();
        retried.attempts = 1;
        spool.update(ids[1], &retried).unwrap();
        spool.remove(ids[2]).unwrap(); // deleted by someone else first

        spool.remove_all(&ids[..3]).unwrap();
        assert_eq!(spool.list().unwrap(), [ids[3]]);
        assert_eq!(
            names(directory.path()),
            BTreeSet::from([format!("{}.msg", ids[3])]),
            "the update of a removed entry goes with it"
        );
    }

    #[test]
    fn entries_survive_reopening_and_new_ids_stay_ahead() {
        let directory = tempfile::tempdir().unwrap();
        let id = Spool::open(directory.path())
            .unwrap()
            .store(&envelope(), b"x\r\n")
            .unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        assert_eq!(spool.list().unwrap(), [id]);
        assert_eq!(spool.message(id).unwrap(), b"x\r\n");
        assert!(spool.store(&envelope(), b"y\r\n").unwrap() > id);
    }

    #[test]
    fn ids_are_unique_under_concurrency() {
        let directory = tempfile::tempdir().unwrap();
        let spool = std::sync::Arc::new(Spool::open(directory.path()).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|_| spool.store(&envelope(), b"m\r\n").unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ids: BTreeSet<QueueId> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        assert_eq!(ids.len(), 40);
        assert_eq!(spool.list().unwrap().len(), 40);
    }

    /// A crash before the rename leaves a `tmp-` file (not an entry); a crash between an
    /// envelope update's rename and a removal leaves an `.env` without its entry. Both are
    /// cleaned up on open, and the entries stand.
    #[test]
    fn a_crash_leaves_whole_entries_or_none() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let kept = spool.store(&envelope(), b"kept\r\n").unwrap();
        let updated = spool.store(&envelope(), b"updated\r\n").unwrap();
        let mut retried = envelope();
        retried.attempts = 3;
        spool.update(updated, &retried).unwrap();
        drop(spool);
        let torn = "0000000000000001";
        let removed = "0000000000000002";
        fs::write(
            directory.path().join(format!("tmp-{torn}.msg")),
            b"signet-spool 1\n{\"vers",
        )
        .unwrap();
        fs::write(
            directory.path().join(format!("{removed}.env")),
            encode(&envelope()),
        )
        .unwrap();

        let spool = Spool::open(directory.path()).unwrap();
        assert_eq!(spool.list().unwrap(), [kept, updated]);
        assert_eq!(spool.envelope(updated).unwrap(), retried);
        assert_eq!(spool.message(updated).unwrap(), b"updated\r\n");
        assert_eq!(
            names(directory.path()),
            BTreeSet::from([
                format!("{kept}.msg"),
                format!("{updated}.msg"),
                format!("{updated}.env")
            ])
        );
    }

    /// `signet queue` opens the spool beside a running server: a store under way there (its
    /// `tmp-` file) is not its to delete.
    #[test]
    fn opening_alongside_a_server_leaves_its_work_in_progress_alone() {
        let directory = tempfile::tempdir().unwrap();
        let server = Spool::open(directory.path()).unwrap();
        let kept = server.store(&envelope(), b"kept\r\n").unwrap();
        let in_progress = directory.path().join("tmp-0000000000000001.msg");
        fs::write(&in_progress, b"signet-spool 1\n{\"vers").unwrap();
        let orphan = directory.path().join("0000000000000002.env");
        fs::write(&orphan, encode(&envelope())).unwrap();

        let cli = Spool::open_alongside(directory.path()).unwrap();
        assert_eq!(cli.list().unwrap(), [kept]);
        assert!(in_progress.exists() && orphan.exists());
        drop(cli);
        Spool::open(directory.path()).unwrap();
        assert!(
            !in_progress.exists() && !orphan.exists(),
            "the server's open cleans up"
        );
    }

    /// Entries of the two-file layout (`.eml` + `.env`, before one-file entries) are rewritten
    /// on open, keeping envelope and message; a lone `.eml` was never committed and goes.
    #[test]
    fn the_two_file_layout_is_migrated() {
        let directory = tempfile::tempdir().unwrap();
        let (old, lone) = ("0000000000000010", "0000000000000011");
        let mut retried = envelope();
        retried.attempts = 2;
        fs::write(directory.path().join(format!("{old}.eml")), b"old\r\n").unwrap();
        fs::write(
            directory.path().join(format!("{old}.env")),
            encode(&retried),
        )
        .unwrap();
        fs::write(directory.path().join(format!("{lone}.eml")), b"lone\r\n").unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let id: QueueId = old.parse().unwrap();
        assert_eq!(spool.list().unwrap(), [id]);
        assert_eq!(spool.load(id).unwrap(), (retried, b"old\r\n".to_vec()));
        assert_eq!(
            names(directory.path()),
            BTreeSet::from([format!("{old}.msg"), format!("{old}.env")])
        );
        assert!(spool.store(&envelope(), b"new\r\n").unwrap() > id);
    }

    /// Entries of format version 1 stored addresses unquoted, as smtp-proto read them; they
    /// are read back with the local part quoted again where it needs it (and an entry that an
    /// update rewrote is in the current format).
    #[test]
    fn version_1_envelopes_are_read_with_their_addresses_requoted() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let id = spool.store(&envelope(), b"x\r\n").unwrap();
        let v1 = br#"{"version":1,"sender":"ceo@fabrikam.com> ENVID=x@contoso.com","recipients":["bob smith@example.org","ann@example.net","op@[192.0.2.1]"],"tenant":"contoso","received_at":{"secs_since_epoch":1700000000,"nanos_since_epoch":0},"attempts":1,"next_attempt":{"secs_since_epoch":1700000000,"nanos_since_epoch":0},"eight_bit_mime":false,"smtputf8":false}"#;
        fs::write(spool.envelope_path(id), v1).unwrap();
        let loaded = spool.envelope(id).unwrap();
        let written = |m: &Mailbox| m.to_string();
        assert_eq!(
            loaded.sender.as_ref().map(written).as_deref(),
            Some(r#""ceo@fabrikam.com> ENVID=x"@contoso.com"#)
        );
        assert_eq!(
            loaded.recipients.iter().map(written).collect::<Vec<_>>(),
            [
                r#""bob smith"@example.org"#,
                "ann@example.net",
                "op@[192.0.2.1]"
            ]
        );
        assert_eq!(loaded.attempts, 1);
        let null = String::from_utf8(v1.to_vec()).unwrap().replace(
            r#""sender":"ceo@fabrikam.com> ENVID=x@contoso.com""#,
            r#""sender":"""#,
        );
        fs::remove_file(spool.envelope_path(id)).unwrap();
        fs::write(spool.envelope_path(id), null).unwrap();
        assert_eq!(spool.envelope(id).unwrap().sender, None);
        spool.update(id, &loaded).unwrap();
        assert!(
            fs::read_to_string(spool.envelope_path(id))
                .unwrap()
                .contains(r#""version":2"#)
        );
        assert_eq!(spool.envelope(id).unwrap(), loaded);
        // The current format is strict: an unquoted address there is damage, not version 1.
        let unquoted = String::from_utf8(encode(&loaded))
            .unwrap()
            .replace(r#"\"bob smith\""#, "bob smith");
        fs::remove_file(spool.envelope_path(id)).unwrap();
        fs::write(spool.envelope_path(id), unquoted).unwrap();
        assert!(matches!(
            spool.envelope(id),
            Err(Error::DamagedEntry { .. })
        ));
    }

    #[test]
    fn an_entry_without_its_header_is_damaged_not_a_message() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let id = spool.store(&envelope(), b"x\r\n").unwrap();
        fs::write(spool.entry_path(id), b"From: someone\r\n\r\nbody\r\n").unwrap();
        assert!(matches!(spool.load(id), Err(Error::DamagedEntry { .. })));
        // A long header (many recipients) is read whole, not cut off.
        let mut many = envelope();
        many.recipients = (0..3000)
            .map(|n| format!("user{n}@example.org").parse().unwrap())
            .collect();
        let big = spool.store(&many, b"y\r\n").unwrap();
        assert_eq!(spool.envelope(big).unwrap(), many);
    }

    /// The group-commit promise: a caller returns only once a sync that started after its
    /// write has succeeded, and concurrent callers share syncs.
    #[test]
    fn group_sync_covers_every_earlier_write_and_shares_syncs() {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::{Arc, Barrier};
        let group = Arc::new(GroupSync::default());
        let writes = Arc::new(AtomicU64::new(0));
        let synced_up_to = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads = 16;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (group, writes, synced_up_to, syncs, barrier) = (
                    group.clone(),
                    writes.clone(),
                    synced_up_to.clone(),
                    syncs.clone(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    let mine = writes.fetch_add(1, Ordering::SeqCst) + 1;
                    group
                        .sync(|| {
                            synced_up_to.fetch_max(writes.load(Ordering::SeqCst), Ordering::SeqCst);
                            syncs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            Ok(())
                        })
                        .unwrap();
                    assert!(synced_up_to.load(Ordering::SeqCst) >= mine);
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let syncs = syncs.load(Ordering::SeqCst);
        assert!(
            (1..16).contains(&syncs),
            "{syncs} syncs for {threads} callers"
        );
    }

    #[test]
    fn a_failed_group_sync_fails_its_runner_and_is_retried_for_the_others() {
        let group = GroupSync::default();
        let failed = group.sync(|| Err(io::Error::other("disk on fire")));
        assert!(failed.is_err());
        assert!(group.sync(|| Ok(())).is_ok(), "the next caller syncs again");
    }

    #[test]
    fn a_damaged_envelope_is_a_permanent_error() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path()).unwrap();
        let id = spool.store(&envelope(), b"x\r\n").unwrap();
        fs::write(spool.envelope_path(id), b"{not json").unwrap();
        let error = spool.envelope(id).unwrap_err();
        assert!(matches!(error, Error::DamagedEntry { .. }));
        assert!(!error.is_temporary());
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path().join("spool");
        let spool = Spool::open(&root).unwrap();
        let id = spool.store(&envelope(), b"x\r\n").unwrap();
        let mode = |path: PathBuf| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(root.clone()), 0o700);
        assert_eq!(mode(spool.entry_path(id)), 0o600);
        spool.update(id, &envelope()).unwrap();
        assert_eq!(mode(spool.envelope_path(id)), 0o600);
    }

    #[test]
    fn queue_ids_parse_strictly() {
        let id: QueueId = "0005f3a1b2c3d4e5".parse().unwrap();
        assert_eq!(id.to_string(), "0005f3a1b2c3d4e5");
        for bad in [
            "",
            "0005F3A1B2C3D4E5",
            "../../etc/passwd",
            "0005f3a1b2c3d4e",
            "+005f3a1b2c3d4e5",
        ] {
            assert!(bad.parse::<QueueId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_failed_store_reports_a_temporary_error() {
        let directory = tempfile::tempdir().unwrap();
        let spool = Spool::open(directory.path().join("spool")).unwrap();
        fs::remove_dir(directory.path().join("spool")).unwrap();
        let error = spool.store(&envelope(), b"x\r\n").unwrap_err();
        assert!(error.is_temporary());
    }
}
