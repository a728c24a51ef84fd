//! [`KafkaError`]: what failed, on which topic, partition and offset.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::store::codec::CodecError;
use crate::time::Timestamp;
use crate::topic::Position;

/// The error of an underlying client call, boxed so that librdkafka's
/// types stay out of timecast's API.
type Source = Box<dyn Error + Send + Sync + 'static>;

/// What failed in the Kafka connector: each variant names the brokers,
/// topic, partition or offset concerned, and its message says what to do.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use timecast::kafka::{Kafka, KafkaError};
///
/// // Nothing listens on port 1: a clear error within the timeout.
/// match Kafka::builder("127.0.0.1:1").timeout(Duration::from_secs(2)).connect() {
///     Err(KafkaError::Unreachable { brokers, .. }) => assert_eq!(brokers, "127.0.0.1:1"),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum KafkaError {
    /// No broker answered within `waited`: none is running at `brokers`,
    /// or it cannot be reached. Start the broker, or check the address.
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// How long the connector waited.
        waited: Duration,
        /// The client's error.
        source: Source,
    },
    /// The topic does not exist on the brokers (topics are not created by
    /// use): create it with [`Kafka::create_topic`](super::Kafka::create_topic).
    NoSuchTopic {
        /// The topic.
        topic: String,
    },
    /// A partition the topic does not have.
    NoSuchPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A topic cannot be created with this many partitions: Kafka takes 1
    /// to `i32::MAX`.
    PartitionCount {
        /// The topic.
        topic: String,
        /// The count asked for.
        partitions: u32,
    },
    /// A commit past the end of a partition: the group would resume after
    /// records that do not exist yet.
    CommitPastEnd {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// Where the commit was asked for.
        at: Position,
        /// The partition's end (its high watermark) when checked.
        end: u64,
    },
    /// A client call failed: `op` says which.
    Client {
        /// What the connector was doing.
        op: String,
        /// The topic, if the call concerned one.
        topic: Option<String>,
        /// The client's error.
        source: Source,
    },
    /// The connection to the brokers was lost. A reader reports it once
    /// and goes on: it reconnects by itself, and a group reader then
    /// resumes from the group's committed offsets.
    Disconnected {
        /// The topic read.
        topic: String,
        /// The client's error.
        source: Source,
    },
    /// A value could not be encoded: nothing was sent.
    Encode {
        /// The topic.
        topic: String,
        /// The codec's error.
        source: CodecError,
    },
    /// A record could not be decoded. The reader stops, or skips it, by its
    /// [`DecodeErrors`](crate::store::DecodeErrors) policy.
    Decode {
        /// The topic.
        topic: String,
        /// The record's partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// A record was not delivered: the broker refused it, or it could not
    /// be sent before the producer's `message.timeout.ms`.
    Delivery {
        /// The topic.
        topic: String,
        /// The record's event time.
        ts: Timestamp,
        /// The client's error.
        source: Source,
    },
    /// An event time Kafka cannot carry: before the Unix epoch.
    Timestamp {
        /// The topic.
        topic: String,
        /// The event time.
        ts: Timestamp,
    },
    /// A call that needs a consumer group on a reader that has none (made
    /// by [`reader`](super::KafkaTopic::reader), not
    /// [`subscribe`](super::KafkaTopic::subscribe)).
    NoGroup {
        /// The topic.
        topic: String,
    },
    /// A reader's background thread has ended (its client failed fatally).
    Closed {
        /// The topic.
        topic: String,
    },
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { brokers, waited, .. } => write!(
                f,
                "no Kafka broker answered at {brokers} within {waited:?}: start the broker \
                 or check the address"
            ),
            Self::NoSuchTopic { topic } => write!(
                f,
                "topic {topic:?} does not exist: create it (Kafka::create_topic) before using it"
            ),
            Self::PartitionCount { topic, partitions } => write!(
                f,
                "topic {topic:?} cannot be created with {partitions} partitions: Kafka \
                 takes 1 to {}",
                i32::MAX
            ),
            Self::CommitPastEnd {
                topic,
                group,
                at,
                end,
            } => write!(
                f,
                "group {group:?} of topic {topic:?} cannot be committed at offset {} of \
                 partition {}: it ends at {end} (commit the offset after the last record \
                 processed, at most {end})",
                at.offset, at.partition
            ),
            Self::NoSuchPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "topic {topic:?} has no partition {partition}: it has {partitions} (0..{partitions})"
            ),
            Self::Client { op, topic, .. } => match topic {
                Some(topic) => write!(f, "Kafka client failed {op} (topic {topic:?})"),
                None => write!(f, "Kafka client failed {op}"),
            },
            Self::Disconnected { topic, .. } => write!(
                f,
                "lost the connection to the brokers while reading topic {topic:?}; \
                 the reader reconnects by itself"
            ),
            Self::Encode { topic, .. } => {
                write!(f, "a value for topic {topic:?} could not be encoded; nothing was sent")
            }
            Self::Decode {
                topic,
                partition,
                offset,
                ..
            } => write!(
                f,
                "the record of topic {topic:?} at partition {partition}, offset {offset} could \
                 not be decoded (a writer with another type or codec?); skip it with \
                 DecodeErrors::Skip or seek past it"
            ),
            Self::Delivery { topic, ts, .. } => {
                write!(f, "the record of {ts} was not delivered to topic {topic:?}")
            }
            Self::Timestamp { topic, ts } => write!(
                f,
                "event time {ts} cannot be written to topic {topic:?}: Kafka timestamps start \
                 at the Unix epoch"
            ),
            Self::NoGroup { topic } => write!(
                f,
                "this reader of topic {topic:?} is in no consumer group: make it with \
                 subscribe(group) to commit"
            ),
            Self::Closed { topic } => write!(
                f,
                "the reader of topic {topic:?} has stopped (its client failed); make a new one"
            ),
        }
    }
}

impl Error for KafkaError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Unreachable { source, .. }
            | Self::Client { source, .. }
            | Self::Disconnected { source, .. }
            | Self::Delivery { source, .. } => Some(&**source),
            Self::Encode { source, .. } | Self::Decode { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// A client call's error, as [`KafkaError::Client`].
pub(crate) fn client(
    op: &str,
    topic: Option<&str>,
    source: rdkafka::error::KafkaError,
) -> KafkaError {
    KafkaError::Client {
        op: op.to_string(),
        topic: topic.map(str::to_string),
        source: Box::new(source),
    }
}
