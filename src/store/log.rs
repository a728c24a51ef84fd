//! [`Log`]: a durable, append-only topic with dense offsets, tailing
//! readers and committed groups (Slipstream's `Topic`, embedded).
//!
//! # Layout
//!
//! A log `name` is kept in tables of its store, so that its appends join
//! the store's pending batch and one [`Store::commit`] covers tables, log
//! appends and group offsets together:
//!
//! - `timecast.log/{name}`: offset (big-endian `u64`) → the record's event
//!   time, the highest event time of the records up to it, and the value's
//!   bytes in the log's codec;
//! - `timecast.log/{name}/groups`: group name → committed offset;
//! - `timecast.logs`: name → the value and codec types, and the first
//!   offset still held (raised by [`Retention`]).
//!
//! Event times need not be non-decreasing. [`Offset::Time`] binary-searches
//! the running maximum of event times (which never decreases), then skips
//! forward to the first record whose own time is at or after the target.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use super::codec::{Binary, Codec, CodecError};
use super::{Store, StoreError, Table, TableTypes};
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::time::Timestamp;
use crate::topic::{Offset, Position, Record, Topic};

/// What a [`LogReader`] does with a record its codec cannot decode.
///
/// # Examples
///
/// ```
/// use timecast::store::DecodeErrors;
/// assert_eq!(DecodeErrors::default(), DecodeErrors::Stop);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DecodeErrors {
    /// Yield [`StoreError::LogDecode`] (naming the log and the offset) and
    /// end the stream; [`seek`](LogReader::seek) to go on.
    #[default]
    Stop,
    /// Skip the record, counting it in [`LogReader::skipped`].
    Skip,
}

/// How much of a log to keep. The oldest records beyond the limits are
/// removed at each append; offsets stay valid (never reused), and a read
/// below the retained range fails with [`StoreError::Trimmed`].
///
/// # Examples
///
/// ```
/// use timecast::{store::{Retention, Store}, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<u32>("metrics")?;
/// log.set_retention(Retention::count(2));
/// for i in 0..5 {
///     log.append(Timestamp::from_unix_secs(i), &(i as u32))?;
/// }
/// assert_eq!(log.start(), 3);
/// assert_eq!(log.end(), 5);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Retention {
    count: Option<u64>,
    age: Option<Duration>,
}

impl Retention {
    /// Keep everything: the default.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Retention;
    /// assert_eq!(Retention::forever(), Retention::default());
    /// ```
    pub const fn forever() -> Self {
        Self {
            count: None,
            age: None,
        }
    }

    /// Keep the newest `n` records (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Retention;
    /// assert_ne!(Retention::count(10), Retention::forever());
    /// ```
    pub const fn count(n: u64) -> Self {
        Self::forever().and_count(n)
    }

    /// Keep the records whose event time is within `age` of the newest
    /// appended record's event time (event time, so that a replay keeps the
    /// same records).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::store::Retention;
    /// let r = Retention::age(Duration::from_secs(3600)).and_count(1_000_000);
    /// assert_ne!(r, Retention::forever());
    /// ```
    pub const fn age(age: Duration) -> Self {
        Self::forever().and_age(age)
    }

    /// Also keep at most `n` records (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Retention;
    /// assert_eq!(Retention::forever().and_count(0), Retention::count(1));
    /// ```
    pub const fn and_count(mut self, n: u64) -> Self {
        self.count = Some(if n == 0 { 1 } else { n });
        self
    }

    /// Also drop records older than `age` (see [`age`](Self::age)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::store::Retention;
    /// let _ = Retention::count(10).and_age(Duration::from_secs(60));
    /// ```
    pub const fn and_age(mut self, age: Duration) -> Self {
        self.age = Some(age);
        self
    }
}

/// A stored record: event time, running maximum of event times, value bytes.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    ts: i64,
    max: i64,
    bytes: Vec<u8>,
}

/// The codec of [`Entry`]: two big-endian `i64`s, then the value's bytes.
struct EntryCodec;

impl Codec<Entry> for EntryCodec {
    fn name(&self) -> String {
        "timecast.log-entry.1".into()
    }

    fn encode(&self, value: &Entry, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(&value.ts.to_be_bytes());
        out.extend_from_slice(&value.max.to_be_bytes());
        out.extend_from_slice(&value.bytes);
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<Entry, CodecError> {
        if bytes.len() < 16 {
            return Err("a log entry shorter than its 16-byte header".into());
        }
        let (ts, rest) = bytes.split_at(8);
        let (max, value) = rest.split_at(8);
        let i64_of = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        Ok(Entry {
            ts: i64_of(ts),
            max: i64_of(max),
            bytes: value.to_vec(),
        })
    }
}

/// What `timecast.logs` records of a log.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Meta {
    value: String,
    codec: String,
    /// The oldest offset held.
    start: u64,
    /// The next offset, as of the last trim (the records give it otherwise).
    next: u64,
    /// The running maximum of event times, as of the last trim.
    max: Option<i64>,
}

/// One log's state in this process, shared by all its handles.
pub(crate) struct Shared {
    name: String,
    records: Table<u64, Entry, EntryCodec>,
    groups: Table<String, u64>,
    metas: Table<String, Meta>,
    /// How many times [`Store::rollback`] moved the log back.
    rollbacks: AtomicU64,
    state: Mutex<LogState>,
}

/// # Invariants
///
/// The records held are exactly the offsets `start..next`.
pub(super) struct LogState {
    start: u64,
    next: u64,
    max: Option<i64>,
    types: (String, String),
    retention: Retention,
    /// The readers, by id, each with the lowest end a rollback left since
    /// it last looked (`None`: no rollback since). One entry per live
    /// reader, however many rollbacks there were.
    readers: HashMap<u64, Option<u64>>,
    /// Readers waiting for the next append, by reader id.
    waiting: HashMap<u64, Waker>,
    next_reader: u64,
}

impl LogState {
    /// The log's record: its types and bounds now.
    fn meta(&self) -> Meta {
        Meta {
            value: self.types.0.clone(),
            codec: self.types.1.clone(),
            start: self.start,
            next: self.next,
            max: self.max,
        }
    }
}

impl Shared {
    fn open(store: &Store, name: &str) -> Result<Shared, StoreError> {
        let records =
            store.open_table::<u64, Entry, _>(&format!("timecast.log/{name}"), EntryCodec)?;
        let groups =
            store.open_table::<String, u64, _>(&format!("timecast.log/{name}/groups"), Binary)?;
        let metas = store.open_table::<String, Meta, _>("timecast.logs", Binary)?;
        let meta = metas.get(&name.to_string())?;
        let (start, next, max) = Self::bounds(&records, meta.as_ref())?;
        let types = meta.map_or_else(Default::default, |m| (m.value, m.codec));
        Ok(Shared {
            name: name.to_string(),
            records,
            groups,
            metas,
            rollbacks: AtomicU64::new(0),
            state: Mutex::new(LogState {
                start,
                next,
                max,
                types,
                retention: Retention::forever(),
                readers: HashMap::new(),
                waiting: HashMap::new(),
                next_reader: 0,
            }),
        })
    }

    /// The first offset held, the next offset and the running maximum of
    /// event times, as the records and the log's `meta` give them.
    fn bounds(
        records: &Table<u64, Entry, EntryCodec>,
        meta: Option<&Meta>,
    ) -> Result<(u64, u64, Option<i64>), StoreError> {
        let (mut start, mut next, mut max) =
            meta.map_or((0, 0, None), |m| (m.start, m.next, m.max));
        if let Some((offset, entry)) = records.range(..)?.next_back().transpose()? {
            next = next.max(offset + 1);
            max = Some(entry.max);
        }
        if let Some((first, _)) = records.range(..)?.next().transpose()? {
            start = start.max(first);
        } else {
            start = next;
        }
        Ok((start, next, max))
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn lock_state(&self) -> crate::sync::MutexGuard<'_, LogState> {
        self.state.lock()
    }

    /// After [`Store::rollback`]: back to the committed bounds. Readers
    /// past the new end see the new count of rollbacks and move back.
    pub(super) fn reload(&self, state: &mut LogState) {
        let meta = self.metas.get(&self.name).ok().flatten();
        // A read that fails leaves the bounds as they were: the next
        // append or read reports the database's error.
        if let Ok((start, next, max)) = Self::bounds(&self.records, meta.as_ref()) {
            state.start = start;
            state.next = next;
            state.max = max;
        }
        let end = state.next;
        for lowest in state.readers.values_mut() {
            *lowest = Some(lowest.map_or(end, |lowest| lowest.min(end)));
        }
        self.rollbacks.fetch_add(1, Ordering::Release);
        // The log was created in the batch just discarded: its handles
        // still hold its types, so record them again (in the new batch), or
        // a later open would find no types to check against. Should that
        // fail, the next open of the log records them.
        let recorded = meta.is_some() || state.types.0.is_empty() || {
            self.metas.put(&self.name, &state.meta()).is_ok()
        };
        if !recorded {
            state.types = Default::default();
        }
    }

    /// Wakes the readers waiting for an append, with no lock held.
    fn wake(waiting: HashMap<u64, Waker>) {
        for (_, waker) in waiting {
            waker.wake();
        }
    }
}

impl Store {
    /// Opens the log `name`, creating it if missing, with values `T` in the
    /// [`Binary`] codec. Every handle of a log, in this process, shares its
    /// offsets and wakes its readers.
    ///
    /// # Errors
    ///
    /// [`StoreError::TableTypes`] (naming the log) if the log was created
    /// with another value type or codec; [`StoreError::TableName`] (naming
    /// one of the log's tables) if `name` is longer than
    /// [`MAX_KEY_LEN`](super::MAX_KEY_LEN) less 20 bytes;
    /// [`StoreError::ReservedName`] if `name` holds a `/`;
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let log = store.log::<String>("activity")?;
    /// assert_eq!(log.append(Timestamp::from_unix_secs(1), &"swimming".into())?, 0);
    /// assert_eq!(log.append(Timestamp::from_unix_secs(2), &"lunch".into())?, 1);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn log<T>(&self, name: &str) -> Result<Log<T>, StoreError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.log_with(name, Binary)
    }

    /// Opens the log `name` with values in `codec`. See [`log`](Self::log).
    ///
    /// # Errors
    ///
    /// As [`log`](Self::log).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::{Json, Store}, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let log = store.log_with::<Vec<u8>, _>("raw", Json)?;
    /// log.append(Timestamp::UNIX_EPOCH, &vec![1, 2])?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn log_with<T, C>(&self, name: &str, codec: C) -> Result<Log<T, C>, StoreError>
    where
        T: 'static,
        C: Codec<T>,
    {
        if name.contains('/') {
            return Err(StoreError::ReservedName {
                name: name.chars().take(64).collect(),
                of: "log",
            });
        }
        let shared = {
            let mut logs = self.inner.logs.lock();
            match logs.get(name).and_then(std::sync::Weak::upgrade) {
                Some(shared) => shared,
                None => {
                    let shared = std::sync::Arc::new(Shared::open(self, name)?);
                    logs.insert(name.to_string(), std::sync::Arc::downgrade(&shared));
                    shared
                }
            }
        };
        let requested = (std::any::type_name::<T>().to_string(), codec.name());
        let stored = {
            let mut state = shared.state.lock();
            if state.types.0.is_empty() {
                state.types = requested.clone();
                None
            } else {
                Some(state.types.clone())
            }
        };
        let types = |(value, codec): (String, String)| {
            Box::new(TableTypes {
                key: "u64 (offset)".into(),
                value,
                codec,
            })
        };
        match stored {
            Some(stored) if stored != requested => {
                return Err(StoreError::TableTypes {
                    table: name.to_string(),
                    stored: types(stored),
                    requested: types(requested),
                })
            }
            Some(_) => {}
            None => {
                // The types just requested: a rollback on another thread
                // may have reset the state's copy of them since.
                let meta = Meta {
                    value: requested.0.clone(),
                    codec: requested.1.clone(),
                    ..shared.state.lock().meta()
                };
                shared.metas.put(&name.to_string(), &meta)?;
            }
        }
        Ok(Log {
            shared,
            codec: Arc::new(codec),
            _values: PhantomData,
        })
    }
}

/// A durable, append-only log of a [`Store`] (Slipstream's `Topic`):
/// records with dense offsets from 0, never reused (across restarts and
/// after [`Retention`] too), read by tailing [`LogReader`]s, with named
/// [`Group`]s whose committed offsets survive a restart.
///
/// Appends join the store's pending batch, as table writes do: they are
/// visible at once to every reader of this process (readers see appended,
/// not yet committed records, as table reads see pending writes), and
/// durable at the store's next commit, atomically with the tables' writes
/// and the groups' commits of that batch. Cheap to clone; `Send + Sync`.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use timecast::{store::{Offset, Store}, EventLoop, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<String>("activity")?;
/// log.append(Timestamp::from_unix_secs(1), &"swimming".into())?;
/// let mut reader = log.read(Offset::Start);
/// let values = EventLoop::new().simulated().block_on(async move {
///     let first = reader.next().await;
///     log.append(Timestamp::from_unix_secs(2), &"lunch".into())?; // wakes the reader
///     let second = reader.next().await;
///     Ok::<_, timecast::store::StoreError>([first, second].map(|r| r.map(|r| r.map(|r| r.value))))
/// })?;
/// assert_eq!(values[1].as_ref().map(|r| r.as_ref().ok()), Some(Some(&"lunch".to_string())));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub struct Log<T, C = Binary> {
    shared: std::sync::Arc<Shared>,
    codec: Arc<C>,
    _values: PhantomData<fn(T) -> T>,
}

impl<T, C> Clone for Log<T, C> {
    fn clone(&self) -> Self {
        Log {
            shared: self.shared.clone(),
            codec: self.codec.clone(),
            _values: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for Log<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Log")
            .field("name", &self.shared.name)
            .field("start", &state.start)
            .field("end", &state.next)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Log<T, C> {
    /// The log's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.log::<u8>("l")?.name(), "l");
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The offset the next append gets: the number of records ever appended
    /// (and committed, after a restart).
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// log.append(timecast::Timestamp::UNIX_EPOCH, &1)?;
    /// assert_eq!(log.end(), 1);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn end(&self) -> u64 {
        self.shared.state.lock().next
    }

    /// The oldest offset the log holds ([`end`](Self::end) if it holds
    /// none): 0 unless [`Retention`] removed records.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.log::<u8>("l")?.start(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn start(&self) -> u64 {
        self.shared.state.lock().start
    }

    /// Sets how much of the log to keep, from the next append on. Not
    /// persisted: set it each time the log is opened.
    ///
    /// # Examples
    ///
    /// See [`Retention`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// store.log::<u8>("l")?.set_retention(timecast::store::Retention::count(100));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn set_retention(&self, retention: Retention) {
        self.shared.state.lock().retention = retention;
    }

    /// Appends `value` with the event time `ts`; returns its offset. Wakes
    /// the readers waiting at the end. Durable at the store's next commit
    /// (see [`CommitPolicy`](super::CommitPolicy)).
    ///
    /// # Errors
    ///
    /// [`StoreError::LogEncode`] if the codec cannot encode `value`
    /// (nothing is appended, no offset is used); [`StoreError::Io`] if a commit made
    /// by the commit policy fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, Timestamp};
    /// let store = Store::temporary()?;
    /// let log = store.log::<String>("l")?;
    /// assert_eq!(log.append(Timestamp::UNIX_EPOCH, &"🐟".into())?, 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn append(&self, ts: Timestamp, value: &T) -> Result<u64, StoreError> {
        let mut bytes = Vec::new();
        self.codec
            .encode(value, &mut bytes)
            .map_err(|source| StoreError::LogEncode {
                log: self.shared.name.clone(),
                source,
            })?;
        let mut state = self.shared.state.lock();
        let offset = state.next;
        let max = state
            .max
            .map_or(ts.unix_nanos(), |m| m.max(ts.unix_nanos()));
        let entry = Entry {
            ts: ts.unix_nanos(),
            max,
            bytes,
        };
        self.shared.records.put(&offset, &entry)?;
        state.next = offset + 1;
        state.max = Some(max);
        let trimmed = self.trim(&mut state, ts);
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        Shared::wake(waiting);
        trimmed.map(|()| offset)
    }

    /// Removes the records beyond the retention, oldest first.
    fn trim(&self, state: &mut LogState, newest: Timestamp) -> Result<(), StoreError> {
        let retention = state.retention;
        let start = state.start;
        if let Some(n) = retention.count {
            while state.next - state.start > n {
                self.shared.records.remove(&state.start)?;
                state.start += 1;
            }
        }
        if let Some(age) = retention.age {
            let oldest = newest.saturating_sub(age).unix_nanos();
            while state.start < state.next {
                match self.shared.records.get(&state.start)? {
                    Some(entry) if entry.ts < oldest => {
                        self.shared.records.remove(&state.start)?;
                        state.start += 1;
                    }
                    _ => break,
                }
            }
        }
        if state.start != start {
            self.shared.metas.put(&self.shared.name, &state.meta())?;
        }
        Ok(())
    }

    /// A reader from `from`: it replays the stored records in offset
    /// order, then tails the log, woken by each later append (it waits
    /// without polling, using no CPU). It sees appends not yet committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{Offset, Store};
    /// let store = Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// assert_eq!(log.read(Offset::End).position(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn read(&self, from: Offset) -> LogReader<T, C> {
        // Registered before it is placed: a rollback from now on is either
        // seen by `locate` (the bounds it reads) or recorded for this
        // reader. The count is read under the lock, where a rollback
        // counts itself.
        let (id, rollbacks) = {
            let mut state = self.shared.state.lock();
            state.next_reader += 1;
            let id = state.next_reader;
            state.readers.insert(id, None);
            (id, self.shared.rollbacks.load(Ordering::Acquire))
        };
        let (position, skip_before) = self.locate(from);
        LogReader {
            log: self.clone(),
            id,
            position,
            skip_before,
            buffered: VecDeque::new(),
            policy: DecodeErrors::Stop,
            skipped: 0,
            stopped: false,
            seek: Arc::new(Mutex::new(SeekSlot::default())),
            rollbacks,
            // Placed by the log (not at an offset asked for): as if it had
            // passed the records before, so that a rollback below its
            // place moves it back to read the appends made after it.
            reached: if matches!(from, Offset::At(_)) {
                0
            } else {
                position
            },
        }
    }

    /// The offset `from` points to, and the event time to skip up to.
    fn locate(&self, from: Offset) -> (u64, Option<i64>) {
        let (start, next) = {
            let state = self.shared.state.lock();
            (state.start, state.next)
        };
        match from {
            Offset::Start => (start, None),
            Offset::End => (next, None),
            Offset::At(n) => (n, None),
            Offset::Time(ts) => {
                let target = ts.unix_nanos();
                // The first offset whose running maximum reaches `target`.
                let (mut lo, mut hi) = (start, next);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    match self.shared.records.get(&mid) {
                        Ok(Some(entry)) if entry.max >= target => hi = mid,
                        Ok(Some(_)) => lo = mid + 1,
                        // Trimmed meanwhile, or unreadable: let the reader report it.
                        _ => break,
                    }
                }
                (lo, Some(target))
            }
        }
    }

    /// The group `name` of this log: a committed offset, kept in the store.
    ///
    /// # Examples
    ///
    /// See [`Group`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let g = store.log::<u8>("l")?.group("billing");
    /// assert_eq!(g.committed()?, None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn group(&self, name: &str) -> Group<T, C> {
        Group {
            log: self.clone(),
            name: name.to_string(),
        }
    }
}

/// A named consumer group of a [`Log`]: the offset up to which it has
/// processed the log, committed in the store's batch (atomically with the
/// tables' writes and the logs' appends of that batch).
///
/// The committed offset is the next record to process (as in Kafka):
/// `commit(r.offset + 1)` after processing record `r`.
///
/// # Examples
///
/// ```
/// use timecast::{store::Store, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<u32>("orders")?;
/// for i in 0..3 {
///     log.append(Timestamp::from_unix_secs(i), &(i as u32))?;
/// }
/// let group = log.group("billing");
/// group.commit(2)?; // records 0 and 1 are done
/// assert_eq!(group.committed()?, Some(2));
/// assert_eq!(group.read().position(), 2);
/// assert!(group.commit(4).is_err()); // past the end
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub struct Group<T, C = Binary> {
    log: Log<T, C>,
    name: String,
}

impl<T, C> Clone for Group<T, C> {
    fn clone(&self) -> Self {
        Group {
            log: self.log.clone(),
            name: self.name.clone(),
        }
    }
}

impl<T, C> fmt::Debug for Group<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("log", &self.log.shared.name)
            .field("name", &self.name)
            .finish()
    }
}

impl<T, C: Codec<T>> Group<T, C> {
    /// The committed offset: the next record to process; `None` if never
    /// committed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.log::<u8>("l")?.group("g").committed()?, None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn committed(&self) -> Result<Option<u64>, StoreError> {
        self.log.shared.groups.get(&self.name)
    }

    /// Commits `offset` (the next record to process) in the store's
    /// pending batch.
    ///
    /// # Errors
    ///
    /// [`StoreError::CommitPastEnd`] if `offset` is past the log's end
    /// (nothing is written); [`StoreError::Io`] if a commit made by the
    /// commit policy fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, Timestamp};
    /// let store = Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// log.append(Timestamp::UNIX_EPOCH, &7)?;
    /// log.group("g").commit(1)?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commit(&self, offset: u64) -> Result<(), StoreError> {
        let end = self.log.end();
        if offset > end {
            return Err(StoreError::CommitPastEnd {
                log: self.log.shared.name.clone(),
                group: self.name.clone(),
                offset,
                end,
            });
        }
        self.log.shared.groups.put(&self.name, &offset)
    }

    /// A reader from the committed offset (from the log's start if never
    /// committed).
    ///
    /// # Examples
    ///
    /// See [`Group`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.log::<u8>("l")?.group("g").read().position(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn read(&self) -> LogReader<T, C> {
        match self.committed() {
            Ok(Some(offset)) => self.log.read(Offset::At(offset)),
            _ => self.log.read(Offset::Start),
        }
    }
}

impl<T, C: Codec<T>> Group<T, C> {
    /// Reads the log from the group's committed offset, exactly once: see
    /// [`ExactlyOnce`]. Sets the store's commit policy to
    /// [`CommitPolicy::manual`](super::CommitPolicy::manual), so that only
    /// the reader's checkpoints commit.
    ///
    /// # Examples
    ///
    /// See [`ExactlyOnce`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let input = store.log::<u64>("in")?;
    /// let _reader = input.group("sum").consume().checkpoint_every(1000);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn consume(&self) -> ExactlyOnce<T, C> {
        self.log
            .shared
            .records
            .store()
            .set_commit_policy(super::CommitPolicy::manual());
        let reader = self.read();
        let scope = super::durable::ScopeShared::default();
        scope.set_position(reader.position);
        ExactlyOnce {
            reader,
            group: Group {
                log: self.log.clone(),
                name: self.name.clone(),
            },
            every: 1000,
            uncommitted: 0,
            scope: Arc::new(scope),
        }
    }
}

/// A reader of a log through a [`Group`] that makes a pipeline
/// exactly-once: whatever the pipeline writes while it processes the
/// records (table puts, window or accumulator state kept in tables, log
/// appends of its outputs) joins the store's pending batch, and every
/// `n` records the reader commits the group's offset *and* that batch in
/// one atomic commit. Killed at any instant and restarted, the pipeline
/// resumes after the last checkpoint with the state and outputs of that
/// checkpoint: nothing is lost, nothing is output twice.
///
/// A checkpoint is taken when the next record is asked for (so the
/// previous record's processing is complete), after `n` records, and
/// whenever the reader catches up with the log's end (so an idle pipeline
/// has committed everything). [`commit`](Self::commit) takes one at once.
///
/// Dropping the reader discards what the store has pending since the last
/// checkpoint ([`Store::rollback`]): a pipeline that stops on an error or
/// a panic commits nothing half done, and after a restart processes those
/// records again. To keep the work done since the last checkpoint (a clean
/// stop), call [`commit`](Self::commit) before dropping the reader. While
/// it runs, the store belongs to the pipeline: other writes to it are part
/// of its checkpoints, and of its rollback.
///
/// # Examples
///
/// A running sum, its state in a table, its outputs in a log:
///
/// ```
/// use futures::StreamExt;
/// use timecast::{store::{Store, StoreError}, Timestamp};
///
/// let store = Store::temporary()?;
/// let (input, output) = (store.log::<u64>("in")?, store.log::<u64>("out")?);
/// let sum = store.table::<u8, u64>("sum")?;
/// for i in 1..=4 {
///     input.append(Timestamp::from_unix_secs(i as i64), &i)?;
/// }
/// let mut records = input.group("sum").consume().checkpoint_every(2);
/// futures::executor::block_on(async {
///     while let Some(r) = records.next().await {
///         let r = r?;
///         let total = sum.get(&0)?.unwrap_or(0) + r.value;
///         sum.put(&0, &total)?;
///         output.append(r.ts, &total)?;
///         if r.offset == 3 {
///             break;
///         }
///     }
///     records.commit()
/// })?;
/// assert_eq!(input.group("sum").committed()?, Some(4));
/// assert_eq!((sum.get(&0)?, output.end(), store.pending()), (Some(10), 4, 0));
/// # Ok::<_, StoreError>(())
/// ```
pub struct ExactlyOnce<T, C = Binary> {
    group: Group<T, C>,
    reader: LogReader<T, C>,
    every: u64,
    uncommitted: u64,
    /// Shared with the durable operators of its [`CheckpointScope`](super::CheckpointScope).
    scope: Arc<super::durable::ScopeShared>,
}

impl<T, C> fmt::Debug for ExactlyOnce<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactlyOnce")
            .field("group", &self.group)
            .field("every", &self.every)
            .field("uncommitted", &self.uncommitted)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> ExactlyOnce<T, C> {
    /// Takes a checkpoint every `n` records (at least 1; 1000 by default).
    ///
    /// # Examples
    ///
    /// See [`ExactlyOnce`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let _r = store.log::<u8>("l")?.group("g").consume().checkpoint_every(10_000);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn checkpoint_every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    /// Takes a checkpoint now: commits the group's offset (after the last
    /// record yielded) with the store's pending batch.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the commit fails.
    ///
    /// # Examples
    ///
    /// See [`ExactlyOnce`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// store.log::<u8>("l")?.group("g").consume().commit()?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.group.commit(self.reader.position)?;
        self.group.log.shared.records.store().commit()?;
        self.uncommitted = 0;
        self.scope.done();
        Ok(())
    }
}

impl<T, C> ExactlyOnce<T, C> {
    /// The reader under the checkpoints.
    pub(super) fn reader(&self) -> &LogReader<T, C> {
        &self.reader
    }

    pub(super) fn group(&self) -> &Group<T, C> {
        &self.group
    }

    pub(super) fn scope_shared(&self) -> &Arc<super::durable::ScopeShared> {
        &self.scope
    }
}

impl<T, C> Group<T, C> {
    pub(super) fn log_shared(&self) -> &Shared {
        &self.log.shared
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

impl Shared {
    pub(super) fn store(&self) -> &Store {
        self.records.store()
    }
}

impl<T, C> Drop for ExactlyOnce<T, C> {
    /// Discards what the store has pending since the last checkpoint (see
    /// [`Store::rollback`]): the records yielded since then may be half
    /// processed, and will be processed again after a restart.
    fn drop(&mut self) {
        let store = self.group.log.shared.records.store();
        if store.pending() > 0 {
            store.rollback();
        }
    }
}

impl<T, C: Codec<T>> Stream for ExactlyOnce<T, C> {
    type Item = Result<Record<T>, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // With durable operators downstream, a checkpoint is asked for,
        // and taken by the outermost of them once every one has saved its
        // state (see `ScopeShared`).
        let durable = this.scope.has_durables();
        if this.scope.take_checkpointed() {
            this.uncommitted = 0;
        }
        if this.uncommitted >= this.every && !durable {
            if let Err(e) = this.commit() {
                return Poll::Ready(Some(Err(e)));
            }
        } else if this.uncommitted >= this.every {
            this.scope.ask();
        }
        match Pin::new(&mut this.reader).poll_next(cx) {
            Poll::Ready(Some(Ok(record))) => {
                this.uncommitted += 1;
                this.scope.set_position(this.reader.position);
                Poll::Ready(Some(Ok(record)))
            }
            Poll::Pending if this.uncommitted > 0 && durable => {
                // Caught up: checkpoint at once, through one more poll.
                this.scope.ask();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending if this.uncommitted > 0 => match this.commit() {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Some(Err(e))),
            },
            other => other,
        }
    }
}

#[derive(Default)]
struct SeekSlot {
    to: Option<u64>,
    waker: Option<Waker>,
}

/// A handle that moves a [`LogReader`] from elsewhere (for example a
/// checkpoint's recovery callback), while a task owns the reader.
///
/// # Examples
///
/// ```
/// use timecast::store::{Offset, Store};
/// let store = Store::temporary()?;
/// let log = store.log::<u8>("l")?;
/// let reader = log.read(Offset::End);
/// let handle = reader.seek_handle();
/// handle.seek(0);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct SeekHandle {
    slot: Arc<Mutex<SeekSlot>>,
}

impl SeekHandle {
    /// The reader's next record will be the one at `offset` (see
    /// [`LogReader::seek`]); wakes the reader.
    ///
    /// # Examples
    ///
    /// See [`SeekHandle`].
    ///
    /// ```
    /// # let store = timecast::store::Store::temporary()?;
    /// # let log = store.log::<u8>("l")?;
    /// log.read(timecast::store::Offset::Start).seek_handle().seek(3);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn seek(&self, offset: u64) {
        let waker = {
            let mut slot = self.slot.lock();
            slot.to = Some(offset);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl fmt::Debug for SeekHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeekHandle").finish_non_exhaustive()
    }
}

/// How many records a reader reads from the store at a time.
const BATCH: u64 = 256;

/// A reader of a [`Log`]: a `Stream` of its records in offset order, from
/// where it was made; after the stored ones it waits for later appends
/// (woken by them: no polling). It never skips a record, except one that
/// fails to decode under [`DecodeErrors::Skip`].
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no record.
///
/// # Examples
///
/// ```
/// use futures::StreamExt;
/// use timecast::{store::{Offset, Store}, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<char>("l")?;
/// for (i, c) in "🏆📞🐟".chars().enumerate() {
///     log.append(Timestamp::from_unix_secs(i as i64), &c)?;
/// }
/// let mut reader = log.read(Offset::At(1));
/// let r = futures::executor::block_on(reader.next()).transpose()?;
/// assert_eq!(r.map(|r| (r.offset, r.value)), Some((1, '📞')));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub struct LogReader<T, C = Binary> {
    log: Log<T, C>,
    id: u64,
    /// The next offset to read.
    position: u64,
    /// Records with an event time before this are skipped (Offset::Time).
    skip_before: Option<i64>,
    buffered: VecDeque<(u64, Entry)>,
    policy: DecodeErrors,
    skipped: u64,
    stopped: bool,
    seek: Arc<Mutex<SeekSlot>>,
    /// The log's count of rollbacks when this reader last looked.
    rollbacks: u64,
    /// One past the highest offset this reader has passed.
    reached: u64,
}

impl<T, C> fmt::Debug for LogReader<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("log", &self.log.shared.name)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<T, C> Unpin for LogReader<T, C> {}

impl<T, C> Drop for LogReader<T, C> {
    fn drop(&mut self) {
        let mut state = self.log.shared.state.lock();
        let waker = state.waiting.remove(&self.id);
        state.readers.remove(&self.id);
        drop(state);
        drop(waker);
    }
}

impl<T, C: Codec<T>> LogReader<T, C> {
    /// The offset of the next record this reader yields (before any
    /// `Offset::Time` skipping). After a [`StoreError::LogDecode`] that
    /// stopped it ([`DecodeErrors::Stop`]), the offset of that record.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// assert_eq!(log.read(timecast::store::Offset::At(5)).position(), 5);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.seek.lock().to.unwrap_or(self.position)
    }

    /// Moves the reader: its next record is the one at `offset` (beyond the
    /// end it waits; below the retained range it yields
    /// [`StoreError::Trimmed`]). Restarts a reader that stopped.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::{store::{Offset, Store}, Timestamp};
    /// let store = Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// log.append(Timestamp::UNIX_EPOCH, &7)?;
    /// log.append(Timestamp::UNIX_EPOCH, &8)?;
    /// let mut reader = log.read(Offset::End);
    /// reader.seek(1);
    /// let r = futures::executor::block_on(reader.next()).transpose()?;
    /// assert_eq!(r.map(|r| r.value), Some(8));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn seek(&mut self, offset: u64) {
        self.seek.lock().to = None;
        self.jump(offset);
    }

    fn jump(&mut self, offset: u64) {
        // A move made after a rollback is not undone by it.
        let mut state = self.log.shared.state.lock();
        if let Some(lowest) = state.readers.get_mut(&self.id) {
            *lowest = None;
        }
        self.rollbacks = self.log.shared.rollbacks.load(Ordering::Acquire);
        drop(state);
        self.position = offset;
        self.skip_before = None;
        self.buffered.clear();
        self.stopped = false;
    }

    /// After a [`Store::rollback`]: drops what was read ahead, and moves
    /// back to the log's end if this reader had passed it.
    fn rewind(&mut self) {
        let mut state = self.log.shared.state.lock();
        rewind(
            &mut state,
            &self.log.shared.rollbacks,
            self.id,
            &mut self.rollbacks,
            &mut self.position,
            &mut self.reached,
        );
        drop(state);
        self.buffered.clear();
    }

    /// A handle to [`seek`](Self::seek) this reader from elsewhere.
    ///
    /// # Examples
    ///
    /// See [`SeekHandle`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let _handle = store.log::<u8>("l")?.read(timecast::store::Offset::Start).seek_handle();
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn seek_handle(&self) -> SeekHandle {
        SeekHandle {
            slot: self.seek.clone(),
        }
    }

    /// Sets what to do with a record that does not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::{DecodeErrors, Offset, Store};
    /// let store = Store::temporary()?;
    /// let reader = store.log::<u8>("l")?.read(Offset::Start).on_decode_error(DecodeErrors::Skip);
    /// assert_eq!(reader.skipped(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn on_decode_error(mut self, policy: DecodeErrors) -> Self {
        self.policy = policy;
        self
    }

    /// How many records were skipped under [`DecodeErrors::Skip`].
    ///
    /// # Examples
    ///
    /// See [`on_decode_error`](Self::on_decode_error).
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.log::<u8>("l")?.read(timecast::store::Offset::Start).skipped(), 0);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The log read.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let log = store.log::<u8>("l")?;
    /// assert_eq!(log.read(timecast::store::Offset::Start).log().name(), "l");
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn log(&self) -> &Log<T, C> {
        &self.log
    }

    /// Fills the buffer from the store, or registers `waker` at the end.
    /// `Ok(false)`: nothing to read yet.
    fn fill(&mut self, waker: &Waker) -> Result<bool, StoreError> {
        // A read that finds nothing raced a trim or a rollback (by another
        // thread, between the look under the lock and the read). After a
        // rollback, look again: it is no error.
        loop {
            let rollbacks = self.log.shared.rollbacks.load(Ordering::Acquire);
            if let Some(filled) = self.fill_once(waker)? {
                return Ok(filled);
            }
            // Under the log's lock, which a rollback holds from before it
            // discards the appends until it has counted itself.
            let start = self.log.shared.state.lock().start;
            if self.log.shared.rollbacks.load(Ordering::Acquire) == rollbacks {
                return Err(StoreError::Trimmed {
                    log: self.log.shared.name.clone(),
                    offset: self.position,
                    start,
                });
            }
        }
    }

    /// One attempt of [`fill`](Self::fill): `None` if the read found no
    /// record where the log's state said there were some.
    fn fill_once(&mut self, waker: &Waker) -> Result<Option<bool>, StoreError> {
        let shared = &self.log.shared;
        let next = {
            let mut state = shared.state.lock();
            // A rollback since this poll began (while a skipped record
            // was decoded, or by another thread): back before reading on.
            rewind(
                &mut state,
                &shared.rollbacks,
                self.id,
                &mut self.rollbacks,
                &mut self.position,
                &mut self.reached,
            );
            if self.position < state.start {
                return Err(StoreError::Trimmed {
                    log: shared.name.clone(),
                    offset: self.position,
                    start: state.start,
                });
            }
            if self.position >= state.next {
                let old = state.waiting.insert(self.id, waker.clone());
                drop(state);
                drop(old);
                return Ok(Some(false));
            }
            state.next
        };
        let end = next.min(self.position.saturating_add(BATCH));
        for entry in shared.records.range(self.position..end)? {
            let (offset, entry) = entry?;
            if offset != self.position + self.buffered.len() as u64 {
                // Trimmed, or rolled back, while reading.
                break;
            }
            self.buffered.push_back((offset, entry));
        }
        Ok((!self.buffered.is_empty()).then_some(true))
    }
}

/// Reader `id`'s move after the rollbacks it has not seen, under the log's
/// lock: back to the lowest end they left if it had passed it. `count` is
/// the log's count of rollbacks, which `rollbacks` catches up with.
fn rewind(
    state: &mut LogState,
    count: &AtomicU64,
    id: u64,
    rollbacks: &mut u64,
    position: &mut u64,
    reached: &mut u64,
) {
    *rollbacks = count.load(Ordering::Acquire);
    if let Some(end) = state.readers.get_mut(&id).and_then(Option::take) {
        if *reached > end && *position > end {
            *position = end;
            *reached = end;
        }
    }
}

impl<T, C: Codec<T>> Stream for LogReader<T, C> {
    type Item = Result<Record<T>, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        {
            let mut slot = this.seek.lock();
            let to = slot.to.take();
            let old = slot.waker.replace(cx.waker().clone());
            drop(slot);
            drop(old);
            if let Some(to) = to {
                this.jump(to);
            }
        }
        if this.log.shared.rollbacks.load(Ordering::Acquire) != this.rollbacks {
            this.rewind();
        }
        loop {
            if this.stopped {
                return Poll::Ready(None);
            }
            let Some((offset, entry)) = this.buffered.pop_front() else {
                match this.fill(cx.waker()) {
                    Ok(true) => continue,
                    Ok(false) => return Poll::Pending,
                    Err(e) => {
                        this.stopped = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            };
            this.position = offset + 1;
            this.reached = this.reached.max(this.position);
            if let Some(before) = this.skip_before {
                if entry.ts < before {
                    continue;
                }
                this.skip_before = None;
            }
            match this.log.codec.decode(&entry.bytes) {
                Ok(value) => {
                    return Poll::Ready(Some(Ok(Record::new(
                        offset,
                        Timestamp::from_unix_nanos(entry.ts),
                        value,
                    ))))
                }
                Err(source) => match this.policy {
                    DecodeErrors::Skip => this.skipped += 1,
                    DecodeErrors::Stop => {
                        // Stopped at the record, not past it: a commit of
                        // the position after this error does not skip it.
                        this.position = offset;
                        this.stopped = true;
                        return Poll::Ready(Some(Err(StoreError::LogDecode {
                            log: this.log.shared.name.clone(),
                            offset,
                            source,
                        })));
                    }
                },
            }
        }
    }
}

impl<T, C: Codec<T>> Topic<T> for Log<T, C> {
    type Error = StoreError;
    type Reader = LogReader<T, C>;

    fn name(&self) -> &str {
        &self.shared.name
    }

    fn partitions(&self) -> u32 {
        1
    }

    fn publish(&self, ts: Timestamp, value: &T) -> Result<Position, StoreError> {
        self.append(ts, value)
            .map(|offset| Position::new(0, offset))
    }

    fn publish_keyed(
        &self,
        _ts: Timestamp,
        _key: &[u8],
        _value: &T,
    ) -> Result<Position, StoreError> {
        Err(StoreError::Unsupported {
            log: self.shared.name.clone(),
            what: "record keys: the embedded log keeps none; publish without a key".into(),
        })
    }

    fn reader(&self, from: Offset) -> Result<LogReader<T, C>, StoreError> {
        Ok(self.read(from))
    }

    fn subscribe(&self, group: &str) -> Result<LogReader<T, C>, StoreError> {
        let committed = self.group(group).committed()?;
        Ok(self.read(committed.map_or(Offset::Start, Offset::At)))
    }

    /// Commits the group's offset; the log has only partition 0, and a
    /// position in another partition is [`StoreError::Unsupported`].
    fn commit(&self, group: &str, at: Position) -> Result<(), StoreError> {
        if at.partition != 0 {
            return Err(StoreError::Unsupported {
                log: self.shared.name.clone(),
                what: format!(
                    "committing partition {} (it has only partition 0)",
                    at.partition
                ),
            });
        }
        self.group(group).commit(at.offset)
    }

    /// Seeks the reader; the log has only partition 0, and a position in
    /// another partition leaves the reader where it is.
    fn seek(reader: &mut LogReader<T, C>, to: Position) {
        if to.partition == 0 {
            reader.seek(to.offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{CommitPolicy, Offset, Store};
    use crate::Timestamp;

    /// The log keeps one entry per live reader, however many rollbacks
    /// there were, and none once the reader is gone: a pipeline restarted
    /// many times between checkpoints does not grow it.
    #[test]
    fn rollbacks_keep_one_entry_per_live_reader() -> Result<(), crate::store::StoreError> {
        let store = Store::temporary()?;
        store.set_commit_policy(CommitPolicy::manual());
        let log = store.log::<u32>("l")?;
        let reader = log.read(Offset::Start);
        for i in 0..1000 {
            log.append(Timestamp::from_unix_secs(i), &0)?;
            if i % 2 == 0 {
                store.commit()?;
            } else {
                store.rollback();
            }
        }
        assert_eq!(log.end(), 500);
        assert_eq!(log.shared.state.lock().readers.len(), 1);
        drop(reader);
        assert!(log.shared.state.lock().readers.is_empty());
        Ok(())
    }
}
