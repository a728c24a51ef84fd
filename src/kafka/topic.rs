//! [`KafkaTopic`]: one topic of a [`Kafka`] connection, with values in a
//! codec; the Kafka side of the [`Topic`] trait.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::{Offset as KOffset, TopicPartitionList};

use super::client::{Kafka, Pending, Slot};
use super::error::{client, KafkaError};
use super::reader::{self, KafkaReader, Start};
use super::sink::KafkaSink;
use crate::store::codec::{Binary, Codec};
use crate::sync::{Arc, Mutex};
use crate::time::Timestamp;
use crate::topic::{Offset, Position, Topic};

/// The header that carries an event time finer than Kafka's milliseconds:
/// the Unix nanoseconds, big-endian.
pub(crate) const NANOS_HEADER: &str = "timecast.ts";

/// A topic of a [`Kafka`] connection, with values `T` in the codec `C`:
/// publish to it, read it from an offset or a time, or read it as a member
/// of a consumer group. Implements [`Topic`] as the embedded
/// [`Log`](crate::store::Log) does. Cheap to clone; `Send + Sync`.
///
/// # Examples
///
/// ```no_run
/// use futures::StreamExt;
/// use timecast::{kafka::Kafka, topic::Offset, Timestamp};
///
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let topic = kafka.topic::<u64>("numbers")?;
/// topic.publish(Timestamp::from_unix_secs(1), &42)?;
/// let mut reader = topic.reader(Offset::Start)?;
/// let first = futures::executor::block_on(reader.next()).transpose()?;
/// assert_eq!(first.map(|r| r.value), Some(42));
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
pub struct KafkaTopic<T, C = Binary> {
    pub(crate) inner: Arc<TopicInner<C>>,
    _values: PhantomData<fn(T) -> T>,
}

pub(crate) struct TopicInner<C> {
    pub(crate) kafka: Kafka,
    pub(crate) name: String,
    pub(crate) partitions: u32,
    pub(crate) codec: C,
    /// The group readers of this process, which commit for their group.
    pub(crate) members: Mutex<Vec<std::sync::Weak<reader::Shared>>>,
}

impl<T, C> Clone for KafkaTopic<T, C> {
    fn clone(&self) -> Self {
        KafkaTopic {
            inner: self.inner.clone(),
            _values: PhantomData,
        }
    }
}

impl<T, C> fmt::Debug for KafkaTopic<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaTopic")
            .field("name", &self.inner.name)
            .field("partitions", &self.inner.partitions)
            .field("brokers", &self.inner.kafka.inner.brokers)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> KafkaTopic<T, C> {
    pub(crate) fn new(kafka: Kafka, name: &str, partitions: u32, codec: C) -> Self {
        KafkaTopic {
            inner: Arc::new(TopicInner {
                kafka,
                name: name.to_string(),
                partitions,
                codec,
                members: Mutex::new(Vec::new()),
            }),
            _values: PhantomData,
        }
    }

    /// The topic's name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.name(), "t");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many partitions the topic had when it was opened.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// kafka.create_topic("four", 4)?;
    /// assert_eq!(kafka.topic::<u8>("four")?.partitions(), 4);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The connection the topic was opened on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.kafka().brokers(), "127.0.0.1:9092");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn kafka(&self) -> &Kafka {
        &self.inner.kafka
    }

    /// Publishes `value` with event time `ts` (the partition is chosen by
    /// the producer), and returns its position once the broker
    /// acknowledged it.
    ///
    /// # Blocking
    ///
    /// Blocks for a round trip to the broker (a few milliseconds; up to
    /// the producer's `message.timeout.ms` when the broker is away: until
    /// the record is delivered or has failed for good). For many records,
    /// use the [`sink`](Self::sink).
    ///
    /// # Errors
    ///
    /// [`KafkaError::Encode`] or [`KafkaError::Timestamp`] (nothing is
    /// sent); [`KafkaError::Delivery`] if the broker did not acknowledge it,
    /// or the producer refused it (larger than its `message.max.bytes`).
    ///
    /// # Examples
    ///
    /// See [`KafkaTopic`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let at = kafka.topic::<u8>("t")?.publish(timecast::Timestamp::now(), &1)?;
    /// println!("{at}");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn publish(&self, ts: Timestamp, value: &T) -> Result<Position, KafkaError> {
        self.publish_with(None, ts, None, value)
    }

    /// Publishes `value` with event time `ts` and `key`: the producer puts
    /// every record of one key in the same partition (so they keep their
    /// order).
    ///
    /// # Blocking
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let orders = kafka.topic::<u32>("orders")?;
    /// let a = orders.publish_keyed(timecast::Timestamp::now(), b"alice", &1)?;
    /// let b = orders.publish_keyed(timecast::Timestamp::now(), b"alice", &2)?;
    /// assert_eq!(a.partition, b.partition);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn publish_keyed(
        &self,
        ts: Timestamp,
        key: &[u8],
        value: &T,
    ) -> Result<Position, KafkaError> {
        self.publish_with(None, ts, Some(key), value)
    }

    /// Publishes `value` with event time `ts` to `partition`.
    ///
    /// # Blocking
    ///
    /// As [`publish`](Self::publish).
    ///
    /// # Errors
    ///
    /// [`KafkaError::NoSuchPartition`]; else as [`publish`](Self::publish).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let at = kafka.topic::<u8>("four")?.publish_to(3, timecast::Timestamp::now(), &1)?;
    /// assert_eq!(at.partition, 3);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn publish_to(
        &self,
        partition: u32,
        ts: Timestamp,
        value: &T,
    ) -> Result<Position, KafkaError> {
        self.check_partition(partition)?;
        self.publish_with(Some(partition), ts, None, value)
    }

    fn publish_with(
        &self,
        partition: Option<u32>,
        ts: Timestamp,
        key: Option<&[u8]>,
        value: &T,
    ) -> Result<Position, KafkaError> {
        let payload = self.encode(value)?;
        let slot = Arc::new(Slot::new());
        self.send_blocking(
            partition,
            ts,
            key,
            &payload,
            Pending::Publish(slot.clone(), ts),
        )?;
        let kafka = &self.inner.kafka.inner;
        let wait = publish_wait(kafka.delivery_timeout, kafka.timeout);
        slot.wait(wait).unwrap_or_else(|| {
            Err(KafkaError::Delivery {
                topic: self.inner.name.clone(),
                ts,
                source: format!(
                    "no delivery report within {wait:?}, past the producer's \
                     message.timeout.ms: the client is stuck, and may still deliver it"
                )
                .into(),
            })
        })
    }

    /// Refuses a commit of `group` past the end of `at.partition`. `known`
    /// is an offset known to exist (or to be the end): up to it, and up to
    /// the end of this producer's acknowledged records, no broker is asked.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        at: Position,
        known: u64,
    ) -> Result<(), KafkaError> {
        self.check_partition(at.partition)?;
        let acked = self
            .inner
            .kafka
            .inner
            .acked
            .end(&self.inner.name, at.partition);
        if at.offset <= known.max(acked.unwrap_or(0)) {
            return Ok(());
        }
        let (_, end) = self.watermark(at.partition)?;
        if at.offset > end {
            return Err(KafkaError::CommitPastEnd {
                topic: self.inner.name.clone(),
                group: group.to_string(),
                at,
                end,
            });
        }
        Ok(())
    }

    pub(crate) fn check_partition(&self, partition: u32) -> Result<(), KafkaError> {
        if partition >= self.inner.partitions {
            return Err(KafkaError::NoSuchPartition {
                topic: self.inner.name.clone(),
                partition,
                partitions: self.inner.partitions,
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, value: &T) -> Result<Vec<u8>, KafkaError> {
        let mut payload = Vec::new();
        self.inner
            .codec
            .encode(value, &mut payload)
            .map_err(|source| KafkaError::Encode {
                topic: self.inner.name.clone(),
                source,
            })?;
        Ok(payload)
    }

    /// Queues one record in the producer. `Err(Ok(pending))` if its queue
    /// is full (try again once records are delivered).
    pub(crate) fn try_send(
        &self,
        partition: Option<u32>,
        ts: Timestamp,
        key: Option<&[u8]>,
        payload: &[u8],
        pending: Pending,
    ) -> Result<(), Result<Pending, KafkaError>> {
        let nanos = ts.unix_nanos();
        if nanos < 0 {
            return Err(Err(KafkaError::Timestamp {
                topic: self.inner.name.clone(),
                ts,
            }));
        }
        let mut record = BaseRecord::<[u8], [u8], Box<Pending>>::with_opaque_to(
            &self.inner.name,
            Box::new(pending),
        )
        .payload(payload)
        .timestamp(nanos / 1_000_000);
        // A time finer than a millisecond rides in a header; so does one
        // in the epoch's first millisecond, as librdkafka reads a zero
        // timestamp as "now".
        if nanos % 1_000_000 != 0 || nanos < 1_000_000 {
            let bytes = nanos.to_be_bytes();
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: NANOS_HEADER,
                value: Some(&bytes[..]),
            }));
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = partition {
            record = record.partition(partition as i32);
        }
        match self.inner.kafka.inner.producer.send(record) {
            Ok(()) => Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::error::RDKafkaErrorCode::QueueFull,
                ),
                record,
            )) => Err(Ok(*record.delivery_opaque)),
            // Refused at once (too large, an unknown partition…): this
            // record's delivery failed.
            Err((e @ rdkafka::error::KafkaError::MessageProduction(code), _)) => {
                let source: Box<dyn std::error::Error + Send + Sync> =
                    if code == rdkafka::error::RDKafkaErrorCode::MessageSizeTooLarge {
                        format!(
                            "the record is {} bytes, more than the producer's \
                             message.max.bytes allows ({e})",
                            payload.len() + key.map_or(0, <[u8]>::len)
                        )
                        .into()
                    } else {
                        Box::new(e)
                    };
                Err(Err(KafkaError::Delivery {
                    topic: self.inner.name.clone(),
                    ts,
                    source,
                }))
            }
            Err((e, _)) => Err(Err(client("queueing a record", Some(&self.inner.name), e))),
        }
    }

    /// Queues one record, waiting while the producer's queue is full.
    fn send_blocking(
        &self,
        partition: Option<u32>,
        ts: Timestamp,
        key: Option<&[u8]>,
        payload: &[u8],
        mut pending: Pending,
    ) -> Result<(), KafkaError> {
        loop {
            match self.try_send(partition, ts, key, payload, pending) {
                Ok(()) => return Ok(()),
                Err(Ok(back)) => {
                    pending = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Err(e)) => return Err(e),
            }
        }
    }

    /// A sink that queues records in the producer and reports every
    /// delivery failure: see [`KafkaSink`].
    ///
    /// # Examples
    ///
    /// See [`KafkaSink`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let sink = kafka.topic::<u8>("t")?.sink();
    /// assert_eq!(sink.in_flight(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn sink(&self) -> KafkaSink<T, C> {
        KafkaSink::new(self.clone())
    }

    /// A reader of every partition from `from`: it replays the stored
    /// records, then follows new ones. `Offset::Time(ts)` finds each
    /// partition's first record at or after `ts` with Kafka's
    /// offsets-for-times.
    ///
    /// # Blocking
    ///
    /// Blocks while it looks up where `from` is (a round trip per
    /// partition, at most the timeout).
    ///
    /// # Errors
    ///
    /// [`KafkaError::Client`] if the offsets cannot be looked up.
    ///
    /// # Examples
    ///
    /// See [`KafkaTopic`].
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Offset, Timestamp};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let since_noon = kafka.topic::<u8>("t")?.reader(Offset::Time(Timestamp::from_unix_secs(43_200)))?;
    /// println!("{:?}", since_noon.positions());
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn reader(&self, from: Offset) -> Result<KafkaReader<T, C>, KafkaError> {
        let partitions = (0..self.inner.partitions).map(|p| (p, from)).collect();
        reader::open(self.clone(), Start::Partitions(partitions))
    }

    /// A reader of the given partitions only, each from its own offset
    /// (for example the positions a checkpoint saved).
    ///
    /// # Blocking
    ///
    /// As [`reader`](Self::reader).
    ///
    /// # Errors
    ///
    /// [`KafkaError::NoSuchPartition`]; else as [`reader`](Self::reader).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Offset};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("four")?.reader_partitions([(0, Offset::At(2)), (3, Offset::Start)])?;
    /// assert_eq!(reader.assignment(), [0, 3]);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn reader_partitions(
        &self,
        partitions: impl IntoIterator<Item = (u32, Offset)>,
    ) -> Result<KafkaReader<T, C>, KafkaError> {
        let partitions: BTreeMap<u32, Offset> = partitions.into_iter().collect();
        for p in partitions.keys() {
            self.check_partition(*p)?;
        }
        reader::open(self.clone(), Start::Partitions(partitions))
    }

    /// Joins the consumer group `group` and reads the partitions it assigns
    /// to this member, each from the group's committed offset (the start
    /// if the group never committed there). Returns once the group has
    /// made its first assignment. When members join or leave, the group
    /// moves partitions between them: the reader drops the records of a
    /// partition it loses that it had not yielded yet (the new owner reads
    /// them from the committed offset).
    ///
    /// # Blocking
    ///
    /// Blocks until the first assignment (a few seconds at most when other
    /// members must rejoin), at most the timeout.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Client`] if the group cannot be joined within the
    /// timeout.
    ///
    /// # Examples
    ///
    /// See [the module](super).
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.subscribe("billing")?;
    /// println!("reading {:?}", reader.assignment());
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn subscribe(&self, group: &str) -> Result<KafkaReader<T, C>, KafkaError> {
        reader::open(self.clone(), Start::Group(group.to_string()))
    }

    /// Commits `group`'s offset in `at.partition` (`at.offset` is the next
    /// record to process). Through this process's reader of that group
    /// that owns the partition, if any; otherwise as an outside client
    /// (which the broker accepts only while the group has no active
    /// member).
    ///
    /// # Blocking
    ///
    /// Blocks until the broker acknowledged the commit.
    ///
    /// # Errors
    ///
    /// [`KafkaError::NoSuchPartition`]; [`KafkaError::CommitPastEnd`] if
    /// `at.offset` is past the partition's end; [`KafkaError::Client`] if
    /// the broker refused the commit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Position};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// kafka.topic::<u8>("t")?.commit("billing", Position::new(0, 10))?;
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn commit(&self, group: &str, at: Position) -> Result<(), KafkaError> {
        let members: Vec<_> = {
            let mut members = self.inner.members.lock();
            members.retain(|m| m.strong_count() > 0);
            members
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .collect()
        };
        let member = members
            .into_iter()
            .find(|m| m.group.as_deref() == Some(group) && m.owns(at.partition));
        let known = member.as_ref().map_or(0, |m| m.known_end(at.partition));
        self.check_commit(group, at, known)?;
        if let Some(member) = member {
            return member.commit(vec![at]);
        }
        let consumer =
            self.inner
                .kafka
                .consumer(Some(group), DefaultConsumerContext, &self.inner.name)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(
            &self.inner.name,
            at.partition as i32,
            KOffset::Offset(at.offset as i64),
        )
        .map_err(|e| client("committing", Some(&self.inner.name), e))?;
        consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| client("committing", Some(&self.inner.name), e))
    }

    /// The group's committed offsets, by partition (partitions it never
    /// committed are absent).
    ///
    /// # Blocking
    ///
    /// Blocks for a round trip to the group's coordinator.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Client`] if they cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let committed = kafka.topic::<u8>("t")?.committed("billing")?;
    /// println!("{committed:?}");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn committed(&self, group: &str) -> Result<BTreeMap<u32, u64>, KafkaError> {
        let consumer =
            self.inner
                .kafka
                .consumer(Some(group), DefaultConsumerContext, &self.inner.name)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_range(&self.inner.name, 0, self.inner.partitions as i32 - 1);
        let list = consumer
            .committed_offsets(list, self.inner.kafka.inner.timeout)
            .map_err(|e| client("reading committed offsets", Some(&self.inner.name), e))?;
        Ok(list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                KOffset::Offset(o) if o >= 0 => Some((e.partition() as u32, o as u64)),
                _ => None,
            })
            .collect())
    }

    /// Each partition's low and high watermarks: its first offset held,
    /// and the offset the next record will get.
    ///
    /// # Blocking
    ///
    /// Blocks for a round trip per partition.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Client`] if they cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// for (p, (low, high)) in kafka.topic::<u8>("t")?.watermarks()?.iter().enumerate() {
    ///     println!("partition {p}: {} records", high - low);
    /// }
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn watermarks(&self) -> Result<Vec<(u64, u64)>, KafkaError> {
        (0..self.inner.partitions)
            .map(|p| self.watermark(p))
            .collect()
    }

    pub(crate) fn watermark(&self, partition: u32) -> Result<(u64, u64), KafkaError> {
        let kafka = &self.inner.kafka.inner;
        use rdkafka::producer::Producer;
        let (low, high) = kafka
            .producer
            .client()
            .fetch_watermarks(&self.inner.name, partition as i32, kafka.timeout)
            .map_err(|e| client("reading watermarks", Some(&self.inner.name), e))?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }
}

/// How long a blocking publish waits for its record's delivery report:
/// librdkafka sends one within the producer's `message.timeout.ms`
/// (`delivery`), which the wait passes by a margin; with no limit (0) or
/// none known, it waits for the report however long it takes.
fn publish_wait(delivery: Option<Duration>, timeout: Duration) -> Duration {
    match delivery {
        Some(d) if !d.is_zero() => d.saturating_add(timeout.max(Duration::from_secs(30))),
        _ => Duration::MAX,
    }
}

impl<T, C: Codec<T>> Topic<T> for KafkaTopic<T, C> {
    type Error = KafkaError;
    type Reader = KafkaReader<T, C>;

    fn name(&self) -> &str {
        &self.inner.name
    }

    fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    fn publish(&self, ts: Timestamp, value: &T) -> Result<Position, KafkaError> {
        KafkaTopic::publish(self, ts, value)
    }

    fn publish_keyed(&self, ts: Timestamp, key: &[u8], value: &T) -> Result<Position, KafkaError> {
        KafkaTopic::publish_keyed(self, ts, key, value)
    }

    fn reader(&self, from: Offset) -> Result<KafkaReader<T, C>, KafkaError> {
        KafkaTopic::reader(self, from)
    }

    fn subscribe(&self, group: &str) -> Result<KafkaReader<T, C>, KafkaError> {
        KafkaTopic::subscribe(self, group)
    }

    fn commit(&self, group: &str, at: Position) -> Result<(), KafkaError> {
        KafkaTopic::commit(self, group, at)
    }

    fn seek(reader: &mut KafkaReader<T, C>, to: Position) {
        reader.seek(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_waits_past_the_message_timeout_or_without_limit() {
        let secs = Duration::from_secs;
        assert_eq!(publish_wait(Some(secs(600)), secs(2)), secs(630));
        assert_eq!(publish_wait(Some(secs(30)), secs(60)), secs(90));
        assert_eq!(publish_wait(Some(Duration::ZERO), secs(2)), Duration::MAX);
        assert_eq!(publish_wait(None, secs(2)), Duration::MAX);
        assert_eq!(publish_wait(Some(Duration::MAX), secs(2)), Duration::MAX);
    }
}
