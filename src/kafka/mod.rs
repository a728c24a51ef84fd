//! Kafka topics as sources and sinks (feature `kafka`): the same
//! [`Topic`](crate::topic::Topic) trait as the embedded
//! [`Log`](crate::store::Log), so that a pipeline moves from one machine to
//! a Kafka cluster by changing the line that opens its topic.
//!
//! ```text
//! let activity = store.log::<String>("activity")?;                        // embedded
//! let activity = Kafka::connect("127.0.0.1:9092")?.topic::<String>("activity")?;   // Kafka
//! ```
//!
//! Built on librdkafka (the `rdkafka` crate, built from its bundled
//! source), through its synchronous producer and consumer: each reader
//! owns one consumer polled by a thread of its own, and wakes the task that
//! reads it, so the connector runs under any executor (an
//! [`EventLoop`](crate::EventLoop), tokio, `futures`) and needs no runtime.
//!
//! # Reading
//!
//! - [`KafkaTopic::reader`] reads every partition from an
//!   [`Offset`](crate::topic::Offset): `Start`, `End`, `At(n)`, or
//!   `Time(ts)` (Kafka's offsets-for-times), replaying what is stored and
//!   then following new records. [`KafkaTopic::subscribe`] joins a
//!   consumer group instead, and reads the partitions the group assigns
//!   from their committed offsets.
//! - A [`KafkaReader`] is a `Stream` of [`Record`](crate::topic::Record)s
//!   that carry the Kafka timestamp, partition, offset and key. It is also
//!   a [`Source`](crate::source::Source): `process_stream(handler).source(reader)`
//!   replays the records stored when it starts (up to each partition's high
//!   watermark) in virtual time, merged across partitions in time order,
//!   then follows the later ones on the wall clock.
//! - A record that fails to decode is a [`KafkaError::Decode`] naming the
//!   topic, partition and offset; the reader stops there or skips it, by its
//!   [`DecodeErrors`](crate::store::DecodeErrors) policy.
//! - A reader holds its task busy while records it knows exist have not
//!   arrived yet (those this process published and got acknowledged, or
//!   past a seek): on an [`EventLoop`](crate::EventLoop), the clock does
//!   not move past a record already written, so a pipeline that writes to a
//!   topic and reads it back runs the same in `simulated()` time as on the
//!   embedded log.
//!
//! # Writing
//!
//! [`KafkaTopic::publish`] sends one record with its event time (Kafka's
//! `CreateTime`, in milliseconds; finer times travel in a header and come
//! back exact) and returns its partition and offset once the broker
//! acknowledged it. [`KafkaTopic::sink`] is the fast path: a
//! [`Sink`](crate::sink::Sink) that queues records and reports every
//! delivery failure, at the next `send` or at [`KafkaSink::flush`], never
//! dropping one silently.
//!
//! # Guarantee
//!
//! **At-least-once**, with commits after processing: a group reader starts
//! from the group's committed offsets, and commits only what the
//! application says it processed ([`KafkaReader::commit`],
//! [`Topic::commit`](crate::topic::Topic::commit)). When a member leaves
//! or is killed, the group gives its partitions to the others, which resume
//! from the committed offsets: records processed but not yet committed are
//! processed again, and none is lost. After a lost connection a group
//! reader resumes from its committed offsets too. Exactly-once (Kafka
//! transactions) is not offered.
//!
//! # Faults
//!
//! - No broker at [`Kafka::connect`]: [`KafkaError::Unreachable`] after the
//!   builder's timeout (10 s by default), never a hang.
//! - The broker goes away while a reader runs: the reader yields
//!   [`KafkaError::Disconnected`] once, keeps trying, and resumes by itself
//!   when the broker is back.
//! - A delivery that fails: [`KafkaError::Delivery`], from `publish` or the
//!   sink.
//!
//! librdkafka's own log goes to the `log` crate; with the environment
//! variable `TIMECAST_KAFKA_LOG` set, a reader's consumer writes it to
//! standard error (give the builder a `debug` setting, such as
//! `.set("debug", "cgrp")`, to see why a group does what it does).
//!
//! # Examples
//!
//! ```no_run
//! use futures::StreamExt;
//! use timecast::{kafka::Kafka, Timestamp};
//!
//! let kafka = Kafka::connect("127.0.0.1:9092")?;
//! kafka.create_topic("activity", 4)?;
//! let activity = kafka.topic::<String>("activity")?;
//! let at = activity.publish(Timestamp::from_unix_secs(1), &"swimming".to_string())?;
//! println!("written at {at}");
//! let mut reader = activity.subscribe("enricher")?;
//! futures::executor::block_on(async {
//!     while let Some(record) = reader.next().await {
//!         let record = record?;
//!         println!("{} {} {}", record.partition, record.offset, record.value);
//!         reader.commit(record.next())?; // at-least-once: commit after processing
//!     }
//!     Ok::<_, timecast::kafka::KafkaError>(())
//! })?;
//! # Ok::<_, timecast::kafka::KafkaError>(())
//! ```

mod client;
mod error;
mod reader;
mod sink;
mod topic;

pub use client::{Kafka, KafkaBuilder};
pub use error::KafkaError;
pub use reader::{KafkaLive, KafkaPast, KafkaReader, KafkaSeek};
pub use sink::KafkaSink;
pub use topic::KafkaTopic;
