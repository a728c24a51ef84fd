//! [`KafkaReader`]: one consumer, polled by a thread of its own, feeding
//! per-partition queues that the reader's task takes records from.
//!
//! # Invariants
//!
//! - A partition's `next` is the offset of the next record the reader
//!   yields from it (once known): records below it are never yielded again
//!   unless the reader seeks back, or a group rebalance or a reconnection
//!   moves it back to the committed offset.
//! - While a partition is `seeking`, records fetched for it are dropped:
//!   they predate the seek.
//! - The thread never runs user code; the reader never calls the consumer.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::topic_partition_list::{Offset as KOffset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

use super::client::Slot;
use super::error::{client, KafkaError};
use super::topic::{KafkaTopic, NANOS_HEADER};
use crate::source::Source;
use crate::store::codec::{Binary, Codec};
use crate::store::DecodeErrors;
use crate::sync::{Arc, AtomicBool, AtomicU64, Condvar, Ordering, StdMutex};
use crate::time::Timestamp;
use crate::topic::{Offset, Position, Record};

/// Records buffered per partition before its fetching is paused.
const HIGH: usize = 8192;
/// ... and resumed.
const LOW: usize = 2048;
/// How long the consumer's thread waits in one poll.
const POLL: Duration = Duration::from_millis(50);
/// How long a reader holds its task busy for records it knows exist,
/// without any arriving, before it waits like any other.
const HOLD: Duration = Duration::from_secs(5);

/// Where a reader starts.
pub(crate) enum Start {
    /// These partitions, each from its offset.
    Partitions(BTreeMap<u32, Offset>),
    /// The partitions a consumer group assigns.
    Group(String),
}

/// A record as fetched, not decoded yet.
struct Raw {
    partition: u32,
    offset: u64,
    ts: Timestamp,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Part {
    queue: VecDeque<Raw>,
    /// The offset of the next record to yield, once known.
    next: Option<u64>,
    /// The partition's end as last looked up (its high watermark).
    known_end: u64,
    /// The offset after the last record fetched (0 before any).
    received_end: u64,
    /// Records with an event time before this are skipped (`Offset::Time`).
    skip_before: Option<Timestamp>,
    /// Records at offsets below this are skipped: the reader was placed
    /// past the partition's end, and fetches from the end instead (a fetch
    /// past it is out of range, which `auto.offset.reset` would answer by
    /// going back to the start).
    skip_below: Option<u64>,
    seeking: bool,
    paused: bool,
}

enum Command {
    Seek(u32, u64),
    Commit(Vec<Position>, Arc<Slot<Result<(), KafkaError>>>),
}

#[derive(Default)]
struct State {
    parts: BTreeMap<u32, Part>,
    /// Errors to yield, in order.
    reports: VecDeque<KafkaError>,
    commands: VecDeque<Command>,
    /// Partitions assigned by the group whose offsets are to look up.
    fresh: Vec<u32>,
    waker: Option<Waker>,
    /// Bumped at every change the reader may wait for.
    version: u64,
    /// The group's first assignment is known (always, without a group).
    assigned: bool,
    /// Stopped at a record that did not decode (until a seek).
    stopped: bool,
    /// The reader is gone: the thread ends.
    stop: bool,
    /// The thread has ended.
    ended: bool,
}

/// What a reader, its thread and its handles share.
pub(crate) struct Shared {
    pub(crate) topic: String,
    pub(crate) group: Option<String>,
    timeout: Duration,
    state: StdMutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `f` to the state, then wakes whoever waits for a change.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (out, waker) = {
            let mut state = self.lock();
            let out = f(&mut state);
            state.version += 1;
            (out, state.waker.take())
        };
        self.changed.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        out
    }

    /// Waits until the state changes from `version`, at most `timeout`.
    fn wait_change(&self, version: u64, timeout: Duration) {
        let state = self.lock();
        if state.version == version {
            drop(
                self.changed
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(|e| e.into_inner()),
            );
        }
    }

    /// Wakes whoever waits for a change.
    pub(crate) fn touch(&self) {
        self.update(|_| ());
    }

    pub(crate) fn owns(&self, partition: u32) -> bool {
        let state = self.lock();
        !state.stop && !state.ended && state.parts.contains_key(&partition)
    }

    /// An offset of `partition` known to exist, or to be its end, from
    /// what the reader has looked up and fetched (0 if it does not read
    /// the partition).
    pub(crate) fn known_end(&self, partition: u32) -> u64 {
        self.lock()
            .parts
            .get(&partition)
            .map_or(0, |part| part.known_end.max(part.received_end))
    }

    pub(crate) fn commit(&self, positions: Vec<Position>) -> Result<(), KafkaError> {
        if self.group.is_none() {
            return Err(KafkaError::NoGroup {
                topic: self.topic.clone(),
            });
        }
        let slot = Arc::new(Slot::new());
        self.update(|s| {
            s.commands
                .push_back(Command::Commit(positions, slot.clone()))
        });
        slot.wait(self.timeout * 2).unwrap_or_else(|| {
            Err(KafkaError::Client {
                op: "committing".into(),
                topic: Some(self.topic.clone()),
                source: format!("no answer within {:?}", self.timeout * 2).into(),
            })
        })
    }

    fn seek(&self, to: Position) {
        self.update(|s| match s.parts.get_mut(&to.partition) {
            Some(part) => {
                part.queue.clear();
                part.seeking = true;
                part.next = Some(to.offset);
                part.skip_before = None;
                part.skip_below = None;
                s.stopped = false;
                s.commands.push_back(Command::Seek(to.partition, to.offset));
            }
            None => s.reports.push_back(KafkaError::Client {
                op: format!("seeking partition {} to offset {}", to.partition, to.offset),
                topic: Some(self.topic.clone()),
                source: "the partition is not assigned to this reader".into(),
            }),
        });
    }
}

/// The consumer's context: records the group's assignments.
struct Member {
    shared: Arc<Shared>,
}

impl ClientContext for Member {
    /// librdkafka's log lines go to standard error when
    /// `TIMECAST_KAFKA_LOG` is set (with a `debug` setting, to see why a
    /// group behaves as it does); otherwise to the `log` crate.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if std::env::var_os("TIMECAST_KAFKA_LOG").is_some() {
            eprintln!("librdkafka {level:?} {fac}: {message}");
        } else {
            rdkafka::client::DefaultClientContext.log(level, fac, message);
        }
    }
}

impl ConsumerContext for Member {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => self.shared.update(|s| {
                for e in list.elements() {
                    let p = e.partition() as u32;
                    s.parts.entry(p).or_default();
                    s.fresh.push(p);
                }
                if list.count() == 0 {
                    s.assigned = true;
                }
            }),
            Rebalance::Revoke(list) => self.shared.update(|s| {
                for e in list.elements() {
                    s.parts.remove(&(e.partition() as u32));
                }
            }),
            Rebalance::Error(e) => {
                let e = client("rebalancing the group", Some(&self.shared.topic), e.clone());
                self.shared.update(|s| s.reports.push_back(e));
            }
        }
    }
}

/// The reader's side: its topic, policy and counters.
struct Core<T, C> {
    topic: KafkaTopic<T, C>,
    shared: Arc<Shared>,
    policy: DecodeErrors,
    skipped: AtomicU64,
    /// When the current hold began (Unix nanos of `Instant` offsets are
    /// not available: the start of holding, as nanos since `epoch`).
    hold_since: AtomicU64,
    holding: AtomicBool,
    epoch: Instant,
}

impl<T, C> Drop for Core<T, C> {
    fn drop(&mut self) {
        self.shared.update(|s| s.stop = true);
    }
}

/// Opens a reader: makes its consumer, finds where it starts, and starts
/// its thread.
pub(crate) fn open<T, C: Codec<T>>(
    topic: KafkaTopic<T, C>,
    start: Start,
) -> Result<KafkaReader<T, C>, KafkaError> {
    let name = topic.inner.name.clone();
    let timeout = topic.inner.kafka.inner.timeout;
    let group = match &start {
        Start::Group(g) => Some(g.clone()),
        Start::Partitions(_) => None,
    };
    let shared = Arc::new(Shared {
        topic: name.clone(),
        group: group.clone(),
        timeout,
        state: StdMutex::new(State::default()),
        changed: Condvar::new(),
    });
    let member = Member {
        shared: shared.clone(),
    };
    let consumer = topic
        .inner
        .kafka
        .consumer(group.as_deref(), member, &name)?;
    match start {
        Start::Group(_) => {
            consumer
                .subscribe(&[&name])
                .map_err(|e| client("subscribing", Some(&name), e))?;
        }
        Start::Partitions(partitions) => {
            let mut list = TopicPartitionList::new();
            let mut parts = BTreeMap::new();
            for (p, from) in partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&name, p as i32, timeout)
                    .map_err(|e| client("reading watermarks", Some(&name), e))?;
                let (low, high) = (low.max(0) as u64, high.max(0) as u64);
                let mut part = Part {
                    known_end: high,
                    ..Part::default()
                };
                let next = match from {
                    Offset::Start => low,
                    Offset::End => high,
                    Offset::At(n) => n,
                    Offset::Time(ts) => {
                        part.skip_before = Some(ts);
                        let mut query = TopicPartitionList::new();
                        let millis = ts.unix_nanos().div_euclid(1_000_000).max(0);
                        query
                            .add_partition_offset(&name, p as i32, KOffset::Offset(millis))
                            .map_err(|e| client("finding offsets for times", Some(&name), e))?;
                        let found = consumer
                            .offsets_for_times(query, timeout)
                            .map_err(|e| client("finding offsets for times", Some(&name), e))?;
                        match found.elements().first().map(|e| e.offset()) {
                            Some(KOffset::Offset(o)) if o >= 0 => o as u64,
                            _ => high,
                        }
                    }
                };
                part.next = Some(next);
                let (fetch, skip_below) = fetch_from(next, high);
                part.skip_below = skip_below;
                list.add_partition_offset(&name, p as i32, KOffset::Offset(fetch as i64))
                    .map_err(|e| client("assigning partitions", Some(&name), e))?;
                parts.insert(p, part);
            }
            consumer
                .assign(&list)
                .map_err(|e| client("assigning partitions", Some(&name), e))?;
            shared.update(|s| {
                s.parts = parts;
                s.assigned = true;
            });
        }
    }
    topic.inner.kafka.inner.acked.watch(Arc::downgrade(&shared));
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("timecast-kafka-{name}"))
        .spawn(move || run(consumer, &thread_shared))
        .map_err(|e| KafkaError::Client {
            op: "starting the reader's thread".into(),
            topic: Some(name.clone()),
            source: Box::new(e),
        })?;
    if group.is_some() {
        // Wait for the group's first assignment, and where it starts.
        let deadline = Instant::now() + timeout;
        loop {
            let version = {
                let state = shared.lock();
                if state.assigned {
                    break;
                }
                state.version
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                shared.update(|s| s.stop = true);
                return Err(KafkaError::Client {
                    op: format!("joining group {:?}", group.as_deref().unwrap_or_default()),
                    topic: Some(name),
                    source: format!("no partitions assigned within {timeout:?}").into(),
                });
            }
            shared.wait_change(version, left);
        }
        let member = Arc::downgrade(&shared);
        let mut members = topic.inner.members.lock();
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }
    Ok(KafkaReader {
        core: Arc::new(Core {
            topic,
            shared,
            policy: DecodeErrors::Stop,
            skipped: AtomicU64::new(0),
            hold_since: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            epoch: Instant::now(),
        }),
    })
}

/// Whether a client error means the brokers cannot be reached.
fn is_transport(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::NetworkException
        )
    )
}

fn raw(m: &BorrowedMessage<'_>) -> Raw {
    let nanos = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == NANOS_HEADER)
            .and_then(|h| h.value)
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map(i64::from_be_bytes)
    });
    let ts = match nanos {
        Some(nanos) => Timestamp::from_unix_nanos(nanos),
        None => Timestamp::from_unix_millis(m.timestamp().to_millis().unwrap_or(0)),
    };
    Raw {
        partition: m.partition().max(0) as u32,
        offset: m.offset().max(0) as u64,
        ts,
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// The consumer's thread: applies the reader's commands, polls, queues
/// records by partition, reports faults, and reconnects.
fn run(consumer: BaseConsumer<Member>, shared: &Shared) {
    let topic = shared.topic.as_str();
    let timeout = shared.timeout;
    let mut seeks: Vec<PendingSeek> = Vec::new();
    // Set while the brokers are away: when the next probe is due.
    let mut disconnected: Option<Instant> = None;
    loop {
        let (commands, fresh, pause, resume) = {
            let mut state = shared.lock();
            if state.stop {
                break;
            }
            let commands: Vec<Command> = state.commands.drain(..).collect();
            let fresh = std::mem::take(&mut state.fresh);
            let mut pause = TopicPartitionList::new();
            let mut resume = TopicPartitionList::new();
            for (p, part) in &mut state.parts {
                if !part.paused && part.queue.len() >= HIGH {
                    part.paused = true;
                    pause.add_partition(topic, *p as i32);
                } else if part.paused && part.queue.len() <= LOW {
                    part.paused = false;
                    resume.add_partition(topic, *p as i32);
                }
            }
            (commands, fresh, pause, resume)
        };
        // Flow control; a failure only delays it to the next round.
        if pause.count() > 0 {
            let _ = consumer.pause(&pause);
        }
        if resume.count() > 0 {
            let _ = consumer.resume(&resume);
        }
        for command in commands {
            match command {
                Command::Seek(p, offset) => {
                    let end = consumer
                        .fetch_watermarks(topic, p as i32, timeout)
                        .ok()
                        .map(|(_, high)| high.max(0) as u64);
                    // Unknown end: fetch from `offset`, still skipping below
                    // it should the fetch be out of range and reset to the
                    // start.
                    let (fetch, skip_below) = match end {
                        Some(high) => fetch_from(offset, high),
                        None => (offset, Some(offset)),
                    };
                    seeks.push(PendingSeek {
                        partition: p,
                        offset,
                        fetch,
                        skip_below,
                        end,
                        deadline: Instant::now() + timeout,
                    });
                }
                Command::Commit(positions, slot) => {
                    let mut list = TopicPartitionList::new();
                    let mut outcome = Ok(());
                    for at in &positions {
                        if let Err(e) = list.add_partition_offset(
                            topic,
                            at.partition as i32,
                            KOffset::Offset(at.offset as i64),
                        ) {
                            outcome = Err(e);
                        }
                    }
                    let outcome = outcome
                        .and_then(|()| consumer.commit(&list, CommitMode::Sync))
                        .map_err(|e| client("committing", Some(topic), e));
                    slot.set(outcome);
                }
            }
        }
        seeks.retain(|seek| {
            let PendingSeek {
                partition: p,
                offset,
                fetch,
                skip_below,
                end,
                deadline,
            } = *seek;
            match consumer.seek(topic, p as i32, KOffset::Offset(fetch as i64), timeout) {
                Ok(()) => {
                    shared.update(|s| {
                        if let Some(part) = s.parts.get_mut(&p) {
                            part.queue.clear();
                            part.seeking = false;
                            part.skip_below = skip_below;
                            if let Some(high) = end {
                                part.known_end = high;
                            }
                        }
                    });
                    false
                }
                // Not fetching yet: try again next round, until the deadline.
                Err(_) if Instant::now() < deadline => true,
                Err(e) => {
                    let e = client(
                        &format!("seeking partition {p} to {offset}"),
                        Some(topic),
                        e,
                    );
                    shared.update(|s| {
                        if let Some(part) = s.parts.get_mut(&p) {
                            part.seeking = false;
                        }
                        s.reports.push_back(e);
                    });
                    false
                }
            }
        });
        if !fresh.is_empty() {
            resolve(&consumer, shared, &fresh);
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let record = raw(&message);
                drop(message);
                shared.update(|s| {
                    if let Some(part) = s.parts.get_mut(&record.partition) {
                        if !part.seeking {
                            part.next.get_or_insert(record.offset);
                            part.received_end = part.received_end.max(record.offset + 1);
                            part.queue.push_back(record);
                        }
                    }
                });
            }
            Some(Err(e)) if is_transport(&e) && disconnected.is_none() => {
                disconnected = Some(Instant::now() + Duration::from_millis(500));
                let e = KafkaError::Disconnected {
                    topic: topic.to_string(),
                    source: Box::new(e),
                };
                shared.update(|s| s.reports.push_back(e));
            }
            // Still away: reported once.
            Some(Err(e)) if is_transport(&e) => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                let fatal = matches!(e, rdkafka::error::KafkaError::MessageConsumptionFatal(_));
                let e = client("consuming", Some(topic), e);
                shared.update(|s| s.reports.push_back(e));
                if fatal {
                    break;
                }
            }
            None => {}
        }
        if let Some(probe) = disconnected {
            if Instant::now() >= probe {
                match consumer
                    .client()
                    .fetch_metadata(Some(topic), Duration::from_millis(500))
                {
                    Ok(_) => {
                        disconnected = None;
                        reconnected(&consumer, shared);
                    }
                    Err(_) => disconnected = Some(Instant::now() + Duration::from_millis(500)),
                }
            }
        }
    }
    drop(consumer);
    shared.update(|s| s.ended = true);
}

/// Looks up where the group's fresh partitions start: the committed
/// offset, else the start (`auto.offset.reset=earliest`).
fn resolve(consumer: &BaseConsumer<Member>, shared: &Shared, fresh: &[u32]) {
    let topic = shared.topic.as_str();
    let mut list = TopicPartitionList::new();
    for p in fresh {
        list.add_partition(topic, *p as i32);
    }
    let committed = consumer.committed_offsets(list, shared.timeout);
    let mut found = Vec::new();
    let mut report = None;
    for p in fresh {
        let marks = consumer.fetch_watermarks(topic, *p as i32, shared.timeout);
        let offset = match &committed {
            Ok(list) => list
                .find_partition(topic, *p as i32)
                .and_then(|e| match e.offset() {
                    KOffset::Offset(o) if o >= 0 => Some(o as u64),
                    _ => None,
                }),
            Err(_) => None,
        };
        match marks {
            Ok((low, high)) => {
                let next = offset.unwrap_or(low.max(0) as u64);
                found.push((*p, Some(next), high.max(0) as u64));
            }
            Err(e) => {
                found.push((*p, offset, 0));
                report = Some(client("reading watermarks", Some(topic), e));
            }
        }
    }
    if let Err(e) = committed {
        report = Some(client("reading committed offsets", Some(topic), e));
    }
    shared.update(|s| {
        for (p, next, end) in found {
            if let Some(part) = s.parts.get_mut(&p) {
                if part.queue.is_empty() && !part.seeking {
                    part.next = next.or(part.next);
                }
                part.known_end = part.known_end.max(end);
            }
        }
        s.reports.extend(report);
        s.assigned = true;
    });
}

/// Back after a lost connection: a group reader resumes from the group's
/// committed offsets.
fn reconnected(consumer: &BaseConsumer<Member>, shared: &Shared) {
    if shared.group.is_none() {
        return;
    }
    let Ok(committed) = consumer.committed(shared.timeout) else {
        return;
    };
    for e in committed.elements() {
        if let KOffset::Offset(o) = e.offset() {
            if o >= 0 && shared.owns(e.partition() as u32) {
                shared.seek(Position::new(e.partition() as u32, o as u64));
            }
        }
    }
}

/// A seek the reader's thread retries until the partition is fetched.
#[derive(Clone, Copy)]
struct PendingSeek {
    partition: u32,
    /// Where the reader is to stand.
    offset: u64,
    /// Where to fetch from, and the offset to skip below (see
    /// [`fetch_from`]).
    fetch: u64,
    skip_below: Option<u64>,
    /// The partition's end, looked up once, if that worked.
    end: Option<u64>,
    /// Until when to retry.
    deadline: Instant,
}

/// Where to fetch a partition from for a reader placed at `at`, and the
/// offset below which it skips what it fetches: past the partition's end
/// (`high`), it fetches from the end, as a fetch past it is out of range.
fn fetch_from(at: u64, high: u64) -> (u64, Option<u64>) {
    if at > high {
        (high, Some(at))
    } else {
        (at, None)
    }
}

/// Takes the next record to yield: the earliest head among `partitions`
/// (all if `None`), skipping those before an `Offset::Time` start or
/// below an offset past the end the reader was placed at. `None` if there
/// is none, or if `partitions` are given and a skip emptied one.
fn take(state: &mut State, partitions: Option<&BTreeMap<u32, u64>>) -> Option<Raw> {
    loop {
        let (p, _) = state
            .parts
            .iter()
            .filter(|(p, _)| partitions.is_none_or(|ps| ps.contains_key(p)))
            .filter_map(|(p, part)| part.queue.front().map(|r| (*p, (r.ts, *p))))
            .min_by_key(|(_, key)| *key)?;
        let part = state.parts.get_mut(&p)?;
        let raw = part.queue.pop_front()?;
        // A record skipped may leave its partition with nothing buffered:
        // a merge in time order (`partitions` given) must then wait for
        // the partition's next record before it picks among the others.
        let wait = partitions.is_some() && part.queue.is_empty();
        if let Some(below) = part.skip_below {
            if raw.offset < below {
                // The reader stands at `below`.
                if wait {
                    return None;
                }
                continue;
            }
            part.skip_below = None;
        }
        part.next = Some(raw.offset + 1);
        if let Some(before) = part.skip_before {
            if raw.ts < before {
                if wait {
                    return None;
                }
                continue;
            }
            part.skip_before = None;
        }
        return Some(raw);
    }
}

impl<T, C: Codec<T>> Core<T, C> {
    /// Decodes `raw`; `None` if it is skipped by the policy.
    fn decode(&self, raw: Raw) -> Option<Result<Record<T>, KafkaError>> {
        match self.topic.inner.codec.decode(&raw.payload) {
            Ok(value) => {
                let mut record =
                    Record::new(raw.offset, raw.ts, value).with_partition(raw.partition);
                record.key = raw.key;
                Some(Ok(record))
            }
            Err(source) => match self.policy {
                DecodeErrors::Skip => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    None
                }
                DecodeErrors::Stop => {
                    // Stopped at the record, not past it: a commit of the
                    // positions then does not skip it.
                    self.shared.update(|s| {
                        s.stopped = true;
                        if let Some(part) = s.parts.get_mut(&raw.partition) {
                            part.next = Some(raw.offset);
                        }
                    });
                    Some(Err(KafkaError::Decode {
                        topic: self.shared.topic.clone(),
                        partition: raw.partition,
                        offset: raw.offset,
                        source,
                    }))
                }
            },
        }
    }

    /// Whether records known to exist have not arrived yet.
    fn behind(&self, state: &State) -> bool {
        let acked = &self.topic.inner.kafka.inner.acked;
        state.parts.iter().any(|(p, part)| {
            part.next.is_some_and(|next| {
                let end = part
                    .known_end
                    .max(acked.end(&self.shared.topic, *p).unwrap_or(0));
                next < end
            })
        })
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Record<T>, KafkaError>>> {
        loop {
            let mut state = self.shared.lock();
            if let Some(e) = state.reports.pop_front() {
                return Poll::Ready(Some(Err(e)));
            }
            if state.stopped {
                return Poll::Ready(None);
            }
            if let Some(raw) = take(&mut state, None) {
                drop(state);
                self.holding.store(false, Ordering::Relaxed);
                match self.decode(raw) {
                    Some(item) => return Poll::Ready(Some(item)),
                    None => continue,
                }
            }
            if state.ended {
                state.stopped = true;
                return Poll::Ready(Some(Err(KafkaError::Closed {
                    topic: self.shared.topic.clone(),
                })));
            }
            state.waker = Some(cx.waker().clone());
            let version = state.version;
            let behind = self.behind(&state);
            drop(state);
            if !behind {
                self.holding.store(false, Ordering::Relaxed);
                return Poll::Pending;
            }
            // Records exist that have not arrived: keep the task busy (an
            // event loop's clock must not move past them), for a while.
            let now = self.epoch.elapsed().as_nanos() as u64;
            if !self.holding.swap(true, Ordering::Relaxed) {
                self.hold_since.store(now, Ordering::Relaxed);
            }
            let since = self.hold_since.load(Ordering::Relaxed);
            if Duration::from_nanos(now.saturating_sub(since)) > HOLD {
                return Poll::Pending;
            }
            self.shared.wait_change(version, Duration::from_millis(2));
            if self.shared.lock().version == version {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

/// A reader of a Kafka topic: a `Stream` of its records, each partition in
/// offset order (across partitions, the earliest event time buffered comes
/// first), the stored ones and then the new ones as they come. Made by
/// [`KafkaTopic::reader`], [`KafkaTopic::reader_partitions`] or
/// [`KafkaTopic::subscribe`].
///
/// It owns a consumer, polled by a thread of its own (named
/// `timecast-kafka-{topic}`) that buffers up to 8192 records per partition
/// and wakes the reading task: it works under any executor. Dropping the
/// reader stops the thread, which closes the consumer (and leaves its
/// group).
///
/// It yields `Err` items and goes on for faults that pass:
/// [`KafkaError::Disconnected`] when the brokers go away (it reconnects by
/// itself), a rebalance's error. A record that fails to decode is a
/// [`KafkaError::Decode`] naming topic, partition and offset, after which
/// the stream ends (until a [`seek`](Self::seek)), or is skipped, by the
/// [`DecodeErrors`] policy.
///
/// It is also a [`Source`]: see [`into_parts`](Source::into_parts).
///
/// While records it knows exist have not arrived (acknowledged to this
/// process's producer, or below a partition's high watermark as last
/// looked up), a poll that finds nothing waits up to 2 ms for them on its
/// thread and wakes its task again instead of going idle, for at most 5 s:
/// an [`EventLoop`](crate::EventLoop)'s clock does not move past them.
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no record.
///
/// # Examples
///
/// ```no_run
/// use futures::StreamExt;
/// use timecast::{kafka::Kafka, topic::Offset};
///
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let mut reader = kafka.topic::<String>("activity")?.reader(Offset::Start)?;
/// futures::executor::block_on(async {
///     while let Some(record) = reader.next().await {
///         let r = record?;
///         println!("{} partition {} offset {}: {}", r.ts, r.partition, r.offset, r.value);
///     }
///     Ok::<_, timecast::kafka::KafkaError>(())
/// })?;
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct KafkaReader<T, C = Binary> {
    core: Arc<Core<T, C>>,
}

impl<T, C> fmt::Debug for KafkaReader<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaReader")
            .field("topic", &self.core.shared.topic)
            .field("group", &self.core.shared.group)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> KafkaReader<T, C> {
    /// Sets what to do with a record that does not decode.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, store::DecodeErrors, topic::Offset};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.reader(Offset::Start)?.on_decode_error(DecodeErrors::Skip);
    /// assert_eq!(reader.skipped(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn on_decode_error(mut self, policy: DecodeErrors) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.policy = policy,
            None => unreachable!("a reader's core is shared only once it is split"),
        }
        self
    }

    /// How many records were skipped under [`DecodeErrors::Skip`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Offset};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.reader(Offset::Start)?.skipped(), 0);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn skipped(&self) -> u64 {
        self.core.skipped.load(Ordering::Relaxed)
    }

    /// The consumer group the reader is a member of, if any.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// assert_eq!(kafka.topic::<u8>("t")?.subscribe("g")?.group(), Some("g"));
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn group(&self) -> Option<&str> {
        self.core.shared.group.as_deref()
    }

    /// The partitions the reader reads now (those its group assigned it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Offset};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("four")?.reader(Offset::Start)?;
    /// assert_eq!(reader.assignment(), [0, 1, 2, 3]);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn assignment(&self) -> Vec<u32> {
        self.core.shared.lock().parts.keys().copied().collect()
    }

    /// The offset of the next record the reader yields from each of its
    /// partitions (those whose start is known).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Offset};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.reader(Offset::At(5))?;
    /// assert_eq!(reader.positions()[0].offset, 5);
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn positions(&self) -> Vec<Position> {
        let state = self.core.shared.lock();
        state
            .parts
            .iter()
            .filter_map(|(p, part)| part.next.map(|n| Position::new(*p, n)))
            .collect()
    }

    /// Moves the reader: its next record of `to.partition` is the one at
    /// `to.offset`. Restarts a reader stopped at a record that did not
    /// decode. A partition the reader does not read is reported as an
    /// error item.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::{Offset, Position}};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let mut reader = kafka.topic::<u8>("t")?.reader(Offset::End)?;
    /// reader.seek(Position::new(0, 0));
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn seek(&mut self, to: Position) {
        self.core.shared.seek(to);
    }

    /// A handle to [`seek`](Self::seek) this reader from elsewhere (a
    /// checkpoint's recovery callback), while a task owns the reader.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::{Offset, Position}};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.reader(Offset::End)?;
    /// reader.seek_handle().seek(Position::new(0, 0));
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn seek_handle(&self) -> KafkaSeek {
        KafkaSeek {
            shared: self.core.shared.clone(),
        }
    }

    /// Commits the reader's group offset: `at.offset` is the next record
    /// to process in `at.partition` (commit [`Record::next`] once a record
    /// is processed: at-least-once).
    ///
    /// # Blocking
    ///
    /// Blocks until the broker acknowledged the commit (the reader's thread
    /// sends it).
    ///
    /// # Errors
    ///
    /// [`KafkaError::NoGroup`] for a reader without a group;
    /// [`KafkaError::NoSuchPartition`]; [`KafkaError::CommitPastEnd`] if
    /// `at.offset` is past the partition's end; [`KafkaError::Client`] if
    /// the broker refused it (for instance for a partition the group has
    /// moved to another member).
    ///
    /// # Examples
    ///
    /// See [the module](super).
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Position};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.subscribe("g")?;
    /// reader.commit(Position::new(0, 1))?;
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn commit(&self, at: Position) -> Result<(), KafkaError> {
        self.commit_all([at])
    }

    /// Commits several partitions' offsets at once (see
    /// [`commit`](Self::commit)).
    ///
    /// # Blocking
    ///
    /// As [`commit`](Self::commit).
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::Position};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("four")?.subscribe("g")?;
    /// reader.commit_all([Position::new(0, 1), Position::new(3, 7)])?;
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn commit_all(&self, at: impl IntoIterator<Item = Position>) -> Result<(), KafkaError> {
        let at: Vec<Position> = at.into_iter().collect();
        if let Some(group) = &self.core.shared.group {
            for &position in &at {
                let known = self.core.shared.known_end(position.partition);
                self.core.topic.check_commit(group, position, known)?;
            }
        }
        self.core.shared.commit(at)
    }
}

impl<T, C> KafkaReader<T, C> {
    /// Closes the reader and waits until its consumer is closed: a group
    /// member has left its group, whose other members get its partitions at
    /// once (dropping the reader closes it too, without waiting).
    ///
    /// # Blocking
    ///
    /// Blocks until the consumer is closed (a round trip to the group's
    /// coordinator), at most the connection's timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let kafka = timecast::kafka::Kafka::connect("127.0.0.1:9092")?;
    /// let reader = kafka.topic::<u8>("t")?.subscribe("g")?;
    /// reader.close(); // the group rebalances now, not after a session timeout
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn close(self) {
        let shared = self.core.shared.clone();
        drop(self);
        let deadline = Instant::now() + shared.timeout;
        loop {
            let version = {
                let state = shared.lock();
                if state.ended {
                    return;
                }
                state.version
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            shared.wait_change(version, left);
        }
    }
}

impl<T, C: Codec<T>> Stream for KafkaReader<T, C> {
    type Item = Result<Record<T>, KafkaError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.core.poll_next(cx)
    }
}

/// The reader as a [`Source`] for
/// [`process_stream`](crate::process_stream): the past is every record
/// stored when `into_parts` is called (up to each partition's high
/// watermark then), merged across partitions in event-time order; the live
/// part is every later record. An error is an item too, stamped with the
/// last record's time in the past and with the wall clock once live.
impl<T, C: Codec<T>> Source for KafkaReader<T, C> {
    type Item = Result<Record<T>, KafkaError>;
    type Past = KafkaPast<T, C>;
    type Live = KafkaLive<T, C>;

    /// Splits the reader, looking up each partition's high watermark
    /// (blocking for a round trip per partition).
    fn into_parts(self) -> (KafkaPast<T, C>, KafkaLive<T, C>) {
        let partitions: Vec<u32> = self.assignment();
        let mut ends = BTreeMap::new();
        let mut first_error = None;
        for p in partitions {
            match self.core.topic.watermark(p) {
                Ok((_, high)) => {
                    ends.insert(p, high);
                }
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        if let Some(e) = first_error {
            self.core.shared.update(|s| s.reports.push_back(e));
        }
        let past = KafkaPast {
            core: self.core.clone(),
            ends,
            last: Timestamp::MIN,
        };
        (past, KafkaLive { core: self.core })
    }
}

/// The past of a [`KafkaReader`] split as a [`Source`]: the records stored
/// when it was split, merged across partitions in event-time order.
///
/// Its `next` blocks the calling thread until each partition that still
/// has stored records has one buffered (so the merge is in time order); a
/// partition that yields nothing for the connection's timeout (its broker
/// away) is reported as an error item, and left to the live part.
///
/// # Examples
///
/// ```no_run
/// use timecast::{kafka::Kafka, source::Source, topic::Offset};
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let (past, _live) = kafka.topic::<u8>("t")?.reader(Offset::Start)?.into_parts();
/// for (ts, record) in past {
///     println!("{ts} {:?}", record?.value);
/// }
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
pub struct KafkaPast<T, C = Binary> {
    core: Arc<Core<T, C>>,
    /// Partition → its end when split (records below it are the past).
    ends: BTreeMap<u32, u64>,
    last: Timestamp,
}

impl<T, C> fmt::Debug for KafkaPast<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaPast")
            .field("topic", &self.core.shared.topic)
            .field("ends", &self.ends)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Iterator for KafkaPast<T, C> {
    type Item = (Timestamp, Result<Record<T>, KafkaError>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut progress = Instant::now();
        loop {
            let mut state = self.core.shared.lock();
            if let Some(e) = state.reports.pop_front() {
                return Some((self.last, Err(e)));
            }
            if state.stopped {
                return None;
            }
            // The partitions with stored records still to yield.
            let parts = &state.parts;
            self.ends.retain(|p, end| {
                parts
                    .get(p)
                    .is_some_and(|part| part.next.is_none_or(|next| next < *end))
            });
            if self.ends.is_empty() {
                return None;
            }
            let waiting = self
                .ends
                .keys()
                .find(|p| {
                    parts
                        .get(p)
                        .is_none_or(|part| part.queue.is_empty() || part.seeking)
                })
                .copied();
            match waiting {
                None => {
                    let raw = take(&mut state, Some(&self.ends));
                    drop(state);
                    let Some(raw) = raw else { continue };
                    progress = Instant::now();
                    let ts = raw.ts;
                    if let Some(item) = self.core.decode(raw) {
                        self.last = self.last.max(ts);
                        return Some((ts, item));
                    }
                }
                Some(p) => {
                    let version = state.version;
                    let ended = state.ended;
                    drop(state);
                    if ended || progress.elapsed() > self.core.shared.timeout {
                        self.ends.remove(&p);
                        let e = KafkaError::Client {
                            op: format!("replaying partition {p}"),
                            topic: Some(self.core.shared.topic.clone()),
                            source: format!(
                                "no record for {:?}: left to the live part",
                                self.core.shared.timeout
                            )
                            .into(),
                        };
                        return Some((self.last, Err(e)));
                    }
                    self.core
                        .shared
                        .wait_change(version, Duration::from_millis(100));
                }
            }
        }
    }
}

/// The live part of a [`KafkaReader`] split as a [`Source`]: the records
/// after the past, as they come (a `Stream` of `(ts, record)`).
///
/// # Cancel safety
///
/// Dropping a pending `next()` loses no record.
///
/// # Examples
///
/// ```no_run
/// use timecast::{kafka::Kafka, process_stream, topic::Offset, EventLoop, Timestamp};
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let reader = kafka.topic::<String>("activity")?.reader(Offset::Start)?;
/// let handler = |ts: Timestamp, r: Result<timecast::topic::Record<String>, timecast::kafka::KafkaError>| {
///     println!("{ts} {:?}", r.map(|r| r.value));
/// };
/// EventLoop::new().block_on(process_stream(handler).source(reader)); // replays, then follows
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct KafkaLive<T, C = Binary> {
    core: Arc<Core<T, C>>,
}

impl<T, C> fmt::Debug for KafkaLive<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLive")
            .field("topic", &self.core.shared.topic)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Stream for KafkaLive<T, C> {
    type Item = (Timestamp, Result<Record<T>, KafkaError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.core.poll_next(cx).map(|item| {
            item.map(|item| match &item {
                Ok(record) => (record.ts, item),
                Err(_) => (Timestamp::now(), item),
            })
        })
    }
}

/// A handle that seeks a [`KafkaReader`] from elsewhere, while a task owns
/// the reader: see [`KafkaReader::seek_handle`].
///
/// # Examples
///
/// ```no_run
/// use timecast::{kafka::Kafka, topic::{Offset, Position}};
/// let kafka = Kafka::connect("127.0.0.1:9092")?;
/// let reader = kafka.topic::<u8>("t")?.reader(Offset::End)?;
/// let handle = reader.seek_handle();
/// handle.seek(Position::new(0, 2));
/// # Ok::<_, timecast::kafka::KafkaError>(())
/// ```
#[derive(Clone)]
pub struct KafkaSeek {
    shared: Arc<Shared>,
}

impl KafkaSeek {
    /// Seeks the reader (see [`KafkaReader::seek`]) and wakes it.
    ///
    /// # Examples
    ///
    /// See [`KafkaSeek`].
    ///
    /// ```no_run
    /// use timecast::{kafka::Kafka, topic::{Offset, Position}};
    /// let kafka = Kafka::connect("127.0.0.1:9092")?;
    /// kafka.topic::<u8>("t")?.reader(Offset::End)?.seek_handle().seek(Position::new(0, 0));
    /// # Ok::<_, timecast::kafka::KafkaError>(())
    /// ```
    pub fn seek(&self, to: Position) {
        self.shared.seek(to);
    }
}

impl fmt::Debug for KafkaSeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSeek")
            .field("topic", &self.shared.topic)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_placed_past_the_end_fetches_from_the_end() {
        assert_eq!(fetch_from(5, 3), (3, Some(5)));
        assert_eq!(fetch_from(3, 3), (3, None));
        assert_eq!(fetch_from(0, 3), (0, None));
        assert_eq!(fetch_from(u64::MAX, 0), (0, Some(u64::MAX)));
    }
}
