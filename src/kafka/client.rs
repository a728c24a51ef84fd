//! [`Kafka`]: a connection to a cluster, its shared producer, and the
//! offsets this process has had acknowledged.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message};

use super::error::{client, KafkaError};
use super::reader;
use super::sink::SinkState;
use super::topic::KafkaTopic;
use crate::store::codec::{Binary, Codec};
use crate::sync::{block_on, Arc, AtomicU64, Condvar, Mutex, Ordering, StdMutex};
use crate::time::Timestamp;
use crate::topic::Position;

/// The default wait for a broker's answer.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to connect: the bootstrap servers, client settings, and the wait
/// for a broker's answer. [`Kafka::builder`] makes one.
///
/// The connector sets, unless told otherwise: `fetch.wait.max.ms=50` (live
/// records arrive promptly), `enable.auto.commit=false` (groups commit
/// what the application processed), `auto.offset.reset=earliest` (a group
/// that never committed starts at the start), `session.timeout.ms=6000`
/// (a killed member's partitions move within seconds),
/// `reconnect.backoff.max.ms=1000`, `message.timeout.ms=30000` and
/// `partitioner=murmur2_random` (Java's: a key, even an empty one, always
/// maps to one partition, the same as Java producers pick; records without
/// a key are spread).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use timecast::kafka::Kafka;
///
/// let kafka = Kafka::builder("127.0.0.1:9092")
///     .timeout(Duration::from_secs(5))
///     .set("linger.ms", "1")
///     .connect()?;
/// println!("{kafka:?}");
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KafkaBuilder {
    brokers: String,
    timeout: Duration,
    settings: Vec<(String, String)>,
}

impl KafkaBuilder {
    /// Waits at most `timeout` for a broker's answer: at connect, for
    /// metadata and offsets, commits, and a group's first assignment
    /// (10 s by default). It is kept between 1 ms and
    /// [`MAX_TIMEOUT`](Self::MAX_TIMEOUT), librdkafka's longest (its
    /// timeouts are milliseconds in an `i32`): `Duration::MAX` waits about
    /// 24.8 days, and an hour to create a topic (librdkafka's longest
    /// there).
    ///
    /// # Examples
    ///
    /// See [`KafkaBuilder`].
    ///
    /// ```
    /// let _b = timecast::kafka::Kafka::builder("127.0.0.1:9092").timeout(std::time::Duration::from_secs(1));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.clamp(Duration::from_millis(1), Self::MAX_TIMEOUT);
        self
    }

    /// The longest [`timeout`](Self::timeout): `i32::MAX` milliseconds.
    pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

    /// Sets a librdkafka setting of every client the connection makes
    /// (producer and consumers), over the connector's defaults.
    ///
    /// # Examples
    ///
    /// See [`KafkaBuilder`].
    ///
    /// ```
    /// let _b = timecast::kafka::Kafka::builder("127.0.0.1:9092").set("client.id", "enricher");
    /// ```
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Connects: makes the producer and waits until a broker answers.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Unreachable`] if no broker answered within the
    /// timeout; [`KafkaError::Client`] if a setting is refused.
    ///
    /// # Examples
    ///
    /// See [`KafkaBuilder`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::builder("127.0.0.1:9092").connect()?;
    /// println!("{kafka:?}");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn connect(self) -> Result<Kafka, KafkaError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        config.set("reconnect.backoff.max.ms", "1000");
        config.set("topic.metadata.refresh.interval.ms", "10000");
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        if config.get("debug").is_some() {
            config.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
        }
        let acked = Arc::new(Acked::default());
        let mut producer_config = config.clone();
        // `delivery.timeout.ms` is the other name of the setting.
        if producer_config.get("delivery.timeout.ms").is_none() {
            set_default(&mut producer_config, "message.timeout.ms", "30000");
        }
        set_default(&mut producer_config, "linger.ms", "5");
        set_default(&mut producer_config, "partitioner", "murmur2_random");
        let delivery_timeout = ["message.timeout.ms", "delivery.timeout.ms"]
            .iter()
            .find_map(|key| producer_config.get(key))
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let producer: ThreadedProducer<Deliveries> = producer_config
            .create_with_context(Deliveries {
                acked: acked.clone(),
            })
            .map_err(|e| client("creating the producer", None, e))?;
        producer
            .client()
            .fetch_metadata(None, self.timeout)
            .map_err(|e| KafkaError::Unreachable {
                brokers: self.brokers.clone(),
                waited: self.timeout,
                source: Box::new(e),
            })?;
        let mut consumer = config;
        set_default(&mut consumer, "fetch.wait.max.ms", "50");
        set_default(&mut consumer, "enable.auto.commit", "false");
        set_default(&mut consumer, "auto.offset.reset", "earliest");
        set_default(&mut consumer, "session.timeout.ms", "6000");
        set_default(&mut consumer, "heartbeat.interval.ms", "500");
        Ok(Kafka {
            inner: Arc::new(Inner {
                brokers: self.brokers,
                timeout: self.timeout,
                consumer,
                producer,
                delivery_timeout,
                acked,
                readers: AtomicU64::new(0),
            }),
        })
    }
}

fn set_default(config: &mut ClientConfig, key: &str, value: &str) {
    if config.get(key).is_none() {
        config.set(key, value);
    }
}

/// A connection to a Kafka cluster: opens topics, creates them, and holds
/// the producer that every topic of the connection shares. Cheap to
/// clone; `Send + Sync`.
///
/// # Examples
///
/// ```no_run
/// use timecast::{kafka::Kafka, Timestamp};
///
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// kafka.create_topic("metrics", 1)?;
/// let metrics = kafka.topic::<f64>("metrics")?;
/// let at = metrics.publish(Timestamp::now(), &0.5)?;
/// println!("written at {at}");
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
#[derive(Clone)]
pub struct Kafka {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) brokers: String,
    pub(crate) timeout: Duration,
    /// The settings of consumers (the common ones, and the consumers' defaults).
    pub(crate) consumer: ClientConfig,
    pub(crate) producer: ThreadedProducer<Deliveries>,
    /// The producer's `message.timeout.ms`: a record's delivery report
    /// comes within it (0: no limit; `None` if unreadable).
    pub(crate) delivery_timeout: Option<Duration>,
    pub(crate) acked: Arc<Acked>,
    /// Numbers the private groups of readers made without a group.
    pub(crate) readers: AtomicU64,
}

impl fmt::Debug for Kafka {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kafka")
            .field("brokers", &self.inner.brokers)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    /// A builder for a connection to `brokers` (`host:port`, several
    /// separated by commas).
    ///
    /// # Examples
    ///
    /// See [`KafkaBuilder`].
    ///
    /// ```
    /// let builder = timecast::kafka::Kafka::builder("127.0.0.1:9092");
    /// println!("{builder:?}");
    /// ```
    pub fn builder(brokers: &str) -> KafkaBuilder {
        KafkaBuilder {
            brokers: brokers.to_string(),
            timeout: DEFAULT_TIMEOUT,
            settings: Vec::new(),
        }
    }

    /// Connects to `brokers` with the default settings: see
    /// [`KafkaBuilder::connect`].
    ///
    /// # Errors
    ///
    /// [`KafkaError::Unreachable`] if no broker answered within 10 s.
    ///
    /// # Examples
    ///
    /// See [`Kafka`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// println!("connected to {}", kafka.brokers());
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn connect(brokers: &str) -> Result<Kafka, KafkaError> {
        Self::builder(brokers).connect()
    }

    /// The bootstrap servers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.brokers(), "127.0.0.1:9092");
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn brokers(&self) -> &str {
        &self.inner.brokers
    }

    /// Creates the topic `name` with `partitions` partitions (replication
    /// factor 1). Returns `false` if it already existed (it is left as it
    /// is).
    ///
    /// # Blocking
    ///
    /// Blocks until the broker answered, at most the timeout.
    ///
    /// # Errors
    ///
    /// [`KafkaError::PartitionCount`] for 0 partitions or more than
    /// `i32::MAX`; [`KafkaError::Client`] if the broker refused or did not
    /// answer.
    ///
    /// # Examples
    ///
    /// See [`Kafka`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// kafka.create_topic("orders", 4)?;
    /// assert!(!kafka.create_topic("orders", 4)?); // already there
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<bool, KafkaError> {
        let count = i32::try_from(partitions)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| KafkaError::PartitionCount {
                topic: name.to_string(),
                partitions,
            })?;
        let admin: AdminClient<DefaultClientContext> = self
            .inner
            .consumer
            .create()
            .map_err(|e| client("creating an admin client", Some(name), e))?;
        let new = NewTopic::new(name, count, TopicReplication::Fixed(1));
        // librdkafka takes an operation's timeout up to an hour.
        let timeout = self.inner.timeout.min(Duration::from_secs(3600));
        let options = AdminOptions::new().operation_timeout(Some(timeout));
        let results = block_on(admin.create_topics([&new], &options))
            .map_err(|e| client("creating the topic", Some(name), e))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(false),
                Err((_, code)) => {
                    return Err(client(
                        "creating the topic",
                        Some(name),
                        rdkafka::error::KafkaError::AdminOp(code),
                    ))
                }
            }
        }
        Ok(true)
    }

    /// Opens the topic `name`, with values `T` in the [`Binary`] codec
    /// (as the embedded log's default).
    ///
    /// # Errors
    ///
    /// [`KafkaError::NoSuchTopic`] if the brokers do not have it;
    /// [`KafkaError::Client`] if the metadata cannot be read.
    ///
    /// # Examples
    ///
    /// See [`Kafka`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let topic = kafka.topic::<String>("activity")?;
    /// println!("{} partitions", topic.partitions());
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn topic<T>(&self, name: &str) -> Result<KafkaTopic<T>, KafkaError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.topic_with(name, Binary)
    }

    /// Opens the topic `name` with values in `codec` (`Json`, or a codec
    /// of your own, as for the store's tables and logs).
    ///
    /// # Errors
    ///
    /// As [`topic`](Self::topic).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, store::Json};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let topic = kafka.topic_with::<String, _>("activity", Json)?;
    /// println!("{} partitions", topic.partitions());
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn topic_with<T, C>(&self, name: &str, codec: C) -> Result<KafkaTopic<T, C>, KafkaError>
    where
        C: Codec<T>,
    {
        let partitions = self.partitions(name)?;
        Ok(KafkaTopic::new(self.clone(), name, partitions, codec))
    }

    /// How many partitions the topic has.
    fn partitions(&self, name: &str) -> Result<u32, KafkaError> {
        let metadata = self
            .inner
            .producer
            .client()
            .fetch_metadata(Some(name), self.inner.timeout)
            .map_err(|e| client("reading the topic's metadata", Some(name), e))?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| KafkaError::NoSuchTopic {
                topic: name.to_string(),
            })?;
        match topic.error() {
            None if !topic.partitions().is_empty() => Ok(topic.partitions().len() as u32),
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) | None => {
                Err(KafkaError::NoSuchTopic {
                    topic: name.to_string(),
                })
            }
            Some(code) => Err(client(
                "reading the topic's metadata",
                Some(name),
                rdkafka::error::KafkaError::MetadataFetch(code.into()),
            )),
        }
    }

    /// A consumer with the connection's settings, in `group` (a private
    /// group if `None`: a reader without a group never commits).
    pub(crate) fn consumer<X: ConsumerContext>(
        &self,
        group: Option<&str>,
        context: X,
        topic: &str,
    ) -> Result<BaseConsumer<X>, KafkaError> {
        let mut config = self.inner.consumer.clone();
        match group {
            Some(group) => {
                config.set("group.id", group);
            }
            None => {
                let n = self.inner.readers.fetch_add(1, Ordering::Relaxed);
                config.set(
                    "group.id",
                    format!("timecast.reader.{}.{n}", std::process::id()),
                );
            }
        }
        config
            .create_with_context(context)
            .map_err(|e| client("creating a consumer", Some(topic), e))
    }
}

/// The end of each partition as acknowledged to this process's producer:
/// the offset after the last record acknowledged, by (topic, partition);
/// and the readers to wake when it moves.
#[derive(Default)]
pub(crate) struct Acked {
    ends: Mutex<HashMap<(String, u32), u64>>,
    readers: Mutex<Vec<std::sync::Weak<reader::Shared>>>,
}

impl Acked {
    /// Records an acknowledged record, then wakes the topic's readers, so
    /// that each is polled (and holds its task for the record) before the
    /// publisher learns of the acknowledgement.
    fn record(&self, topic: &str, partition: u32, offset: u64) {
        {
            let mut ends = self.ends.lock();
            match ends.get_mut(&(topic.to_string(), partition)) {
                Some(end) => *end = (*end).max(offset + 1),
                None => {
                    ends.insert((topic.to_string(), partition), offset + 1);
                }
            }
        }
        let readers: Vec<_> = {
            let mut readers = self.readers.lock();
            readers.retain(|r| r.strong_count() > 0);
            readers
                .iter()
                .filter_map(std::sync::Weak::upgrade)
                .filter(|r| r.topic == topic)
                .collect()
        };
        for reader in readers {
            reader.touch();
        }
    }

    /// Registers a reader to wake at each acknowledgement of its topic.
    pub(crate) fn watch(&self, reader: std::sync::Weak<reader::Shared>) {
        let mut readers = self.readers.lock();
        readers.retain(|r| r.strong_count() > 0);
        readers.push(reader);
    }

    pub(crate) fn end(&self, topic: &str, partition: u32) -> Option<u64> {
        self.ends
            .lock()
            .get(&(topic.to_string(), partition))
            .copied()
    }
}

/// Who waits for a record's delivery report.
pub(crate) enum Pending {
    /// A blocking `publish`.
    Publish(Arc<Slot<Result<Position, KafkaError>>>, Timestamp),
    /// A sink, counting its records in flight.
    Sink(Arc<SinkState>, Timestamp),
}

/// The producer's context: routes each delivery report to who waits.
pub(crate) struct Deliveries {
    acked: Arc<Acked>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let outcome = match result {
            Ok(message) => {
                let partition = message.partition().max(0) as u32;
                let offset = message.offset().max(0) as u64;
                self.acked.record(message.topic(), partition, offset);
                Ok(Position::new(partition, offset))
            }
            Err((error, message)) => Err((message.topic().to_string(), error.clone())),
        };
        match *pending {
            Pending::Publish(slot, ts) => {
                slot.set(outcome.map_err(|(topic, e)| KafkaError::Delivery {
                    topic,
                    ts,
                    source: Box::new(e),
                }))
            }
            Pending::Sink(state, ts) => {
                state.delivered(
                    outcome
                        .map(drop)
                        .map_err(|(topic, e)| KafkaError::Delivery {
                            topic,
                            ts,
                            source: Box::new(e),
                        }),
                )
            }
        }
    }
}

/// A value one thread sets and another waits for.
pub(crate) struct Slot<T> {
    value: StdMutex<Option<T>>,
    ready: Condvar,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Slot {
            value: StdMutex::new(None),
            ready: Condvar::new(),
        }
    }

    pub(crate) fn set(&self, value: T) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        self.ready.notify_all();
    }

    /// The value, once set; `None` after `timeout` (`Duration::MAX`: no
    /// limit).
    pub(crate) fn wait(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now().checked_add(timeout);
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(value) = value.take() {
                return Some(value);
            }
            value = match deadline {
                None => self.ready.wait(value).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.ready
                        .wait_timeout(value, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}
