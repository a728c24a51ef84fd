//! [`KafkaSink`]: records queued in the producer, every delivery failure
//! reported.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::task::{Poll, Waker};

use super::client::Pending;
use super::error::KafkaError;
use super::topic::KafkaTopic;
use crate::sink::Sink;
use crate::store::codec::{Binary, Codec};
use crate::sync::{Arc, Mutex};
use crate::time::Timestamp;

/// What a sink's delivery reports leave for it.
#[derive(Default)]
pub(crate) struct SinkState {
    inner: Mutex<SinkInner>,
}

#[derive(Default)]
struct SinkInner {
    in_flight: u64,
    delivered: u64,
    failures: VecDeque<KafkaError>,
    failed: u64,
    waker: Option<Waker>,
}

impl SinkState {
    /// A delivery report for one of the sink's records.
    pub(crate) fn delivered(&self, outcome: Result<(), KafkaError>) {
        let waker = {
            let mut inner = self.inner.lock();
            inner.in_flight = inner.in_flight.saturating_sub(1);
            match outcome {
                Ok(()) => inner.delivered += 1,
                Err(e) => {
                    inner.failed += 1;
                    inner.failures.push_back(e);
                }
            }
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A [`Sink`] of `(Timestamp, T)` (or `(Timestamp, key, T)`) into a Kafka
/// topic: `send` encodes the value and queues the record in the producer
/// (waiting only while the producer's queue is full), so that records go
/// out in batches.
///
/// Delivery is confirmed later, by the broker. Every failure is reported,
/// never dropped: the next [`send`](Sink::send) returns it (instead of
/// sending its own item), or [`flush`](Self::flush), which waits for every
/// record in flight. Flush before dropping the sink: records still in
/// flight then are delivered, but a failure among them has no one to go to.
///
/// # Examples
///
/// ```no_run
/// use futures::stream;
/// use timecast::{kafka::Kafka, sink::handle, Timestamp};
///
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let mut sink = kafka.topic::<u64>("squares")?.sink();
/// let numbers = stream::iter(1..=3u64);
/// futures::executor::block_on(async {
///     handle(numbers, |n: u64| Some((Timestamp::from_unix_secs(n as i64), n * n)))
///         .sink_to(&mut sink)
///         .run()
///         .await?;
///     sink.flush().await // every record acknowledged, or the first failure
/// })?;
/// assert_eq!(sink.delivered(), 3);
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
pub struct KafkaSink<T, C = Binary> {
    topic: KafkaTopic<T, C>,
    state: Arc<SinkState>,
}

impl<T, C> fmt::Debug for KafkaSink<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.state.inner.lock();
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic.inner.name)
            .field("in_flight", &inner.in_flight)
            .field("delivered", &inner.delivered)
            .field("failed", &inner.failed)
            .finish()
    }
}

impl<T, C: Codec<T>> KafkaSink<T, C> {
    pub(crate) fn new(topic: KafkaTopic<T, C>) -> Self {
        KafkaSink {
            topic,
            state: Arc::new(SinkState::default()),
        }
    }

    /// How many records the broker has acknowledged.
    ///
    /// # Examples
    ///
    /// See [`KafkaSink`].
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.sink().delivered(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn delivered(&self) -> u64 {
        self.state.inner.lock().delivered
    }

    /// How many records failed to be delivered (each is also returned
    /// once, by a `send` or `flush`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.sink().failed(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn failed(&self) -> u64 {
        self.state.inner.lock().failed
    }

    /// How many records wait for the broker's acknowledgement.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.sink().in_flight(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn in_flight(&self) -> u64 {
        self.state.inner.lock().in_flight
    }

    /// Waits until every record sent is acknowledged or has failed;
    /// returns the first failure not yet reported.
    ///
    /// # Errors
    ///
    /// [`KafkaError::Delivery`]: the first failure not yet reported (call
    /// again for the next).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the wait and loses nothing: the records
    /// stay in flight and their failures stay to report.
    ///
    /// # Examples
    ///
    /// See [`KafkaSink`].
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, sink::Sink, Timestamp};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let mut sink = kafka.topic::<u8>("t")?.sink();
    /// futures::executor::block_on(async {
    ///     sink.send((Timestamp::now(), 1)).await?;
    ///     sink.flush().await
    /// })?;
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn flush(&mut self) -> impl Future<Output = Result<(), KafkaError>> + '_ {
        poll_fn(move |cx| {
            let mut inner = self.state.inner.lock();
            if let Some(e) = inner.failures.pop_front() {
                return Poll::Ready(Err(e));
            }
            if inner.in_flight == 0 {
                return Poll::Ready(Ok(()));
            }
            inner.waker = Some(cx.waker().clone());
            Poll::Pending
        })
    }

    fn queue(
        &mut self,
        ts: Timestamp,
        key: Option<Vec<u8>>,
        value: &T,
    ) -> impl Future<Output = Result<(), KafkaError>> + '_ {
        let mut payload = Some(self.topic.encode(value));
        let mut first = true;
        poll_fn(move |cx| {
            // A failure to report is taken by the send that runs, not by
            // one made and dropped before its first poll.
            if std::mem::take(&mut first) {
                if let Some(e) = self.state.inner.lock().failures.pop_front() {
                    payload = None;
                    return Poll::Ready(Err(e));
                }
            }
            let bytes = match payload.take() {
                None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(e)),
                Some(Ok(bytes)) => bytes,
            };
            let ours = {
                let mut inner = self.state.inner.lock();
                inner.in_flight += 1;
                inner.waker = Some(cx.waker().clone());
                inner.in_flight - 1
            };
            let pending = Pending::Sink(self.state.clone(), ts);
            match self
                .topic
                .try_send(None, ts, key.as_deref(), &bytes, pending)
            {
                Ok(()) => Poll::Ready(Ok(())),
                Err(Err(e)) => {
                    let mut inner = self.state.inner.lock();
                    inner.in_flight -= 1;
                    // Refused by the producer: a failed delivery.
                    if matches!(e, KafkaError::Delivery { .. }) {
                        inner.failed += 1;
                    }
                    Poll::Ready(Err(e))
                }
                Err(Ok(_)) => {
                    self.state.inner.lock().in_flight -= 1;
                    // The producer's queue is full: a delivery of ours wakes
                    // this task; with none of ours in flight, try again.
                    if ours == 0 {
                        cx.waker().wake_by_ref();
                    }
                    payload = Some(Ok(bytes));
                    Poll::Pending
                }
            }
        })
    }
}

/// Sends `(ts, value)`: see [`KafkaSink`].
impl<T, C: Codec<T>> Sink<(Timestamp, T)> for KafkaSink<T, C> {
    type Error = KafkaError;

    fn send(
        &mut self,
        (ts, value): (Timestamp, T),
    ) -> impl Future<Output = Result<(), KafkaError>> {
        self.queue(ts, None, &value)
    }
}

/// Sends `(ts, key, value)`: the key picks the partition.
impl<T, C: Codec<T>> Sink<(Timestamp, Vec<u8>, T)> for KafkaSink<T, C> {
    type Error = KafkaError;

    fn send(
        &mut self,
        (ts, key, value): (Timestamp, Vec<u8>, T),
    ) -> impl Future<Output = Result<(), KafkaError>> {
        self.queue(ts, Some(key), &value)
    }
}
