//! [`StoreError`]: what failed in the store, where, and what to do.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use super::codec::CodecError;
use crate::channel::Closed;

/// The key, value and codec types a table was created with; recorded in the
/// store, checked on every later open.
///
/// Types are recorded by [`std::any::type_name`], which Rust does not
/// promise to keep across compiler versions: if an upgrade renames a type,
/// the error shows both spellings.
///
/// # Examples
///
/// ```
/// use timecast::store::{Store, StoreError};
///
/// let store = Store::temporary()?;
/// store.table::<String, u64>("counts")?;
/// match store.table::<u64, String>("counts") {
///     Err(StoreError::TableTypes { stored, .. }) => {
///         assert_eq!(stored.key, "alloc::string::String");
///         assert_eq!(stored.value, "u64");
///     }
///     other => panic!("expected a type mismatch, got {other:?}"),
/// }
/// # Ok::<_, StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableTypes {
    /// The key type's name.
    pub key: String,
    /// The value type's name.
    pub value: String,
    /// The codec's [`name`](super::codec::Codec::name).
    pub codec: String,
}

impl fmt::Display for TableTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Table<{}, {}> with codec {}",
            self.key, self.value, self.codec
        )
    }
}

/// An error of the store. Each one names what failed and where (the path,
/// the table, the key) and says what to do.
///
/// # Examples
///
/// ```
/// use timecast::store::{Store, StoreError};
///
/// let store = Store::temporary()?;
/// let held = Store::open(store.path());
/// assert!(matches!(held, Err(StoreError::Locked { .. })));
/// # Ok::<_, StoreError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process, or another [`Store::open`](super::Store::open) of
    /// this process, holds the store at `path`. Use one [`Store`] handle
    /// per directory and clone it; or stop the other process.
    ///
    /// [`Store`]: super::Store
    Locked {
        /// The store's directory.
        path: PathBuf,
    },
    /// The store's directory could not be created or opened.
    Open {
        /// The store's directory.
        path: PathBuf,
        /// The cause.
        source: Box<dyn Error + Send + Sync + 'static>,
    },
    /// The database failed to read or write (a disk error, a full disk).
    Io {
        /// The store's directory.
        path: PathBuf,
        /// What was being done: `"commit"`, `"sync"`, `"read table counts"`…
        op: String,
        /// The cause.
        source: Box<dyn Error + Send + Sync + 'static>,
    },
    /// A table was opened with other key, value or codec types than it was
    /// created with.
    TableTypes {
        /// The table.
        table: String,
        /// The types it was created with.
        stored: Box<TableTypes>,
        /// The types it was opened with.
        requested: Box<TableTypes>,
    },
    /// A stored value could not be decoded with the table's codec.
    Decode {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it.
        key: String,
        /// The codec's error.
        source: CodecError,
    },
    /// A value could not be encoded with the table's codec; nothing was
    /// written.
    Encode {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it.
        key: String,
        /// The codec's error.
        source: CodecError,
    },
    /// Stored key bytes are not a valid key of the table's key type.
    CorruptKey {
        /// The table.
        table: String,
        /// The stored bytes.
        bytes: Vec<u8>,
    },
    /// A record of a log could not be decoded with the log's codec.
    LogDecode {
        /// The log.
        log: String,
        /// The record's offset.
        offset: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// A value could not be encoded with a log's codec; nothing was
    /// appended.
    LogEncode {
        /// The log.
        log: String,
        /// The codec's error.
        source: CodecError,
    },
    /// A read asked for a record that the log's
    /// [`Retention`](super::Retention) already removed.
    Trimmed {
        /// The log.
        log: String,
        /// The offset asked for.
        offset: u64,
        /// The oldest offset the log still holds.
        start: u64,
    },
    /// A group was committed past the log's end.
    CommitPastEnd {
        /// The log.
        log: String,
        /// The group.
        group: String,
        /// The offset the group was committed at.
        offset: u64,
        /// The log's next offset (its end).
        end: u64,
    },
    /// A [`Checkpoint`](super::Checkpoint) was asked about a dependency it
    /// does not have (or about none, when it has several).
    UnknownDependency {
        /// The checkpoint.
        checkpoint: String,
        /// The name asked for; `None` if no name was given.
        dependency: Option<String>,
        /// The checkpoint's dependencies.
        known: Vec<String>,
    },
    /// A key that the database cannot hold: it encodes to no bytes (a
    /// [`Key`](super::Key) type of your own) or to more than
    /// [`MAX_KEY_LEN`](super::MAX_KEY_LEN); nothing was written.
    KeySize {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it (cut short if long).
        key: String,
        /// The length of its encoding, in bytes.
        len: usize,
    },
    /// A table name that is empty or longer than
    /// [`MAX_KEY_LEN`](super::MAX_KEY_LEN) bytes.
    TableName {
        /// The name (cut short if long).
        name: String,
        /// Its length, in bytes.
        len: usize,
    },
    /// A name the store keeps for itself: a table's name that starts with
    /// `timecast.` (the prefix of the tables that hold logs and
    /// checkpoints), or a log's or checkpoint's name with a `/` (which
    /// separates the names of their own tables).
    ReservedName {
        /// The name (cut short if long).
        name: String,
        /// What it is the name of: `"table"`, `"log"` or `"checkpoint"`.
        of: &'static str,
    },
    /// A stream that a table's values were sent on after the table is
    /// closed (for example a topic before the table in a pipeline's sinks).
    Closed,
    /// An operation of the [`Topic`](crate::topic::Topic) trait that the
    /// embedded log does not have (record keys): use it without, or a
    /// Kafka topic.
    Unsupported {
        /// The log.
        log: String,
        /// What it does not have.
        what: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked { path } => write!(
                f,
                "the store at {} is held by another process or another open handle: \
                 stop it, or clone one Store handle instead of opening the directory twice",
                path.display()
            ),
            Self::Open { path, .. } => write!(
                f,
                "cannot create or open the store at {}: check that the path is a \
                 writable directory (or can be created)",
                path.display()
            ),
            Self::Io { path, op, .. } => write!(
                f,
                "{op} failed in the store at {}: check the disk (space, permissions); \
                 committed writes are kept, and writes not yet committed stay pending \
                 for the next commit",
                path.display()
            ),
            Self::TableTypes {
                table,
                stored,
                requested,
            } => write!(
                f,
                "table {table:?} was created as {stored} but is opened as {requested}: \
                 open it with its stored types, or use another table name"
            ),
            Self::Decode { table, key, .. } => write!(
                f,
                "cannot decode the value of key {key} in table {table:?}: it was not \
                 written by this table's codec and value type; remove the key or fix the codec"
            ),
            Self::Encode { table, key, .. } => write!(
                f,
                "cannot encode the value for key {key} in table {table:?}; nothing was written"
            ),
            Self::KeySize { table, key, len } => write!(
                f,
                "key {key} of table {table:?} encodes to {len} bytes, and the store holds \
                 keys of 1 to {} bytes; nothing was written: use a shorter key (a hash of \
                 it, say), or a key type that encodes to at least one byte",
                super::MAX_KEY_LEN
            ),
            Self::TableName { name, len } => write!(
                f,
                "table name {name:?} is {len} bytes long, and a table's name must be 1 to \
                 {} bytes: use another name",
                super::MAX_KEY_LEN
            ),
            Self::ReservedName { name, of: "table" } => write!(
                f,
                "table name {name:?} starts with `timecast.`, which the store keeps for \
                 the tables of its logs and checkpoints: use another name"
            ),
            Self::ReservedName { name, of } => write!(
                f,
                "{of} name {name:?} holds a `/`, which the store keeps to name the \
                 {of}'s own tables: use another name"
            ),
            Self::CorruptKey { table, bytes } => write!(
                f,
                "stored key bytes {bytes:02x?} in table {table:?} are not a key of the \
                 table's key type: the table was written with another key encoding"
            ),
            Self::LogDecode { log, offset, .. } => write!(
                f,
                "cannot decode record {offset} of log {log:?}: it was not written by this \
                 log's codec and value type; skip it (DecodeErrors::Skip, or seek past it) \
                 or fix the codec"
            ),
            Self::LogEncode { log, .. } => write!(
                f,
                "cannot encode a value for log {log:?} with its codec; nothing was appended"
            ),
            Self::Trimmed { log, offset, start } => write!(
                f,
                "record {offset} of log {log:?} was removed by the log's retention (it \
                 holds offsets {start} and later): seek to {start} or later, or keep more records"
            ),
            Self::CommitPastEnd {
                log,
                group,
                offset,
                end,
            } => write!(
                f,
                "group {group:?} of log {log:?} cannot be committed at offset {offset}: \
                 the log ends at {end} (commit the offset after the last record processed, \
                 at most {end})"
            ),
            Self::UnknownDependency {
                checkpoint,
                dependency: Some(dependency),
                known,
            } => write!(
                f,
                "checkpoint {checkpoint:?} has no dependency {dependency:?} (it has {known:?}): \
                 add it with Checkpoint::dependency, or fix the name"
            ),
            Self::UnknownDependency {
                checkpoint,
                dependency: None,
                known,
            } => write!(
                f,
                "checkpoint {checkpoint:?} has dependencies {known:?}: name the one the \
                 heartbeat is for: checkpoint.heartbeat(marker, \"name\")"
            ),
            Self::Closed => f.write_str("a stream the pipeline sends to is closed"),
            Self::Unsupported { log, what } => {
                write!(f, "log {log:?} does not support {what}")
            }
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Open { source, .. } | Self::Io { source, .. } => Some(&**source),
            Self::Decode { source, .. }
            | Self::Encode { source, .. }
            | Self::LogEncode { source, .. }
            | Self::LogDecode { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// A closed stream among a pipeline's sinks, next to a table: the value is
/// dropped, the pipeline stops with [`StoreError::Closed`].
impl<T> From<Closed<T>> for StoreError {
    fn from(_: Closed<T>) -> Self {
        Self::Closed
    }
}
