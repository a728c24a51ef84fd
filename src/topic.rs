//! [`Topic`]: what a pipeline reads from and writes to, whether the
#![cfg_attr(
    feature = "store",
    doc = "embedded log of [`store`](crate::store) (feature `store`) or a Kafka"
)]
#![cfg_attr(
    not(feature = "store"),
    doc = "embedded log of `store` (feature `store`) or a Kafka"
)]
#![cfg_attr(
    feature = "kafka",
    doc = "topic of [`kafka`](crate::kafka) (feature `kafka`), so that moving a"
)]
#![cfg_attr(
    not(feature = "kafka"),
    doc = "topic of `kafka` (feature `kafka`), so that moving a"
)]
//! pipeline between them changes the line that opens the topic, not the
//! pipeline.
//!
//! A topic has one or more partitions. Each partition is a sequence of
//! [`Record`]s with offsets that only grow; a record's [`Position`] is its
//! partition and offset. A reader starts at an [`Offset`] (the same in
//! every partition) and yields the records of each partition in offset
//! order; a group commits, per partition, the offset of the next record to
//! process.
//!
//! | | embedded log | Kafka |
//! |---|---|---|
//! | partitions | one, `0` | the topic's |
//! | keys | none: `key` is `None`; [`Topic::publish_keyed`] fails | any bytes; the key picks the partition |
//! | offsets | dense from 0 | as the broker gives them (gaps after compaction or transactions) |
//! | groups | a committed offset in the store | Kafka's consumer groups: the partitions are shared among the members |

use std::fmt;

use futures_core::Stream;

use crate::time::Timestamp;

/// Where a reader starts, in every partition.
///
/// # Examples
///
/// ```
/// use timecast::{store::{Offset, Store}, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<String>("events")?;
/// log.append(Timestamp::from_unix_secs(10), &"a".into())?;
/// log.append(Timestamp::from_unix_secs(20), &"b".into())?;
/// let reader = log.read(Offset::Time(Timestamp::from_unix_secs(15)));
/// assert_eq!(reader.position(), 1);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Offset {
    /// The oldest record the partition holds.
    Start,
    /// The end: only records appended after the reader is made.
    End,
    /// The record at this offset. Beyond the end, the reader waits until
    /// the partition reaches it (it does not fail).
    At(u64),
    /// The first record (in offset order) whose event time is at or after
    /// this time; if none is stored yet, the first later one.
    Time(Timestamp),
}

/// Where a record is: its partition and its offset in that partition.
///
/// # Examples
///
/// ```
/// use timecast::topic::Position;
/// let p = Position::new(3, 42);
/// assert_eq!((p.partition, p.offset), (3, 42));
/// assert_eq!(p.to_string(), "partition 3, offset 42");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct Position {
    /// The partition (always 0 in the embedded log).
    pub partition: u32,
    /// The offset in the partition.
    pub offset: u64,
}

impl Position {
    /// The position `offset` in `partition`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = timecast::topic::Position::new(0, 7);
    /// assert_eq!(p.offset, 7);
    /// ```
    pub const fn new(partition: u32, offset: u64) -> Self {
        Position { partition, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {}, offset {}", self.partition, self.offset)
    }
}

/// One record of a topic.
///
/// # Examples
///
/// ```
/// use timecast::{topic::Record, Timestamp};
/// let r = Record::new(0, Timestamp::UNIX_EPOCH, "🏆").with_partition(2).with_key(b"user-1".to_vec());
/// assert_eq!((r.partition, r.offset, r.value), (2, 0, "🏆"));
/// assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Record<T> {
    /// The record's offset in its partition.
    pub offset: u64,
    /// The record's event time (Kafka: its timestamp).
    pub ts: Timestamp,
    /// The value.
    pub value: T,
    /// The record's partition (always 0 in the embedded log).
    pub partition: u32,
    /// The record's key (always `None` in the embedded log).
    pub key: Option<Vec<u8>>,
}

impl<T> Record<T> {
    /// A record of partition 0 with no key.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{topic::Record, Timestamp};
    /// let r = Record::new(5, Timestamp::from_unix_secs(1), 'x');
    /// assert_eq!((r.partition, r.key), (0, None));
    /// ```
    pub fn new(offset: u64, ts: Timestamp, value: T) -> Self {
        Record {
            offset,
            ts,
            value,
            partition: 0,
            key: None,
        }
    }

    /// The record, in `partition`.
    ///
    /// # Examples
    ///
    /// See [`Record`].
    ///
    /// ```
    /// use timecast::{topic::Record, Timestamp};
    /// assert_eq!(Record::new(0, Timestamp::UNIX_EPOCH, ()).with_partition(3).partition, 3);
    /// ```
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = partition;
        self
    }

    /// The record, with `key`.
    ///
    /// # Examples
    ///
    /// See [`Record`].
    ///
    /// ```
    /// use timecast::{topic::Record, Timestamp};
    /// let r = Record::new(0, Timestamp::UNIX_EPOCH, ()).with_key(vec![1]);
    /// assert_eq!(r.key, Some(vec![1]));
    /// ```
    pub fn with_key(mut self, key: Vec<u8>) -> Self {
        self.key = Some(key);
        self
    }

    /// The record's partition and offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{topic::{Position, Record}, Timestamp};
    /// let r = Record::new(9, Timestamp::UNIX_EPOCH, ()).with_partition(1);
    /// assert_eq!(r.position(), Position::new(1, 9));
    /// ```
    pub fn position(&self) -> Position {
        Position::new(self.partition, self.offset)
    }

    /// The position to commit once this record is processed: the next
    /// offset of its partition (at most `u64::MAX`, which no log reaches).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{topic::{Position, Record}, Timestamp};
    /// let r = Record::new(9, Timestamp::UNIX_EPOCH, ()).with_partition(1);
    /// assert_eq!(r.next(), Position::new(1, 10));
    /// ```
    pub fn next(&self) -> Position {
        Position::new(self.partition, self.offset.saturating_add(1))
    }
}

/// A topic with partitions and offsets: what a pipeline reads from and
#[cfg_attr(
    feature = "store",
    doc = "writes to, whether the embedded [`Log`](crate::store::Log) or a"
)]
#[cfg_attr(
    not(feature = "store"),
    doc = "writes to, whether the embedded `Log` (feature `store`) or a"
)]
#[cfg_attr(
    feature = "kafka",
    doc = "[`KafkaTopic`](crate::kafka::KafkaTopic), so that moving a pipeline"
)]
#[cfg_attr(
    not(feature = "kafka"),
    doc = "`KafkaTopic` (feature `kafka`), so that moving a pipeline"
)]
/// between them changes the line that opens the topic, not the pipeline.
///
/// # Laws
///
/// - A reader yields the records of each partition in offset order, never
///   skipping one (except one that fails to decode, under a policy that
///   skips it); across partitions the order is unspecified.
/// - A record published and acknowledged (its `publish` returned) is read
///   by every reader positioned before it.
/// - A group's committed offset, per partition, is the next record to
///   process: commit [`Record::next`] once a record is processed, and a
///   reader subscribed later resumes there (at-least-once).
///
/// # Examples
///
/// A copy from one topic to another, generic over the topic:
///
/// ```
/// use futures::StreamExt;
/// use timecast::{store::{Store, StoreError}, topic::Topic, Timestamp};
///
/// /// Copies `n` records of `from`, from its group's offsets, to `to`.
/// async fn copy<A: Topic<u32>, B: Topic<u32>>(from: &A, to: &B, n: usize) -> Result<(), StoreError>
/// where StoreError: From<A::Error> + From<B::Error> {
///     let mut reader = from.subscribe("copy")?;
///     for _ in 0..n {
///         let Some(r) = reader.next().await else { break };
///         let r = r?;
///         to.publish(r.ts, &r.value)?;
///         from.commit("copy", r.next())?;
///     }
///     Ok(())
/// }
///
/// let store = Store::temporary()?;
/// let (a, b) = (store.log::<u32>("a")?, store.log::<u32>("b")?);
/// a.append(Timestamp::UNIX_EPOCH, &42)?;
/// futures::executor::block_on(copy(&a, &b, 1))?;
/// assert_eq!(b.end(), 1);
/// # Ok::<_, StoreError>(())
/// ```
pub trait Topic<T> {
    /// The error of the topic's operations.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A reader: the records of each partition in offset order, then the
    /// later ones as they come.
    type Reader: Stream<Item = Result<Record<T>, Self::Error>> + Unpin;

    /// The topic's name.
    fn name(&self) -> &str;

    /// How many partitions the topic has (1 for the embedded log).
    fn partitions(&self) -> u32;

    /// Appends `value` with event time `ts`; returns its position once the
    /// topic acknowledged it.
    ///
    /// # Errors
    ///
    /// The topic's, if the record cannot be encoded or written.
    fn publish(&self, ts: Timestamp, value: &T) -> Result<Position, Self::Error>;

    /// Appends `value` with event time `ts` and `key` (which picks the
    /// partition, in Kafka); returns its position once acknowledged.
    ///
    /// # Errors
    ///
    /// The topic's, if the record cannot be encoded or written; the
    /// embedded log keeps no keys and refuses it.
    fn publish_keyed(&self, ts: Timestamp, key: &[u8], value: &T) -> Result<Position, Self::Error>;

    /// A reader of every partition from `from`.
    ///
    /// # Errors
    ///
    /// The topic's, if the reader cannot be made (Kafka: the broker cannot
    /// be reached to find `from`).
    fn reader(&self, from: Offset) -> Result<Self::Reader, Self::Error>;

    /// A reader from the group's committed offsets (the start of a
    /// partition the group never committed). In Kafka the reader is a
    /// member of the consumer group, which shares the partitions among
    /// its members.
    ///
    /// # Errors
    ///
    /// The topic's, if the committed offsets cannot be read.
    fn subscribe(&self, group: &str) -> Result<Self::Reader, Self::Error>;

    /// Commits the group's offset in `at.partition`: `at.offset` is the
    /// next record to process there.
    ///
    /// # Errors
    ///
    /// The topic's, if the offset is past the end or cannot be written.
    fn commit(&self, group: &str, at: Position) -> Result<(), Self::Error>;

    /// Moves a reader: its next record of `to.partition` is the one at
    /// `to.offset`.
    fn seek(reader: &mut Self::Reader, to: Position);
}
