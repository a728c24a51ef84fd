//! Layer 5, the store: an embedded, persistent, ordered key-value store in
//! one directory (Slipstream's `Cache`, with no server to start), behind
//! the cargo feature `store` (on by default).
//!
//! - [`Store::open`] a directory (created if missing), or
//!   [`Store::temporary`]; the handle is `Clone + Send + Sync`.
//! - [`Store::table`] gives a typed [`Table<K, V>`]: `put`, `get`,
//!   `remove`, `len`, `range(a..b)` in key order (and reversed), and
//!   [`at_or_before`](Table::at_or_before), the probe of a temporal join.
//!   Keys are [`Key`]s, whose bytes sort in the keys' natural order; values
//!   go through a [`Codec`] ([`Binary`] by default, [`Json`], or yours).
//! - A table is a [`Sink`](crate::sink::Sink): `handle(..).sink_to(table.clone())`
//!   writes each output, then publishes it on
//!   [`table.updates()`](Table::updates) (Slipstream's `async for k, v in cache`).
//!
//! # Commits and durability
//!
//! Every write (`put`, `remove`) of every table of a store joins one
//! pending batch. It is visible at once to reads through any handle of the
//! store (`get`, `range`, `at_or_before`, `len` read the pending writes over
//! the committed ones), and becomes durable at the next commit, which
//! writes the whole batch, across all tables, atomically: after a crash a
//! commit is there in full or not at all. Two levels:
//!
//! | call | returns once the batch is | survives | costs (this kind of machine) |
//! |---|---|---|---|
//! | [`Store::commit`] | in the journal, in the OS's buffers | the process being killed (`kill -9`, a panic, an abort) | a `write` call: microseconds |
//! | [`Store::sync`] | in the journal, on disk (`fsync`) | power loss and OS crashes too | an `fsync`: about a millisecond on an SSD, up to tens on a busy disk |
//!
//! When to commit is set by the store's [`CommitPolicy`]: by default each
//! write is its own commit (as with Slipstream's RocksDB cache). A pipeline
//! writes far faster than a disk syncs, so batch: commit once `n` writes are
//! pending, or once the oldest pending write is `t` old on the loop's clock
//! ([`CommitPolicy::max_writes`], [`CommitPolicy::max_delay`]), and call
//! [`Store::sync`] at checkpoints. [`Store::pending`] tells how many writes
//! wait. The last handle to drop commits what is pending (call
//! [`Store::commit`] before to see its error); [`Store::rollback`]
//! discards it instead. Reopening after a crash needs no repair step.
//!
//! # Logs and exactly-once
//!
//! [`Store::log`] opens a durable [`Log`] kept in the same store, so one
//! commit covers table writes, log appends and group offsets. A
//! [`LogReader`] replays then tails a log; it is also a
//! [`process_stream`](crate::process_stream) source
//! ([`ProcessStream::source`](crate::source::ProcessStream::source)), whose stored
//! records are replayed in virtual time before later appends arrive live.
//! [`Group::consume`] reads through a group exactly once: the group's
//! offset is committed with the pipeline's writes, and a pipeline that
//! stops between checkpoints (an error, a panic, `kill -9`) leaves nothing
//! half done behind.
//!
//! # What blocks
//!
//! Every call blocks the calling thread while it runs; none of them awaits.
//! Reads and buffered commits take microseconds, and are fine on an
//! [`EventLoop`](crate::EventLoop)'s thread. A [`Store::sync`] waits for
//! the disk: to keep a loop's other tasks running, await
//! [`Store::sync_async`], which commits at once and waits for the disk on
//! another thread (reads and writes go on during the `fsync`).
//! Only `Sink::send` on a table awaits: for the subscribers of
//! [`Table::updates`].
//!
//! # Memory
//!
//! Each table and log buffers its latest writes in memory (its memtable)
//! and moves them to disk in the background once they reach
//! [`Store::memtable_size`]: 8 MiB unless set otherwise with
//! [`Store::set_memtable_size`] before the table or log is created. A
//! table or log being written holds a few times that in the process's
//! heap at its peak (about 35 MB at 8 MiB, for a log appended to without
//! pause), and takes it back as it flushes. The flushes run on the store's
//! own threads (two to four, whatever the cores): a writer that outruns
//! them, on a machine whose cores are all busy, holds more until they catch
//! up. The block cache shared by all
//! of them holds up to 32 MiB of what was read from disk. A larger
//! memtable makes reads of recent writes faster (about 20 % for point
//! reads of a table that fits one) for a few times the memory.
//!
//! # Examples
//!
//! ```
//! use timecast::store::Store;
//!
//! let dir = std::env::temp_dir().join(format!("timecast-doc-{}", std::process::id()));
//! {
//!     let store = Store::open(&dir)?;
//!     let counts = store.table::<String, u64>("counts")?;
//!     counts.put(&"🏆".to_string(), &2)?;
//!     store.sync()?; // on disk, even through a power cut
//! }
//! let store = Store::open(&dir)?;
//! let counts = store.table::<String, u64>("counts")?;
//! assert_eq!(counts.get(&"🏆".to_string())?, Some(2));
//! # drop((counts, store));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<_, timecast::store::StoreError>(())
//! ```

pub mod codec;
mod checkpoint;
mod durable;
mod error;
mod key;
mod log;
mod merge;
mod replay;
mod table;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

/// The topic abstraction, at its old paths: see [`crate::topic`].
pub use crate::topic::{Offset, Position, Record, Topic};
pub use checkpoint::{Checkpoint, Dependency, DependencyState, Heartbeat, Pausable, TryPausable};
pub use codec::{Binary, Codec, Json};
pub use durable::{CheckpointScope, Durable};
pub use error::{StoreError, TableTypes};
pub use key::Key;
pub use log::{DecodeErrors, ExactlyOnce, Group, Log, LogReader, Retention, SeekHandle};
pub use replay::{LogLive, LogPast};
pub use table::{Range, Table};

/// The longest key a table holds, and the longest table name, in bytes
/// (encoded: see [`Key`]). Longer ones are refused with
/// [`StoreError::KeySize`] or [`StoreError::TableName`].
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::time::Timestamp;

/// When a [`Store`] commits its pending writes by itself. Whatever the
/// policy, [`Store::commit`] and [`Store::sync`] commit at once, and the
/// last handle to drop commits what is pending.
///
/// A write that fills the batch, or that finds the oldest pending write
/// `max_delay` old, commits the batch. Time is the loop's clock on an
/// [`EventLoop`](crate::EventLoop)'s thread (virtual in replay, so the same
/// input commits at the same points), the wall clock elsewhere. On a loop's
/// thread, the first write of a batch also schedules a commit `max_delay`
/// later on the loop's clock, so a batch is committed on time even if no
/// write follows; off a loop, the check runs only at writes, and
/// [`Store::commit`] (or dropping the last handle) commits the rest.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::store::{CommitPolicy, Store};
///
/// let store = Store::temporary()?;
/// store.set_commit_policy(CommitPolicy::manual().max_writes(3).max_delay(Duration::from_secs(1)));
/// let t = store.table::<u32, u32>("t")?;
/// t.put(&1, &1)?;
/// t.put(&2, &2)?;
/// assert_eq!(store.pending(), 2);
/// assert_eq!(t.get(&2)?, Some(2)); // visible before the commit
/// t.put(&3, &3)?; // the third write commits the batch
/// assert_eq!(store.pending(), 0);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommitPolicy {
    max_writes: Option<usize>,
    max_delay: Option<Duration>,
}

impl CommitPolicy {
    /// Each write is its own commit: the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::CommitPolicy;
    /// assert_eq!(CommitPolicy::default(), CommitPolicy::every_write());
    /// ```
    pub const fn every_write() -> Self {
        Self {
            max_writes: Some(1),
            max_delay: None,
        }
    }

    /// No automatic commit: only [`Store::commit`], [`Store::sync`] and the
    /// drop of the last handle commit. Add limits with
    /// [`max_writes`](Self::max_writes) and [`max_delay`](Self::max_delay).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{CommitPolicy, Store};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual());
    /// let t = store.table::<u32, String>("t")?;
    /// t.put(&1, &"one".into())?;
    /// assert_eq!(store.pending(), 1);
    /// store.commit()?;
    /// assert_eq!(store.pending(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub const fn manual() -> Self {
        Self {
            max_writes: None,
            max_delay: None,
        }
    }

    /// Also commit once `n` writes are pending (`0` counts as `1`).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::CommitPolicy;
    /// assert_eq!(CommitPolicy::manual().max_writes(1), CommitPolicy::every_write());
    /// ```
    pub const fn max_writes(mut self, n: usize) -> Self {
        self.max_writes = Some(if n == 0 { 1 } else { n });
        self
    }

    /// Also commit once the oldest pending write is `delay` old: at a later
    /// write, or, on an [`EventLoop`](crate::EventLoop)'s thread, at a
    /// timer on the loop's clock that the batch's first write schedules.
    ///
    /// # Examples
    ///
    /// In virtual time, the commits fall at the same points on every run:
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::{sleep, store::{CommitPolicy, Store}, EventLoop, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual().max_delay(Duration::from_secs(10)));
    /// let t = store.table::<u32, u32>("t")?;
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// let pending = el.block_on(async move {
    ///     let mut pending = Vec::new();
    ///     for i in 0..4 {
    ///         t.put(&i, &i)?;
    ///         pending.push(t.store().pending());
    ///         sleep(Duration::from_secs(4)).await;
    ///     }
    ///     Ok::<_, timecast::store::StoreError>(pending)
    /// })?;
    /// // Writes at 0 s, 4 s and 8 s wait; the timer the first one set
    /// // commits them at 10 s, so the write at 12 s starts a new batch.
    /// assert_eq!(pending, [1, 2, 3, 1]);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = Some(delay);
        self
    }
}

impl Default for CommitPolicy {
    fn default() -> Self {
        Self::every_write()
    }
}

/// A handle to an embedded store in one directory: its tables, committed
/// together. Clones share the store; the last one to drop commits what is
/// pending and closes it (and, for [`temporary`](Store::temporary), removes
/// the directory). See the [module docs](self) for durability.
///
/// # Examples
///
/// Two tables written in one atomic commit:
///
/// ```
/// use timecast::store::{CommitPolicy, Store};
///
/// let store = Store::temporary()?;
/// store.set_commit_policy(CommitPolicy::manual());
/// let balances = store.table::<String, i64>("balances")?;
/// let transfers = store.table::<u64, (String, String, i64)>("transfers")?;
/// transfers.put(&1, &("ann".into(), "bob".into(), 5))?;
/// balances.put(&"ann".into(), &-5)?;
/// balances.put(&"bob".into(), &5)?;
/// store.commit()?; // all three writes, or (after a crash) none
/// assert_eq!(balances.len()?, 2);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The shared state of a store.
struct Inner {
    db: Database,
    path: PathBuf,
    /// Table name → its record: `keyspace \n key type \n value type \n codec`.
    meta: Keyspace,
    /// The tables opened in this process. Lock order: `tables`, then `state`.
    tables: Mutex<HashMap<String, Registered>>,
    state: Mutex<State>,
    commits: AtomicU64,
    /// The memtable size tables and logs created from now on get.
    memtable_size: AtomicU64,
    /// The logs opened in this process: their offsets and waiting readers,
    /// shared by every handle of a log.
    /// Held weakly: a log's state lives while a handle of it does.
    logs: Mutex<HashMap<String, std::sync::Weak<log::Shared>>>,
}

/// A table opened in this process.
struct Registered {
    index: usize,
    keyspace: Keyspace,
    types: TableTypes,
    /// The table's `AsyncStream<(K, V)>` of updates.
    updates: Box<dyn Any + Send + Sync>,
}

/// The pending batch.
///
/// # Invariants
///
/// `writes` counts the puts and removes since the last commit; it is 0 if
/// and only if every overlay is empty. `since` is `None` when `writes` is
/// 0, or when no write was made under a policy with a delay.
struct State {
    /// One per registered table, by its index.
    overlays: Vec<Overlay>,
    writes: usize,
    /// When the oldest pending write was made, and on which clock.
    since: Option<Stamp>,
    policy: CommitPolicy,
}

/// A time on the clock that a write read: the loop's (`on_loop`) or the
/// wall clock.
#[derive(Clone, Copy)]
struct Stamp {
    at: Timestamp,
    on_loop: bool,
}

impl Stamp {
    /// Now, on the loop's clock on a loop's thread, the wall clock elsewhere.
    fn now() -> Self {
        match loop_clock() {
            Some(at) => Stamp { at, on_loop: true },
            None => Stamp {
                at: Timestamp::now(),
                on_loop: false,
            },
        }
    }

    /// Whether a batch begun at `self` is `delay` old at `now`. Times on
    /// two clocks do not compare (a replay's virtual time may lie years
    /// before the wall clock), nor does a clock that went back (another
    /// loop's): the batch's age is then unknown, and it is due, so that
    /// no batch waits forever.
    fn is_due(self, now: Stamp, delay: Duration) -> bool {
        if self.on_loop != now.on_loop {
            return true;
        }
        match now.at.checked_duration_since(self.at) {
            Some(age) => age >= delay,
            None => true,
        }
    }
}

/// The pending writes of one table: the new value, or `None` for a removal.
struct Overlay {
    keyspace: Keyspace,
    writes: BTreeMap<PendingKey, Option<fjall::Slice>>,
}

/// A key of the pending writes, ordered as its bytes are, but compared by
/// its first eight bytes (big-endian, zero-padded) first: one integer
/// comparison orders most pairs of keys (all the offsets of a log), where
/// comparing the bytes calls `memcmp`.
///
/// # Invariants
///
/// `prefix` is the first eight bytes of `bytes`, zero-padded. Two keys
/// whose prefixes differ are ordered as their prefixes: at the first byte
/// where the padded prefixes differ, either both keys have a byte (ordered
/// as it), or the shorter one ended there (its padding is 0, the other's
/// byte is not), and the shorter sorts first, as in byte order.
#[derive(Clone, Debug)]
pub(crate) struct PendingKey {
    prefix: u64,
    bytes: fjall::Slice,
}

impl PendingKey {
    pub(crate) fn new(bytes: fjall::Slice) -> Self {
        let mut head = [0; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        PendingKey {
            prefix: u64::from_be_bytes(head),
            bytes,
        }
    }

    pub(crate) fn of(bytes: &[u8]) -> Self {
        Self::new(fjall::Slice::from(bytes))
    }

    pub(crate) fn bytes(&self) -> &fjall::Slice {
        &self.bytes
    }
}

impl PartialEq for PendingKey {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix && self.bytes == other.bytes
    }
}

impl Eq for PendingKey {}

impl PartialOrd for PendingKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PendingKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.bytes[..].cmp(&other.bytes[..]))
    }
}

/// The keyspace holding the table records.
const META: &str = "timecast.tables";

/// The prefix of the names of the store's own tables (those of logs and
/// checkpoints), which users' tables may not take.
pub(crate) const RESERVED: &str = "timecast.";

impl Store {
    /// The memtable size of tables and logs unless
    /// [`set_memtable_size`](Self::set_memtable_size) says otherwise: 8 MiB.
    pub const DEFAULT_MEMTABLE_SIZE: u64 = 8 << 20;

    /// The smallest memtable size: 1 MiB. Smaller settings are raised to it.
    pub const MIN_MEMTABLE_SIZE: u64 = 1 << 20;

    /// Opens the store in the directory `path`, creating it if missing.
    ///
    /// A store is held by one handle (and its clones) at a time: opening
    /// a directory that another process, or another `open` of this process,
    /// holds fails with [`StoreError::Locked`], and never corrupts it.
    /// Opening after a crash recovers every commit that was acknowledged,
    /// with no repair step.
    ///
    /// # Errors
    ///
    /// [`StoreError::Locked`] if the store is held; [`StoreError::Open`] if
    /// the directory cannot be created or read.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Store;
    ///
    /// let dir = std::env::temp_dir().join(format!("timecast-open-{}", std::process::id()));
    /// let store = Store::open(&dir)?;
    /// assert_eq!(store.path(), dir);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Self::open_with(path.as_ref(), false)
    }

    /// Opens a new store in a fresh directory under the system's temporary
    /// directory, removed when the last handle drops.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`] if the directory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Store;
    ///
    /// let store = Store::temporary()?;
    /// let dir = store.path().to_path_buf();
    /// assert!(dir.exists());
    /// drop(store);
    /// assert!(!dir.exists());
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn temporary() -> Result<Store, StoreError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = Timestamp::now().unix_nanos();
        let path =
            std::env::temp_dir().join(format!("timecast-store-{}-{nanos}-{n}", std::process::id()));
        Self::open_with(&path, true)
    }

    fn open_with(path: &Path, temporary: bool) -> Result<Store, StoreError> {
        let open_error = |source: fjall::Error| match source {
            fjall::Error::Locked => StoreError::Locked {
                path: path.to_path_buf(),
            },
            source => StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
        };
        // fjall starts a worker per core, up to 4. A single worker (one
        // core, or a process limited to one) was seen to stop rotating full
        // memtables while writes went on, so that they grew with what was
        // written: two at least keep them to their size.
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let db = Database::builder(path)
            .temporary(temporary)
            .worker_threads(workers.clamp(2, 4))
            .open()
            .map_err(open_error)?;
        let meta = db
            .keyspace(META, KeyspaceCreateOptions::default)
            .map_err(open_error)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                path: path.to_path_buf(),
                meta,
                tables: Mutex::new(HashMap::new()),
                state: Mutex::new(State {
                    overlays: Vec::new(),
                    writes: 0,
                    since: None,
                    policy: CommitPolicy::default(),
                }),
                commits: AtomicU64::new(0),
                memtable_size: AtomicU64::new(Store::DEFAULT_MEMTABLE_SIZE),
                logs: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert!(store.path().is_dir());
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Opens the table `name`, creating it if missing, with keys `K` and
    /// values `V` in the [`Binary`] codec. Any number of handles may open
    /// one table; they share its contents and its
    /// [`updates`](Table::updates).
    ///
    /// # Errors
    ///
    /// [`StoreError::TableTypes`] if the table exists with other key, value
    /// or codec types (the store records them when it creates the table);
    /// [`StoreError::TableName`] if `name` is empty or longer than
    /// [`MAX_KEY_LEN`] bytes; [`StoreError::ReservedName`] if it starts
    /// with `timecast.`, the prefix of the store's own tables;
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let prices = store.table::<(String, Timestamp), f64>("prices")?;
    /// prices.put(&("ACME".into(), Timestamp::from_unix_secs(60)), &12.5)?;
    /// assert_eq!(prices.len()?, 1);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn table<K, V>(&self, name: &str) -> Result<Table<K, V>, StoreError>
    where
        K: Key + Send + Sync + 'static,
        V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.table_with(name, Binary)
    }

    /// Opens the table `name` with values in `codec`, creating it if
    /// missing. See [`table`](Self::table).
    ///
    /// # Errors
    ///
    /// As [`table`](Self::table); the codec's [`name`](Codec::name) is
    /// checked too.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{Json, Store};
    ///
    /// let store = Store::temporary()?;
    /// let t = store.table_with::<u64, Vec<String>, _>("tags", Json)?;
    /// t.put(&7, &vec!["🐟".into()])?;
    /// assert_eq!(t.get(&7)?, Some(vec!["🐟".to_string()]));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn table_with<K, V, C>(&self, name: &str, codec: C) -> Result<Table<K, V, C>, StoreError>
    where
        K: Key + Send + Sync + 'static,
        V: Send + Sync + 'static,
        C: Codec<V>,
    {
        if name.starts_with(RESERVED) {
            return Err(StoreError::ReservedName {
                name: name.chars().take(64).collect(),
                of: "table",
            });
        }
        self.open_table(name, codec)
    }

    /// [`table_with`](Self::table_with) for the store's own tables, whose
    /// names start with [`RESERVED`].
    pub(crate) fn open_table<K, V, C>(
        &self,
        name: &str,
        codec: C,
    ) -> Result<Table<K, V, C>, StoreError>
    where
        K: Key + Send + Sync + 'static,
        V: Send + Sync + 'static,
        C: Codec<V>,
    {
        if name.is_empty() || name.len() > MAX_KEY_LEN {
            return Err(StoreError::TableName {
                name: name.chars().take(64).collect(),
                len: name.len(),
            });
        }
        let requested = TableTypes {
            key: std::any::type_name::<K>().to_string(),
            value: std::any::type_name::<V>().to_string(),
            codec: codec.name(),
        };
        let mismatch = |stored: TableTypes| StoreError::TableTypes {
            table: name.to_string(),
            stored: Box::new(stored),
            requested: Box::new(requested.clone()),
        };
        let mut tables = self.inner.tables.lock();
        if let Some(t) = tables.get(name) {
            if t.types != requested {
                return Err(mismatch(t.types.clone()));
            }
            let updates = t
                .updates
                .downcast_ref::<crate::AsyncStream<(K, V)>>()
                .ok_or_else(|| mismatch(t.types.clone()))?
                .clone();
            return Ok(Table::new(
                self.clone(),
                name,
                t.index,
                t.keyspace.clone(),
                codec,
                updates,
            ));
        }
        let io = |op: &str, source: fjall::Error| self.inner.io_error(op, source);
        let record = self
            .inner
            .meta
            .get(name.as_bytes())
            .map_err(|e| io(&format!("reading the record of table {name:?}"), e))?;
        let keyspace_name = match record {
            Some(record) => {
                let record = String::from_utf8_lossy(&record).into_owned();
                // The codec's name, last, may hold line breaks.
                let mut fields = record.splitn(4, '\n').map(str::to_string);
                let keyspace_name = fields.next().unwrap_or_default();
                let stored = TableTypes {
                    key: fields.next().unwrap_or_default(),
                    value: fields.next().unwrap_or_default(),
                    codec: fields.next().unwrap_or_default(),
                };
                if stored != requested {
                    return Err(mismatch(stored));
                }
                keyspace_name
            }
            None => {
                // Keyspace names are short and unique whatever the table's name.
                let count = self
                    .inner
                    .meta
                    .len()
                    .map_err(|e| io("counting the tables", e))?;
                let keyspace_name = format!("t{count}");
                let record = format!(
                    "{keyspace_name}\n{}\n{}\n{}",
                    requested.key, requested.value, requested.codec
                );
                self.inner
                    .meta
                    .insert(name.as_bytes(), record.as_bytes())
                    .map_err(|e| io(&format!("recording table {name:?}"), e))?;
                keyspace_name
            }
        };
        let keyspace = self
            .inner
            .db
            .keyspace(&keyspace_name, || {
                KeyspaceCreateOptions::default().max_memtable_size(self.memtable_size())
            })
            .map_err(|e| io(&format!("opening table {name:?}"), e))?;
        let updates = crate::AsyncStream::<(K, V)>::with_capacity(table::UPDATES_CAPACITY);
        let index = {
            let mut state = self.inner.state.lock();
            state.overlays.push(Overlay {
                keyspace: keyspace.clone(),
                writes: BTreeMap::new(),
            });
            state.overlays.len() - 1
        };
        tables.insert(
            name.to_string(),
            Registered {
                index,
                keyspace: keyspace.clone(),
                types: requested,
                updates: Box::new(updates.clone()),
            },
        );
        drop(tables);
        Ok(Table::new(
            self.clone(),
            name,
            index,
            keyspace,
            codec,
            updates,
        ))
    }

    /// Sets when the store commits by itself (see [`CommitPolicy`]). The
    /// writes already pending are checked against the new policy at the
    /// next write.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{CommitPolicy, Store};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual().max_writes(1000));
    /// assert_eq!(store.commit_policy(), CommitPolicy::manual().max_writes(1000));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn set_commit_policy(&self, policy: CommitPolicy) {
        self.inner.state.lock().policy = policy;
    }

    /// The store's [`CommitPolicy`].
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{CommitPolicy, Store};
    /// assert_eq!(Store::temporary()?.commit_policy(), CommitPolicy::every_write());
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commit_policy(&self) -> CommitPolicy {
        self.inner.state.lock().policy
    }

    /// Sets the memtable size of the tables and logs created from now on
    /// (see [Memory](self#memory)), at least [`MIN_MEMTABLE_SIZE`](Self::MIN_MEMTABLE_SIZE):
    /// once a table's writes kept in memory reach it, they are moved to
    /// disk in the background. A table or log keeps the size it was created
    /// with, across reopening too: this one setting does not change the
    /// tables and logs that exist.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Store;
    ///
    /// let store = Store::temporary()?;
    /// store.set_memtable_size(64 << 20); // a hot table: faster reads of recent writes
    /// let prices = store.table::<u64, f64>("prices")?; // keeps 64 MiB, reopened too
    /// prices.put(&1, &101.5)?;
    /// store.set_memtable_size(Store::DEFAULT_MEMTABLE_SIZE);
    /// assert_eq!(store.memtable_size(), 8 << 20);
    /// store.set_memtable_size(0);
    /// assert_eq!(store.memtable_size(), Store::MIN_MEMTABLE_SIZE);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn set_memtable_size(&self, bytes: u64) {
        self.inner
            .memtable_size
            .store(bytes.max(Self::MIN_MEMTABLE_SIZE), Ordering::Relaxed);
    }

    /// The memtable size the tables and logs created from now on get (see
    /// [`set_memtable_size`](Self::set_memtable_size)).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Store;
    /// assert_eq!(Store::temporary()?.memtable_size(), Store::DEFAULT_MEMTABLE_SIZE);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn memtable_size(&self) -> u64 {
        self.inner.memtable_size.load(Ordering::Relaxed)
    }

    /// How many writes (puts and removes, of all tables) wait for the next
    /// commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{CommitPolicy, Store};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual());
    /// let t = store.table::<u8, u8>("t")?;
    /// t.put(&1, &1)?;
    /// t.remove(&1)?;
    /// assert_eq!(store.pending(), 2);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn pending(&self) -> usize {
        self.inner.state.lock().writes
    }

    /// How many commits this process made in this store (across all
    /// handles), counting only those that wrote something.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u8, u8>("t")?;
    /// t.put(&1, &1)?; // the default policy commits each write
    /// store.commit()?; // nothing pending: no commit
    /// assert_eq!(store.commits(), 1);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Commits every pending write of every table, atomically: once this
    /// returns, they survive the process being killed (`kill -9`), but not
    /// necessarily a power loss (see [`sync`](Self::sync)).
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread for a `write` to the journal
    /// (microseconds); other threads' reads and writes of this store wait
    /// meanwhile.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the journal cannot be written; the previous
    /// commits are kept, and the pending writes stay pending: the next
    /// commit tries them again. If the disk stays at fault, fix it and
    /// reopen the store (the writes still pending are then lost).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{CommitPolicy, Store};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual());
    /// store.table::<u8, u8>("t")?.put(&1, &1)?;
    /// store.commit()?;
    /// assert_eq!((store.pending(), store.commits()), (0, 1));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commit(&self) -> Result<(), StoreError> {
        let mut state = self.inner.state.lock();
        self.inner.commit_locked(&mut state)
    }

    /// Discards every pending write of every table and log: the store is
    /// back at its last commit, as a restart after `kill -9` would find it.
    /// Returns how many writes were discarded.
    ///
    /// Each open [`Log`] goes back to its committed end: the offsets of the
    /// discarded appends are given again to the next appends, and a reader
    /// that had read past the committed end (or was placed past it by
    /// [`Offset::End`] or [`Offset::Time`]) resumes at it, unless it is
    /// moved ([`LogReader::seek`], [`SeekHandle`]) before it next reads.
    /// (Readers see
    /// appends before they are committed, as Kafka's default
    /// `read_uncommitted` consumers do; what such a reader yielded from the
    /// discarded appends is not taken back.)
    ///
    /// A log opened since the last commit, and still open, is recorded
    /// again (its value type and codec, so that a later open is checked
    /// against them): that record is then the one write pending.
    ///
    /// [`ExactlyOnce`] calls this when it is dropped with records yielded
    /// since its last checkpoint, so that a pipeline that stops on an error
    /// leaves no half-processed work behind to be committed without its
    /// offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::{CommitPolicy, Store}, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// store.set_commit_policy(CommitPolicy::manual());
    /// let (t, log) = (store.table::<u8, u8>("t")?, store.log::<u8>("l")?);
    /// t.put(&1, &1)?;
    /// log.append(Timestamp::UNIX_EPOCH, &1)?;
    /// store.commit()?;
    /// t.put(&1, &2)?;
    /// log.append(Timestamp::UNIX_EPOCH, &2)?;
    /// assert_eq!(store.rollback(), 2);
    /// assert_eq!((t.get(&1)?, log.end()), (Some(1), 1));
    /// assert_eq!(log.append(Timestamp::UNIX_EPOCH, &3)?, 1); // offset 1 again
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn rollback(&self) -> usize {
        let logs: Vec<_> = {
            let logs = self.inner.logs.lock();
            let mut open: Vec<_> = logs.values().filter_map(std::sync::Weak::upgrade).collect();
            open.sort_by(|a, b| a.name().cmp(b.name()));
            open
        };
        // Appends take their log's lock, then the store's: hold every
        // log's lock so that none appends across the rollback.
        let mut held: Vec<_> = logs.iter().map(|l| l.lock_state()).collect();
        let discarded = {
            let mut state = self.inner.state.lock();
            let discarded = state.writes;
            for overlay in &mut state.overlays {
                overlay.writes.clear();
            }
            state.writes = 0;
            state.since = None;
            discarded
        };
        for (log, state) in logs.iter().zip(&mut held) {
            log.reload(state);
        }
        drop(held);
        discarded
    }

    /// Commits every pending write, as [`commit`](Self::commit), then
    /// forces the journal to disk (`fsync`): once this returns, every commit
    /// so far survives a power loss or an OS crash too.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until the disk acknowledges: about a
    /// millisecond on an SSD, tens on a busy disk. The store is not locked
    /// during the `fsync`: other threads keep reading and writing. To keep
    /// an event loop's tasks running, sync on another thread:
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let syncing = std::thread::spawn({
    ///     let store = store.clone();
    ///     move || store.sync()
    /// });
    /// // ... the loop goes on ...
    /// syncing.join().expect("the sync thread panicked")?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit); [`StoreError::Io`] if the `fsync`
    /// fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// store.table::<u8, u8>("t")?.put(&1, &1)?;
    /// store.sync()?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn sync(&self) -> Result<(), StoreError> {
        self.commit()?;
        self.inner
            .db
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.inner.io_error("sync", e))
    }

    /// [`sync`](Self::sync) without blocking the caller on the disk:
    /// commits the pending writes now (microseconds), then forces the
    /// journal to disk on a new thread; the future resolves once the disk
    /// acknowledged. Await it on an [`EventLoop`](crate::EventLoop) (or any
    /// executor) and the loop's other tasks run during the `fsync`.
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync): the commit's error at once, the `fsync`'s
    /// when the future resolves.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the `fsync`, nor undo the commit;
    /// it drops the outcome.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, EventLoop};
    ///
    /// let store = Store::temporary()?;
    /// let t = store.table::<u8, u8>("t")?;
    /// t.put(&1, &1)?;
    /// EventLoop::new().simulated().block_on(store.sync_async())?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn sync_async(
        &self,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + 'static {
        // The outcome goes in `slot`; `done` wakes the future.
        let done = crate::AsyncStream::<()>::with_capacity(1);
        let mut woken = done.subscribe();
        let slot = Arc::new(Mutex::new(None));
        let started = self.commit().and_then(|()| {
            let (store, slot) = (self.clone(), slot.clone());
            std::thread::Builder::new()
                .name("timecast-sync".into())
                .spawn(move || {
                    let synced = store
                        .inner
                        .db
                        .persist(PersistMode::SyncAll)
                        .map_err(|e| store.inner.io_error("sync", e));
                    *slot.lock() = Some(synced);
                    // Nobody to wake if the future was dropped.
                    let _ = done.try_put(());
                })
                .map(drop)
                .map_err(|e| StoreError::Io {
                    path: self.inner.path.clone(),
                    op: "starting the sync thread".into(),
                    source: Box::new(e),
                })
        });
        let path = self.inner.path.clone();
        async move {
            started?;
            woken.recv().await;
            let outcome = slot.lock().take();
            outcome.unwrap_or_else(|| {
                Err(StoreError::Io {
                    path,
                    op: "sync".into(),
                    source: "the sync thread panicked".into(),
                })
            })
        }
    }
}

/// The clock of the loop running on this thread, if any.
fn loop_clock() -> Option<Timestamp> {
    crate::time::try_with_core(|core| core.clock.get())
}

impl Inner {
    fn io_error(&self, op: &str, source: fjall::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            op: op.to_string(),
            source: Box::new(source),
        }
    }

    /// Stages one write of the table `index`, then commits if the policy
    /// says so. On a loop's thread, the first write of a batch under a
    /// policy with a delay also schedules a commit on the loop's clock,
    /// so a batch that no later write fills is committed on time.
    fn write(
        self: &Arc<Self>,
        index: usize,
        key: fjall::Slice,
        value: Option<fjall::Slice>,
    ) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        state.overlays[index]
            .writes
            .insert(PendingKey::new(key), value);
        state.writes += 1;
        let policy = state.policy;
        let full = policy.max_writes.is_some_and(|n| state.writes >= n);
        // The clock is read only for a policy with a delay: the loop's
        // clock on a loop's thread, the wall clock elsewhere.
        let mut first_of_batch = false;
        let due = policy.max_delay.is_some_and(|delay| {
            let now = Stamp::now();
            first_of_batch = state.since.is_none();
            state.since.get_or_insert(now).is_due(now, delay)
        });
        if full || due {
            return self.commit_locked(&mut state);
        }
        drop(state);
        if let (true, Some(delay)) = (first_of_batch, policy.max_delay) {
            self.schedule_commit(delay);
        }
        Ok(())
    }

    /// On a loop's thread, commits the pending batch `delay` from now on the
    /// loop's clock, if it is still pending and old enough then. A commit
    /// that fails there leaves the batch pending: the next write, commit or
    /// sync tries again and returns the error.
    fn schedule_commit(self: &Arc<Self>, delay: Duration) {
        if loop_clock().is_none() {
            return;
        }
        let store = Arc::downgrade(self);
        crate::time::call_later(delay, move || {
            let Some(inner) = store.upgrade() else { return };
            let mut state = inner.state.lock();
            let due = state
                .since
                .is_some_and(|since| since.is_due(Stamp::now(), delay));
            if due {
                let _ = inner.commit_locked(&mut state);
            }
        });
    }

    /// Writes the pending batch in one atomic write batch.
    fn commit_locked(&self, state: &mut State) -> Result<(), StoreError> {
        if state.writes == 0 {
            return Ok(());
        }
        let mut batch = fjall::OwnedWriteBatch::with_capacity(self.db.clone(), state.writes)
            .durability(Some(PersistMode::Buffer));
        // The batch shares the pending slices (reference counted), and the
        // pending writes stay until it is committed: a commit that fails
        // loses nothing, and the next one tries again.
        for overlay in &state.overlays {
            for (key, value) in &overlay.writes {
                let key = key.bytes().clone();
                match value {
                    Some(value) => batch.insert(&overlay.keyspace, key, value.clone()),
                    None => batch.remove(&overlay.keyspace, key),
                }
            }
        }
        batch.commit().map_err(|e| self.io_error("commit", e))?;
        for overlay in &mut state.overlays {
            overlay.writes.clear();
        }
        state.writes = 0;
        state.since = None;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: `Store::commit` before the drop reports errors.
        let mut state = self.state.lock();
        let _ = self.commit_locked(&mut state);
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::key::tests::Rng;
    use super::PendingKey;

    /// Pending keys sort exactly as their bytes, whatever their lengths
    /// and however many zero bytes they hold.
    #[test]
    fn pending_keys_sort_as_their_bytes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut key = || -> Vec<u8> {
            let len = (rng.next() % 12) as usize;
            // Few byte values, so that prefixes often tie.
            (0..len).map(|_| (rng.next() % 3) as u8).collect()
        };
        for _ in 0..20_000 {
            let (a, b) = (key(), key());
            let (pa, pb) = (PendingKey::of(&a), PendingKey::of(&b));
            assert_eq!(pa.cmp(&pb), a.cmp(&b), "{a:?} vs {b:?}");
            assert_eq!(pa == pb, a == b);
        }
    }
}
