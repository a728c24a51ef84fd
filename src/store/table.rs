//! [`Table`]: typed keys and values in a store, a sink, and a stream of
//! updates.

use std::fmt;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::task::Poll;

use fjall::Readable;

use super::codec::{Binary, Codec};
use super::key::{self, Key};
use super::merge::{Bytes, Entry, Merge};
use super::{PendingKey, Store, StoreError};
use crate::channel::{AsyncStream, Consumer};
use crate::sink::{CombineErrors, Sink};
use crate::sync::Arc;

/// How many updates a table's [`updates`](Table::updates) stream buffers
/// ahead of its slowest subscriber.
pub(crate) const UPDATES_CAPACITY: usize = 16;

/// A typed table of a [`Store`]: keys `K` in their natural order, values
/// `V` through the codec `C`. Cheap to clone (a handle); `Send + Sync`.
///
/// Writes join the store's pending batch and are visible at once to every
/// read through any handle; the [`Store`] commits them (see
/// [`CommitPolicy`](super::CommitPolicy)).
///
/// # Examples
///
/// ```
/// use timecast::store::Store;
///
/// let store = Store::temporary()?;
/// let scores = store.table::<i32, String>("scores")?;
/// for (k, v) in [(3, "c"), (-1, "a"), (2, "b")] {
///     scores.put(&k, &v.to_string())?;
/// }
/// let keys = scores.range(..)?.map(|e| e.map(|(k, _)| k)).collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(keys, [-1, 2, 3]);
/// assert_eq!(scores.at_or_before(&1)?, Some((-1, "a".to_string())));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub struct Table<K, V, C = Binary> {
    store: Store,
    name: Arc<String>,
    index: usize,
    keyspace: fjall::Keyspace,
    codec: Arc<C>,
    updates: AsyncStream<(K, V)>,
}

impl<K, V, C> Table<K, V, C>
where
    K: Key,
    C: Codec<V>,
{
    pub(super) fn new(
        store: Store,
        name: &str,
        index: usize,
        keyspace: fjall::Keyspace,
        codec: C,
        updates: AsyncStream<(K, V)>,
    ) -> Self {
        Table {
            store,
            name: Arc::new(name.to_string()),
            index,
            keyspace,
            codec: Arc::new(codec),
            updates,
        }
    }

    /// The table's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert_eq!(store.table::<u8, u8>("t")?.name(), "t");
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store the table belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u8, u8>("t")?;
    /// assert_eq!(t.store().path(), store.path());
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn io(&self, source: fjall::Error) -> StoreError {
        self.store
            .inner
            .io_error(&format!("reading table {:?}", self.name), source)
    }

    fn decode_value(&self, key: &K, bytes: &[u8]) -> Result<V, StoreError> {
        self.codec
            .decode(bytes)
            .map_err(|source| StoreError::Decode {
                table: self.name.to_string(),
                key: format!("{key:?}"),
                source,
            })
    }

    fn decode_entry(&self, k: &[u8], v: &[u8]) -> Result<(K, V), StoreError> {
        let key = key::decode::<K>(k).ok_or_else(|| StoreError::CorruptKey {
            table: self.name.to_string(),
            bytes: k.to_vec(),
        })?;
        let value = self.decode_value(&key, v)?;
        Ok((key, value))
    }

    /// Writes `value` under `key`, replacing any value there. Visible at
    /// once to reads; durable at the store's next commit.
    ///
    /// A put through the table's [`Sink`](crate::sink::Sink) also publishes
    /// the update on [`updates`](Self::updates); this one does not (it
    /// does not wait for subscribers), as Slipstream's `cache[key] = val`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Encode`] if the codec cannot encode `value`, and
    /// [`StoreError::KeySize`] if `key` encodes to no bytes or more than
    /// [`MAX_KEY_LEN`](super::MAX_KEY_LEN) (nothing is written then);
    /// [`StoreError::Io`] if a commit made by the
    /// [`CommitPolicy`](super::CommitPolicy) fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<String, u32>("counts")?;
    /// t.put(&"🐟".into(), &1)?;
    /// t.put(&"🐟".into(), &2)?;
    /// assert_eq!(t.get(&"🐟".into())?, Some(2));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn put(&self, key: &K, value: &V) -> Result<(), StoreError> {
        let value = with_scratch(|bytes| {
            self.codec.encode(value, bytes)?;
            Ok(fjall::Slice::from(&bytes[..]))
        })
        .map_err(|source| StoreError::Encode {
            table: self.name.to_string(),
            key: format!("{key:?}"),
            source,
        })?;
        let key = self.checked_key(key)?;
        self.store.inner.write(self.index, key, Some(value))
    }

    /// `key`'s bytes, if the database can hold them (see
    /// [`MAX_KEY_LEN`](super::MAX_KEY_LEN)): checked before the write, as
    /// the database would refuse them only at the commit, with every
    /// write of the batch.
    fn checked_key(&self, key: &K) -> Result<fjall::Slice, StoreError> {
        let bytes = encode_key(key);
        if !is_holdable(&bytes) {
            let mut shown = format!("{key:?}");
            if shown.len() > 64 {
                let cut = (0..=64).rev().find(|&i| shown.is_char_boundary(i));
                shown.truncate(cut.unwrap_or(0));
                shown.push('…');
            }
            return Err(StoreError::KeySize {
                table: self.name.to_string(),
                key: shown,
                len: bytes.len(),
            });
        }
        Ok(bytes)
    }

    /// Removes `key` and its value, if there.
    ///
    /// # Errors
    ///
    /// [`StoreError::KeySize`] as for [`put`](Self::put);
    /// [`StoreError::Io`] if a commit made by the
    /// [`CommitPolicy`](super::CommitPolicy) fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u8, u8>("t")?;
    /// t.put(&1, &1)?;
    /// t.remove(&1)?;
    /// assert_eq!(t.get(&1)?, None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<(), StoreError> {
        let key = self.checked_key(key)?;
        self.store.inner.write(self.index, key, None)
    }

    /// The value under `key`, pending writes included.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] (naming the table and the key) if the stored
    /// value does not decode; [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u8, String>("t")?;
    /// assert_eq!(t.get(&1)?, None);
    /// t.put(&1, &"one".into())?;
    /// assert_eq!(t.get(&1)?.as_deref(), Some("one"));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        let k = encode_key(key);
        if !is_holdable(&k) {
            return Ok(None); // a key no table holds (see `put`)
        }
        let pending = {
            let state = self.store.inner.state.lock();
            state.overlays[self.index]
                .writes
                .get(&PendingKey::of(&k))
                .cloned()
        };
        let bytes = match pending {
            Some(Some(v)) => Bytes::Db(v),
            Some(None) => return Ok(None),
            None => match self.keyspace.get(&k).map_err(|e| self.io(e))? {
                Some(v) => Bytes::Db(v),
                None => return Ok(None),
            },
        };
        self.decode_value(key, bytes.as_ref()).map(Some)
    }

    /// The number of entries, pending writes included. Counts by reading
    /// every key: O(n).
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u8, u8>("t")?;
    /// t.put(&1, &1)?;
    /// t.put(&2, &2)?;
    /// assert_eq!(t.len()?, 2);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.raw_range((Bound::Unbounded, Bound::Unbounded)) {
            entry.map_err(|e| self.io(e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the table has no entry, pending writes included.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// assert!(store.table::<u8, u8>("t")?.is_empty()?);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        match self.raw_range((Bound::Unbounded, Bound::Unbounded)).next() {
            None => Ok(true),
            Some(entry) => entry.map(|_| false).map_err(|e| self.io(e)),
        }
    }

    /// The pending writes in `bounds`, copied, merged with a snapshot of
    /// the committed entries taken at the same instant.
    ///
    /// Commits happen under the state lock, so the snapshot taken under it
    /// holds exactly the commits before the copied pending writes: a commit
    /// made while the range is read shows no part of itself in it.
    fn raw_range(&self, bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> RawRange {
        let state = self.store.inner.state.lock();
        let pending = if is_empty_interval(&bounds) {
            // `BTreeMap::range` panics on such bounds; the database returns
            // nothing for them.
            Vec::new()
        } else {
            state.overlays[self.index]
                .writes
                .range((
                    bounds.0.as_ref().map(|b| PendingKey::of(b)),
                    bounds.1.as_ref().map(|b| PendingKey::of(b)),
                ))
                .map(|(k, v)| Ok((Bytes::Db(k.bytes().clone()), v.clone().map(Bytes::Db))))
                .collect::<Vec<_>>()
        };
        let db = self
            .store
            .inner
            .db
            .snapshot()
            .range::<Vec<u8>, _>(&self.keyspace, bounds);
        drop(state);
        Merge::new(db.map(db_entry as fn(_) -> _), pending.into_iter())
    }

    /// The entries with keys in `range`, in key order; `.rev()` for the
    /// reverse. Reads a snapshot taken now: later writes do not show.
    ///
    /// # Errors
    ///
    /// None on the call; each item is a `Result`: [`StoreError::Decode`]
    /// or [`StoreError::CorruptKey`] for an entry that does not decode,
    /// [`StoreError::Io`] if the database fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let t = store.table::<u32, char>("letters")?;
    /// for (i, c) in ('a'..='e').enumerate() {
    ///     t.put(&(i as u32), &c)?;
    /// }
    /// let back = t.range(1..4)?.rev().map(|e| e.map(|(_, c)| c)).collect::<Result<String, _>>()?;
    /// assert_eq!(back, "dcb");
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn range(&self, range: impl RangeBounds<K>) -> Result<Range<K, V, C>, StoreError> {
        let bound = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(key::encode(k)),
            Bound::Excluded(k) => Bound::Excluded(key::encode(k)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let bounds = (
            lower_bound(bound(range.start_bound())),
            upper_bound(bound(range.end_bound())),
        );
        Ok(Range {
            table: self.clone(),
            inner: self.raw_range(bounds),
        })
    }

    /// The entry with the greatest key at or before `key`: the as-of probe
    /// of a temporal join (Slipstream's `values(backwards=True,
    /// from_key=key)`, first item).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Store, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let weather = store.table::<Timestamp, String>("weather")?;
    /// let at = |h| Timestamp::from_ymd_hms(2023, 1, 1, h, 0, 0).unwrap();
    /// weather.put(&at(10), &"🌞".into())?;
    /// weather.put(&at(11), &"⛅".into())?;
    /// let probe = at(10) + std::time::Duration::from_secs(1800);
    /// assert_eq!(weather.at_or_before(&probe)?, Some((at(10), "🌞".to_string())));
    /// assert_eq!(weather.at_or_before(&at(9))?, None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn at_or_before(&self, key: &K) -> Result<Option<(K, V)>, StoreError> {
        let mut k = encode_key(key);
        if k.is_empty() {
            return Ok(None); // no stored key is at or before it
        }
        if k.len() > super::MAX_KEY_LEN {
            k = fjall::Slice::from(&k[..super::MAX_KEY_LEN]); // as `upper_bound`
        }
        let found = {
            let state = self.store.inner.state.lock();
            let pending = state.overlays[self.index]
                .writes
                .range((Bound::Unbounded, Bound::Included(PendingKey::of(&k))))
                .map(|(k, v)| {
                    Ok((
                        Bytes::Borrowed(k.bytes()),
                        v.as_deref().map(Bytes::Borrowed),
                    ))
                });
            let db = self.keyspace.range(..=&k[..]).map(db_entry as fn(_) -> _);
            match Merge::new(db, pending).next_back() {
                None => None,
                Some(Err(e)) => return Err(self.io(e)),
                // Copy out, to decode after unlocking.
                Some(Ok((k, v))) => Some((into_owned(k), into_owned(v))),
            }
        };
        match found {
            None => Ok(None),
            Some((k, v)) => self.decode_entry(k.as_ref(), v.as_ref()).map(Some),
        }
    }

    /// A new subscriber to the updates written through the table's
    /// [`Sink`](crate::sink::Sink) (Slipstream's `async for k, v in
    /// cache`): every `(key, value)` sent after this call, in order. The
    /// stream buffers a few updates; a subscriber that falls further behind
    /// holds back the pipelines writing to the table (backpressure). Drop
    /// it to stop holding them back. It ends when the store closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{sink::handle, store::Store};
    ///
    /// let store = Store::temporary()?;
    /// let counts = store.table::<String, u32>("counts")?;
    /// let mut updates = counts.updates();
    /// let source = futures::stream::iter(["🏆", "📞"]);
    /// let pipeline = handle(source, |e| Some((e.to_string(), 1))).sink_to(counts.clone());
    /// futures::executor::block_on(pipeline.run())?;
    /// assert_eq!(updates.try_recv(), Ok(("🏆".to_string(), 1)));
    /// assert_eq!(updates.try_recv(), Ok(("📞".to_string(), 1)));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn updates(&self) -> Consumer<(K, V)> {
        self.updates.subscribe()
    }
}

thread_local! {
    /// A buffer to encode into, reused: a write allocates only its value.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `f` with the thread's scratch buffer, emptied. The buffer is taken
/// out while `f` runs, so a codec that writes to a table still works.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.take();
    buf.clear();
    let r = f(&mut buf);
    SCRATCH.set(buf);
    r
}

/// Whether the database can hold a key of these bytes: 1 to
/// [`MAX_KEY_LEN`](super::MAX_KEY_LEN) of them.
fn is_holdable(key: &[u8]) -> bool {
    (1..=super::MAX_KEY_LEN).contains(&key.len())
}

/// A range's lower bound, for keys the database can hold (1 to
/// `MAX_KEY_LEN` bytes): a longer key bounds them as its first `MAX_KEY_LEN`
/// bytes excluded (a stored key above that prefix is above the key too),
/// and an empty one not at all.
fn lower_bound(bound: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) if k.is_empty() => Bound::Unbounded,
        Bound::Included(mut k) | Bound::Excluded(mut k) if k.len() > super::MAX_KEY_LEN => {
            k.truncate(super::MAX_KEY_LEN);
            Bound::Excluded(k)
        }
        bound => bound,
    }
}

/// A range's upper bound, as [`lower_bound`]: a longer key bounds the
/// stored keys as its first `MAX_KEY_LEN` bytes included, and an empty one
/// leaves none (no stored key is below `[0]` but the empty one).
fn upper_bound(bound: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) if k.is_empty() => Bound::Excluded(vec![0]),
        Bound::Included(mut k) | Bound::Excluded(mut k) if k.len() > super::MAX_KEY_LEN => {
            k.truncate(super::MAX_KEY_LEN);
            Bound::Included(k)
        }
        bound => bound,
    }
}

/// A key's bytes: short keys are stored inline, without an allocation.
fn encode_key<K: Key>(key: &K) -> fjall::Slice {
    with_scratch(|bytes| {
        key.encode_key(bytes);
        fjall::Slice::from(&bytes[..])
    })
}

fn into_owned(b: Bytes<'_>) -> Bytes<'static> {
    match b {
        Bytes::Db(s) => Bytes::Db(s),
        Bytes::Borrowed(b) => Bytes::Owned(b.to_vec()),
        Bytes::Owned(v) => Bytes::Owned(v),
    }
}

fn db_entry(guard: fjall::Guard) -> Result<Entry<'static>, fjall::Error> {
    let (k, v) = guard.into_inner()?;
    Ok((Bytes::Db(k), Some(Bytes::Db(v))))
}

type PendingIter = std::vec::IntoIter<Result<Entry<'static>, fjall::Error>>;
type DbIter = std::iter::Map<fjall::Iter, fn(fjall::Guard) -> Result<Entry<'static>, fjall::Error>>;
type RawRange = Merge<'static, DbIter, PendingIter>;

/// Whether no key lies within `bounds`: start after end, or start equal to
/// end with either excluded.
fn is_empty_interval(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> bool {
    use Bound::{Excluded, Included};
    match bounds {
        (Included(a), Included(b)) => a > b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

impl<K, V, C> Clone for Table<K, V, C> {
    fn clone(&self) -> Self {
        Table {
            store: self.store.clone(),
            name: self.name.clone(),
            index: self.index,
            keyspace: self.keyspace.clone(),
            codec: self.codec.clone(),
            updates: self.updates.clone(),
        }
    }
}

impl<K, V, C> fmt::Debug for Table<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("key", &std::any::type_name::<K>())
            .field("value", &std::any::type_name::<V>())
            .finish_non_exhaustive()
    }
}

/// The entries of a [`Table::range`], in key order from the front,
/// reversed from the back.
///
/// # Examples
///
/// ```
/// let store = timecast::store::Store::temporary()?;
/// let t = store.table::<u8, u8>("t")?;
/// t.put(&1, &10)?;
/// let mut range: timecast::store::Range<u8, u8> = t.range(..)?;
/// assert_eq!(range.next().transpose()?, Some((1, 10)));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[must_use = "a range reads nothing until iterated"]
pub struct Range<K, V, C = Binary> {
    table: Table<K, V, C>,
    inner: RawRange,
}

impl<K: Key, V, C: Codec<V>> Range<K, V, C> {
    fn decode(
        &self,
        entry: Result<(Bytes<'static>, Bytes<'static>), fjall::Error>,
    ) -> Result<(K, V), StoreError> {
        let (k, v) = entry.map_err(|e| self.table.io(e))?;
        self.table.decode_entry(k.as_ref(), v.as_ref())
    }
}

impl<K: Key, V, C: Codec<V>> Iterator for Range<K, V, C> {
    type Item = Result<(K, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next()?;
        Some(self.decode(entry))
    }
}

impl<K: Key, V, C: Codec<V>> DoubleEndedIterator for Range<K, V, C> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let entry = self.inner.next_back()?;
        Some(self.decode(entry))
    }
}

impl<K, V, C> fmt::Debug for Range<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Range")
            .field("table", &self.table.name)
            .finish_non_exhaustive()
    }
}

/// A table is a sink: each `(key, value)` is written (visible to `get` at
/// once, durable at the store's next commit), then published on
/// [`updates`](Table::updates) to the subscribers there are, waiting for
/// room (backpressure). Slipstream's `sink=[cache]`, then `cache(key, val)`.
///
/// # Errors
///
/// The write's [`StoreError`]; the update is then not published.
///
/// # Cancel safety
///
/// Dropping the future after the write leaves the write in place and the
/// update unpublished.
///
/// # Examples
///
/// The Slipstream cookbook's emoji counter, into a table:
///
/// ```
/// use timecast::{sink::handle, store::Store};
///
/// let store = Store::temporary()?;
/// let counts = store.table::<String, u32>("emoji")?;
/// let messages = futures::stream::iter("🏆📞🐟👌🏆📞🐟👌".chars());
/// let reader = counts.clone();
/// let pipeline = handle(messages, move |emoji| {
///     let emoji = emoji.to_string();
///     // A handler returns outputs, not errors: a failed read stops here.
///     let count = reader.get(&emoji).expect("the store reads").map_or(1, |n| n + 1);
///     Some((emoji, count))
/// })
/// .sink_to(counts.clone());
/// futures::executor::block_on(pipeline.run())?;
/// assert_eq!(counts.get(&"🐟".to_string())?, Some(2));
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
impl<K, V, C> Sink<(K, V)> for Table<K, V, C>
where
    K: Key,
    C: Codec<V>,
{
    type Error = StoreError;

    async fn send(&mut self, (key, value): (K, V)) -> Result<(), StoreError> {
        self.put(&key, &value)?;
        // With no subscriber, a put would wait for the first one: publish
        // only to those there are, and stop waiting for room once every
        // subscriber has left (their leaving wakes the put).
        if self.updates.consumer_count() > 0 {
            let updates = &self.updates;
            let mut put = std::pin::pin!(updates.put((key, value)));
            std::future::poll_fn(|cx| match put.as_mut().poll(cx) {
                Poll::Pending if updates.consumer_count() == 0 => Poll::Ready(Ok(())),
                other => other,
            })
            .await?;
        }
        Ok(())
    }
}

/// A table's error absorbs the error of any sink that follows it in a
/// fan-out (a closure or a topic gives [`Closed`](crate::Closed)).
impl<E: Into<StoreError>> CombineErrors<E> for StoreError {
    type Joined = StoreError;
    fn first(self) -> StoreError {
        self
    }
    fn second(second: E) -> StoreError {
        second.into()
    }
}
