//! The Kafka connector against a real broker (tansu, Kafka-compatible),
//! which the tests start themselves through the project's script
//! (`.ci/tansu`, which installs it when missing) on a free loopback port,
//! and stop by PID.
#![cfg(all(feature = "kafka", unix))]

#[path = "support/broker.rs"]
mod broker;

#[allow(dead_code, reason = "the example's main is not run here")]
#[path = "../examples/kafka_sync.rs"]
mod kafka_sync;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use timecast::kafka::{Kafka, KafkaError, KafkaReader};
use timecast::sink::Sink;
use timecast::store::codec::{Codec, CodecError};
use timecast::store::DecodeErrors;
use timecast::topic::{Offset, Position, Record, Topic};
use timecast::{now, process_stream, AsyncStream, EventLoop, Timestamp};

type Result<T = ()> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn secs(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

/// A topic name no other test (or earlier run) uses.
fn fresh(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        Timestamp::now().unix_nanos()
    )
}

fn connect() -> Result<Kafka> {
    Ok(Kafka::connect(&broker::shared().addr())?)
}

/// The next record, or an error after `within`.
fn next<T, C: Codec<T>>(reader: &mut KafkaReader<T, C>) -> Result<Record<T>> {
    let got = futures::executor::block_on(async {
        let timeout = futures_timer(Duration::from_secs(20));
        futures::pin_mut!(timeout);
        match futures::future::select(reader.next(), timeout).await {
            futures::future::Either::Left((item, _)) => Some(item),
            futures::future::Either::Right(_) => None,
        }
    });
    match got {
        Some(Some(record)) => Ok(record?),
        Some(None) => Err("the reader ended".into()),
        None => Err("no record within 20 s".into()),
    }
}

/// A future that completes after `d` (on a thread of its own).
fn futures_timer(d: Duration) -> impl std::future::Future<Output = ()> {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(d);
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

#[test]
fn records_are_read_from_the_start_the_end_an_offset_and_a_time() -> Result {
    let kafka = connect()?;
    let name = fresh("offsets");
    assert!(kafka.create_topic(&name, 1)?);
    assert!(!kafka.create_topic(&name, 1)?, "already there");
    let topic = kafka.topic::<String>(&name)?;
    assert_eq!(topic.partitions(), 1);
    let words = ["🏆", "📞", "🐟", "👌", "🌞"];
    for (i, w) in words.iter().enumerate() {
        let at = if i == 1 {
            topic.publish_keyed(secs(10 * (i as i64 + 1)), b"k1", &w.to_string())?
        } else {
            topic.publish(secs(10 * (i as i64 + 1)), &w.to_string())?
        };
        assert_eq!(at, Position::new(0, i as u64));
    }
    // A time finer than Kafka's milliseconds comes back exact.
    let fine = Timestamp::from_unix_nanos(60_000_000_123);
    topic.publish(fine, &"⛅".to_string())?;
    assert_eq!(topic.watermarks()?, [(0, 6)]);

    let mut all = topic.reader(Offset::Start)?;
    for (i, w) in words.iter().enumerate() {
        let r = next(&mut all)?;
        assert_eq!(
            (r.partition, r.offset, r.ts, r.value.as_str()),
            (0, i as u64, secs(10 * (i as i64 + 1)), *w)
        );
        assert_eq!(r.key.as_deref(), (i == 1).then_some(&b"k1"[..]));
    }
    assert_eq!(next(&mut all)?.ts, fine);

    let mut at = topic.reader(Offset::At(3))?;
    assert_eq!(next(&mut at)?.value, "👌");
    // Kafka's offsets-for-times: the first record at or after 25 s.
    let mut since = topic.reader(Offset::Time(secs(25)))?;
    assert_eq!(next(&mut since)?.offset, 2);
    // Between two records of one millisecond: the finer time decides.
    let mut fine_since = topic.reader(Offset::Time(Timestamp::from_unix_nanos(60_000_000_100)))?;
    assert_eq!(next(&mut fine_since)?.ts, fine);

    // From the end: only what comes later, which it follows live.
    let mut end = topic.reader(Offset::End)?;
    assert_eq!(end.positions(), [Position::new(0, 6)]);
    topic.publish(secs(70), &"🌧".to_string())?;
    let r = next(&mut end)?;
    assert_eq!((r.offset, r.value.as_str()), (6, "🌧"));
    assert_eq!(
        next(&mut all)?.value,
        "🌧",
        "the first reader follows live too"
    );
    Ok(())
}

#[test]
fn a_missing_topic_and_partition_are_named() -> Result {
    let kafka = connect()?;
    let name = fresh("missing");
    match kafka.topic::<u8>(&name) {
        Err(KafkaError::NoSuchTopic { topic }) => assert_eq!(topic, name),
        other => panic!("expected NoSuchTopic, got {other:?}"),
    }
    // Counts Kafka cannot hold are refused, and nothing is created.
    for partitions in [0, u32::MAX] {
        match kafka.create_topic(&name, partitions) {
            Err(e @ KafkaError::PartitionCount { .. }) => {
                assert!(e.to_string().contains(&name), "{e}");
            }
            other => panic!("expected PartitionCount, got {other:?}"),
        }
        assert!(matches!(
            kafka.topic::<u8>(&name),
            Err(KafkaError::NoSuchTopic { .. })
        ));
    }
    kafka.create_topic(&name, 2)?;
    let topic = kafka.topic::<u8>(&name)?;
    match topic.publish_to(2, secs(0), &1) {
        Err(KafkaError::NoSuchPartition {
            partition: 2,
            partitions: 2,
            ..
        }) => {}
        other => panic!("expected NoSuchPartition, got {other:?}"),
    }
    match topic.publish(Timestamp::from_unix_secs(-1), &1) {
        Err(e @ KafkaError::Timestamp { .. }) => assert!(e.to_string().contains(&name)),
        other => panic!("expected Timestamp, got {other:?}"),
    }
    Ok(())
}

#[test]
fn the_sink_delivers_every_record_in_order_with_time_and_key() -> Result {
    let kafka = connect()?;
    let name = fresh("sink");
    kafka.create_topic(&name, 3)?;
    let topic = kafka.topic::<u64>(&name)?;
    let mut sink = topic.sink();
    futures::executor::block_on(async {
        for i in 0..3000u64 {
            let key = format!("key-{}", i % 7).into_bytes();
            sink.send((secs(i as i64), key, i)).await?;
        }
        sink.flush().await
    })?;
    assert_eq!(
        (sink.delivered(), sink.failed(), sink.in_flight()),
        (3000, 0, 0)
    );
    let total: u64 = topic
        .watermarks()?
        .iter()
        .map(|(low, high)| high - low)
        .sum();
    assert_eq!(total, 3000);
    // Each key in one partition, in order.
    let mut reader = topic.reader(Offset::Start)?;
    let mut by_key: BTreeMap<Vec<u8>, (u32, Vec<u64>)> = BTreeMap::new();
    for _ in 0..3000 {
        let r = next(&mut reader)?;
        assert_eq!(r.ts, secs(r.value as i64));
        let key = r.key.clone().expect("a key");
        assert_eq!(key, format!("key-{}", r.value % 7).into_bytes());
        let entry = by_key.entry(key).or_insert((r.partition, Vec::new()));
        assert_eq!(entry.0, r.partition, "one key, one partition");
        entry.1.push(r.value);
    }
    for (_, (_, values)) in by_key {
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "a key's records in order"
        );
    }
    Ok(())
}

/// The same generic code as the embedded log's test in `tests/log.rs`:
/// only the line that opens the topic differs.
#[test]
fn a_kafka_topic_is_a_topic() -> Result {
    fn roundtrip<T: Topic<u32>>(topic: &T) -> std::result::Result<Vec<u64>, T::Error> {
        let a = topic.publish(secs(0), &1)?;
        let b = topic.publish(secs(1), &2)?;
        assert_eq!((a.partition, b.partition, topic.partitions()), (0, 0, 1));
        topic.commit("g", Position::new(0, 1))?;
        let mut reader = topic.subscribe("g")?;
        let second = futures::executor::block_on(reader.next()).expect("a record")?;
        T::seek(&mut reader, Position::new(0, 0));
        let first = futures::executor::block_on(reader.next()).expect("a record")?;
        Ok(vec![a.offset, b.offset, second.offset, first.offset])
    }
    let kafka = connect()?;
    let name = fresh("generic");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u32>(&name)?;
    assert_eq!(roundtrip(&topic)?, [0, 1, 1, 0]);
    assert_eq!(Topic::name(&topic), name);
    assert_eq!(topic.committed("g")?, BTreeMap::from([(0, 1)]));
    Ok(())
}

#[test]
fn a_reader_is_a_source_replayed_in_virtual_time_then_live() -> Result {
    let kafka = connect()?;
    let name = fresh("source");
    kafka.create_topic(&name, 2)?;
    let topic = kafka.topic::<u32>(&name)?;
    // The past: six records, their times alternating between partitions.
    for i in 0..6u32 {
        topic.publish_to(i % 2, secs(100 + i as i64), &i)?;
    }
    let reader = topic.reader(Offset::Start)?;
    /// (event time, value, the loop's clock, live)
    type Seen = Vec<(Timestamp, u32, Timestamp, bool)>;
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let live_started = Arc::new(AtomicBool::new(false));
    let s = seen.clone();
    // Says when all nine records are in.
    let all_in = AsyncStream::<()>::with_capacity(1);
    let mut done = all_in.subscribe();
    let handler = move |ts: Timestamp, r: std::result::Result<Record<u32>, KafkaError>| {
        let r = r.expect("a record");
        s.borrow_mut()
            .push((ts, r.value, now(), timecast::is_live()));
        if s.borrow().len() == 9 {
            let _ = all_in.try_put(());
        }
    };
    let started = live_started.clone();
    let el = EventLoop::starting_at(secs(50));
    let task = el.spawn(
        process_stream(handler)
            .source(reader)
            .on_live_start(move || started.store(true, Ordering::SeqCst)),
    );
    // The live records, published once the past is replayed.
    let live_topic = topic.clone();
    let publisher = std::thread::spawn(move || -> Result<Vec<Timestamp>> {
        while !live_started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut stamps = Vec::new();
        for i in 6..9u32 {
            let ts = Timestamp::now();
            live_topic.publish_to(i % 2, ts, &i)?;
            stamps.push(ts);
        }
        Ok(stamps)
    });
    el.block_on(async move {
        let timeout = futures_timer(Duration::from_secs(30));
        futures::pin_mut!(timeout);
        futures::future::select(done.next(), timeout).await;
        task.abort();
    });
    let stamps = publisher.join().expect("the publisher")?;
    let seen = seen.borrow();
    assert_eq!(seen.len(), 9, "{seen:?}");
    // The past in time order across both partitions, each at its own time
    // on the loop's clock: replayed in virtual time.
    for (i, (ts, value, clock, _)) in seen.iter().take(6).enumerate() {
        assert_eq!(
            (*ts, *value, *clock),
            (secs(100 + i as i64), i as u32, secs(100 + i as i64))
        );
    }
    // Then the live records, at their wall-clock times.
    let live: Vec<_> = seen[6..].iter().map(|(ts, v, _, _)| (*ts, *v)).collect();
    let mut want: Vec<_> = stamps.into_iter().zip(6..9u32).collect();
    let mut got = live.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(
        seen[6..].iter().all(|(.., live)| *live),
        "dispatched live: {seen:?}"
    );
    Ok(())
}

/// A codec that writes raw bytes: used to write what a `String` topic's
/// codec cannot read.
struct Raw;

impl Codec<Vec<u8>> for Raw {
    fn name(&self) -> String {
        "raw".into()
    }
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> std::result::Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> std::result::Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

#[test]
fn an_undecodable_record_names_topic_partition_and_offset_and_stops_or_is_skipped() -> Result {
    let kafka = connect()?;
    let name = fresh("decode");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<String>(&name)?;
    let raw = kafka.topic_with::<Vec<u8>, _>(&name, Raw)?;
    topic.publish(secs(1), &"ok".to_string())?;
    raw.publish(secs(2), &vec![0xff, 0xff, 0xff])?; // not a Binary-coded String
    topic.publish(secs(3), &"after".to_string())?;

    let mut stops = topic.reader(Offset::Start)?;
    assert_eq!(next(&mut stops)?.value, "ok");
    match futures::executor::block_on(stops.next()) {
        Some(Err(e @ KafkaError::Decode { .. })) => {
            let KafkaError::Decode {
                topic,
                partition,
                offset,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((topic.as_str(), *partition, *offset), (name.as_str(), 0, 1));
            let message = e.to_string();
            assert!(
                message.contains(&name) && message.contains("partition 0, offset 1"),
                "{message}"
            );
        }
        other => panic!("expected a Decode error, got {other:?}"),
    }
    // Stopped at the record, not past it: a commit of the positions does
    // not skip it.
    assert_eq!(stops.positions(), [Position::new(0, 1)]);
    assert!(
        futures::executor::block_on(stops.next()).is_none(),
        "stopped"
    );
    // A seek past it goes on.
    stops.seek(Position::new(0, 2));
    assert_eq!(next(&mut stops)?.value, "after");

    let mut skips = topic
        .reader(Offset::Start)?
        .on_decode_error(DecodeErrors::Skip);
    assert_eq!(next(&mut skips)?.value, "ok");
    let r = next(&mut skips)?;
    assert_eq!((r.offset, r.value.as_str()), (2, "after"));
    assert_eq!(skips.skipped(), 1);
    Ok(())
}

/// The longest timeout (`Duration::MAX` is kept to librdkafka's longest):
/// connecting, a group's first assignment, reading and committing all
/// work, with no overflow of a deadline.
#[test]
fn a_timeout_of_duration_max_waits_as_long_as_librdkafka_can() -> Result {
    let kafka = Kafka::builder(&broker::shared().addr())
        .timeout(Duration::MAX)
        .connect()?;
    let name = fresh("long-timeout");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u64>(&name)?;
    for i in 0..3u64 {
        topic.publish(secs(i as i64), &i)?;
    }
    let mut reader = topic.subscribe("patient")?;
    let got: Vec<u64> = (0..3)
        .map(|_| next(&mut reader).map(|r| r.value))
        .collect::<Result<_>>()?;
    assert_eq!(got, [0, 1, 2]);
    reader.commit(Position::new(0, 3))?;
    assert_eq!(topic.watermarks()?, [(0, 3)]);
    Ok(())
}

#[test]
fn no_broker_at_start_is_a_clear_error_within_the_timeout() {
    let port = broker::free_port(); // nothing listens there
    let brokers = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let result = Kafka::builder(&brokers)
        .timeout(Duration::from_secs(2))
        .connect();
    let waited = started.elapsed();
    match result {
        Err(e @ KafkaError::Unreachable { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&brokers) && message.contains("start the broker"),
                "{message}"
            );
            assert!(e.source().is_some());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // Bounded by the timeout, never a hang (a wide margin for a busy machine).
    assert!(waited < Duration::from_secs(30), "took {waited:?}");
}

#[test]
fn a_broker_restart_is_reported_and_the_group_resumes_from_its_commit() -> Result {
    let mut broker = broker::Broker::start()?;
    let kafka = Kafka::builder(&broker.addr())
        .set("message.timeout.ms", "3000")
        .connect()?;
    let name = fresh("restart");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u64>(&name)?;
    for i in 0..50u64 {
        topic.publish(secs(i as i64), &i)?;
    }
    let mut reader = topic.subscribe("resume")?;
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(next(&mut reader)?.value);
    }
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    // Processed up to 40 only: the commit says so.
    reader.commit(Position::new(0, 40))?;

    broker.stop()?;
    // The reader reports the lost connection.
    let reported = futures::executor::block_on(async {
        let timeout = futures_timer(Duration::from_secs(30));
        futures::pin_mut!(timeout);
        match futures::future::select(reader.next(), timeout).await {
            futures::future::Either::Left((item, _)) => Some(item),
            futures::future::Either::Right(_) => None,
        }
    });
    match reported {
        Some(Some(Err(e @ KafkaError::Disconnected { .. }))) => {
            assert!(e.to_string().contains(&name), "{e}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // A delivery that cannot happen while the broker is away is reported.
    let mut sink = topic.sink();
    futures::executor::block_on(sink.send((secs(99), 99)))?;
    match futures::executor::block_on(sink.flush()) {
        Err(e @ KafkaError::Delivery { .. }) => assert!(e.to_string().contains(&name), "{e}"),
        other => panic!("expected Delivery, got {other:?}"),
    }
    assert_eq!(sink.failed(), 1);

    broker.restart()?;
    for i in 50..60u64 {
        topic.publish(secs(i as i64), &i)?;
    }
    // It resumes from the committed offset (40), nothing lost. (librdkafka
    // may see the brokers flap while the broker starts: each loss is
    // reported again, and the reader resumes from the commit again.)
    let mut after = Vec::new();
    let mut reports = 0;
    while !(40..60).all(|v| after.contains(&v)) {
        match next(&mut reader) {
            Ok(r) => after.push(r.value),
            Err(e)
                if e.downcast_ref::<KafkaError>()
                    .is_some_and(|e| matches!(e, KafkaError::Disconnected { .. })) =>
            {
                reports += 1;
                assert!(reports < 10, "reconnected, then lost again, too often");
            }
            Err(e) => return Err(e),
        }
    }
    assert_eq!(after.first(), Some(&40), "{after:?}");
    assert!(
        after.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == 40),
        "in order, from the commit: {after:?}"
    );
    Ok(())
}

/// Child mode of the group test below: a member of the group, printing
/// what it gets and commits.
#[test]
fn child_member() -> Result {
    let Ok(spec) = std::env::var("TIMECAST_KAFKA_MEMBER") else {
        return Ok(());
    };
    let mut parts = spec.split(' ');
    let (Some(brokers), Some(name), Some(group)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("TIMECAST_KAFKA_MEMBER: brokers topic group".into());
    };
    let mut kafka = Kafka::builder(brokers);
    if let Ok(debug) = std::env::var("TIMECAST_KAFKA_LOG") {
        kafka = kafka.set("debug", &debug);
    }
    let kafka = kafka.connect()?;
    let topic = kafka.topic::<u64>(name)?;
    let mut reader = topic.subscribe(group)?;
    let mut assignment = reader.assignment();
    // Each line the parent reads starts with "@ " (the test harness may
    // have written on the line before).
    println!("\n@ assigned {assignment:?}");
    if parts.next() == Some("once") {
        // Joins, then leaves the group at once.
        reader.close();
        println!("@ left");
        return Ok(());
    }
    futures::executor::block_on(async {
        while let Some(r) = reader.next().await {
            if reader.assignment() != assignment {
                assignment = reader.assignment();
                println!("@ assigned {assignment:?}");
            }
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    println!("@ error {e}");
                    continue;
                }
            };
            println!("@ got {} {} {}", r.partition, r.offset, r.value);
            // At-least-once: commit after processing.
            match reader.commit(r.next()) {
                Ok(()) => println!("@ committed {} {}", r.partition, r.offset + 1),
                Err(e) => println!("@ error {e}"),
            }
        }
        Ok::<_, KafkaError>(())
    })?;
    Ok(())
}

/// What a member printed.
#[derive(Default, Debug)]
struct Log {
    assignments: Vec<Vec<u32>>,
    /// (partition, offset, value), in order.
    got: Vec<(u32, u64, u64)>,
    /// Partition → last offset it committed.
    committed: BTreeMap<u32, u64>,
    /// Every line, for the failure messages.
    lines: Vec<String>,
}

/// A member process, killed when dropped (the test failing included).
struct Member(Child);

impl Member {
    /// SIGKILL: no goodbye to the group.
    fn kill(&mut self) -> Result {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn member(brokers: &str, topic: &str, group: &str) -> Result<(Member, Arc<Mutex<Log>>)> {
    member_with(brokers, topic, group, "")
}

fn member_with(
    brokers: &str,
    topic: &str,
    group: &str,
    mode: &str,
) -> Result<(Member, Arc<Mutex<Log>>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "child_member", "--nocapture", "--test-threads=1"])
        .env(
            "TIMECAST_KAFKA_MEMBER",
            format!("{brokers} {topic} {group} {mode}"),
        )
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("TIMECAST_KAFKA_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()?;
    let log = Arc::new(Mutex::new(Log::default()));
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let into = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(std::result::Result::ok) {
            let Some(line) = line.strip_prefix("@ ") else {
                continue;
            };
            let mut log = into.lock().expect("not poisoned");
            log.lines.push(line.to_string());
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["assigned", ..] => {
                    let list = line.trim_start_matches("assigned ");
                    let parts = list
                        .trim_matches(|c| c == '[' || c == ']')
                        .split(", ")
                        .filter_map(|p| p.parse().ok())
                        .collect();
                    log.assignments.push(parts);
                }
                ["got", p, o, v] => {
                    if let (Ok(p), Ok(o), Ok(v)) = (p.parse(), o.parse(), v.parse()) {
                        log.got.push((p, o, v));
                    }
                }
                ["committed", p, o] => {
                    if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                        log.committed.insert(p, o);
                    }
                }
                _ => {}
            }
        }
    });
    Ok((Member(child), log))
}

/// Waits until `f` holds, at most `within`.
fn wait_for(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Result {
    let deadline = Instant::now() + within;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn two_members_share_four_partitions_and_a_killed_ones_move_with_nothing_lost() -> Result {
    let brokers = broker::shared().addr();
    let kafka = Kafka::connect(&brokers)?;
    let name = fresh("group");
    let group = "members";
    kafka.create_topic(&name, 4)?;
    let topic = kafka.topic::<u64>(&name)?;

    let (mut a, a_log) = member(&brokers, &name, group)?;
    let a_assigned = |want: &[u32]| {
        a_log
            .lock()
            .expect("not poisoned")
            .assignments
            .last()
            .map(Vec::as_slice)
            == Some(want)
    };
    wait_for(
        Duration::from_secs(60),
        "A assigned all four partitions",
        || a_assigned(&[0, 1, 2, 3]),
    )?;

    // Records keep coming, round-robin over the partitions.
    let produced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (topic, produced, stop) = (topic.clone(), produced.clone(), stop.clone());
        std::thread::spawn(move || -> Result {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                topic.publish_to((i % 4) as u32, secs(i as i64), &i)?;
                i += 1;
                produced.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };

    let (mut b, b_log) = member(&brokers, &name, group)?;
    wait_for(
        Duration::from_secs(60),
        "B assigned partitions and processing",
        || {
            let b = b_log.lock().expect("not poisoned");
            b.assignments.last().is_some_and(|p| !p.is_empty()) && b.got.len() >= 10
        },
    )?;
    let (b_parts, a_parts) = {
        let (b, a) = (
            b_log.lock().expect("not poisoned"),
            a_log.lock().expect("not poisoned"),
        );
        (
            b.assignments.last().cloned().unwrap_or_default(),
            a.assignments.last().cloned().unwrap_or_default(),
        )
    };
    // Shared: each has some, together all four.
    let together: BTreeSet<u32> = a_parts.iter().chain(&b_parts).copied().collect();
    assert!(
        !a_parts.is_empty() && !b_parts.is_empty(),
        "A {a_parts:?} B {b_parts:?}"
    );
    assert_eq!(
        together,
        BTreeSet::from([0, 1, 2, 3]),
        "A {a_parts:?} B {b_parts:?}"
    );

    b.kill()?; // SIGKILL: no goodbye to the group
    let a_before = a_log.lock().expect("not poisoned").got.len();
    // tansu 0.6.0 drops a member whose session expired (6 s here) but does
    // not re-form the group: the survivor's rejoin gets its old assignment
    // back (its SyncGroup keeps the stored one). A member that joins and
    // leaves makes it re-form, as Kafka does by itself on the expiry.
    std::thread::sleep(Duration::from_secs(8));
    let (mut c, c_log) = member_with(&brokers, &name, group, "once")?;
    wait_for(Duration::from_secs(60), "C joined and left", || {
        c_log
            .lock()
            .expect("not poisoned")
            .lines
            .iter()
            .any(|l| l == "left")
    })?;
    c.kill()?;
    wait_for(
        Duration::from_secs(60),
        "A takes over B's partitions",
        || a_assigned(&[0, 1, 2, 3]),
    )
    .map_err(|e| {
        let a = a_log.lock().expect("not poisoned");
        format!(
            "{e}: A {:?}, last lines {:?}",
            a.assignments,
            &a.lines[a.lines.len().saturating_sub(15)..]
        )
    })?;
    wait_for(
        Duration::from_secs(60),
        "A processing B's partitions",
        || {
            let a = a_log.lock().expect("not poisoned");
            a.got[a_before..]
                .iter()
                .filter(|(p, ..)| b_parts.contains(p))
                .count()
                >= 8
        },
    )?;
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("the producer")?;
    let total = produced.load(Ordering::SeqCst);

    // Nothing lost: every record processed by one member or the other.
    wait_for(Duration::from_secs(60), "every record processed", || {
        let (a, b) = (
            a_log.lock().expect("not poisoned"),
            b_log.lock().expect("not poisoned"),
        );
        let done: BTreeSet<u64> = a.got.iter().chain(&b.got).map(|(.., v)| *v).collect();
        done.len() as u64 == total
    })?;
    a.kill()?;

    let (a, b) = (
        a_log.lock().expect("not poisoned"),
        b_log.lock().expect("not poisoned"),
    );
    // In each of B's partitions, A resumed from B's committed offset: at or
    // after what B reported committed, and at most the record after B's
    // last one (a commit not yet reported, or a record processed but not
    // committed, which A processes again: at-least-once).
    for p in &b_parts {
        let b_last = b
            .got
            .iter()
            .filter(|(q, ..)| q == p)
            .map(|(_, o, _)| *o)
            .max();
        let Some(b_last) = b_last else { continue };
        let resumed = a.got[a_before..]
            .iter()
            .find(|(q, ..)| q == p)
            .map(|(_, o, _)| *o)
            .expect("A read B's partition");
        let b_committed = b.committed.get(p).copied().unwrap_or(0);
        assert!(
            b_committed <= resumed && resumed <= b_last + 1,
            "partition {p}: B committed {b_committed}, B's last {b_last}, A resumed at {resumed}"
        );
    }
    // Per partition, the offsets A and B processed are dense: none skipped.
    for p in 0..4u32 {
        let offsets: BTreeSet<u64> = a
            .got
            .iter()
            .chain(&b.got)
            .filter(|(q, ..)| *q == p)
            .map(|(_, o, _)| *o)
            .collect();
        let max = offsets.iter().max().copied().unwrap_or(0);
        assert_eq!(offsets.len() as u64, max + 1, "partition {p}: {offsets:?}");
    }
    Ok(())
}

#[test]
fn the_cookbooks_synchronization_runs_against_kafka() -> Result {
    assert_eq!(
        kafka_sync::lines(&broker::shared().addr())?,
        [
            "The weather during swimming was 🌞",
            "\tKilling weather stream on purpose",
            "The weather during walking home was ⛅",
            "\tThe stream is automatically paused.",
            "\tDowntime detected: 1:30:00, (could cause faulty enrichment)",
            "The weather during shopping was ⛅",
            "\tRecovering the weather stream",
            "\tDowntime resolved, going back to offset {'0': 2} for reprocessing.",
            "The weather during shopping was 🌦️",
            "The weather during lunch was 🌧",
        ]
    );
    Ok(())
}

/// A commit past a partition's end is refused, through the topic and
/// through a group's reader (the group would resume after records that do
/// not exist yet); a commit at the end is not.
#[test]
fn a_commit_past_the_end_is_refused() -> Result {
    let kafka = connect()?;
    let name = fresh("commit-past-end");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u32>(&name)?;
    topic.publish(secs(1), &1)?;
    let group = fresh("g");
    match Topic::commit(&topic, &group, Position::new(0, 100)) {
        Err(e @ KafkaError::CommitPastEnd { end: 1, .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&group) && message.contains("offset 100"),
                "{message}"
            );
        }
        other => panic!("expected CommitPastEnd, got {other:?}"),
    }
    assert!(topic.committed(&group)?.is_empty(), "nothing committed");
    topic.commit(&group, Position::new(0, 1))?;

    let reader = topic.subscribe(&fresh("members"))?;
    assert!(matches!(
        reader.commit(Position::new(0, 2)),
        Err(KafkaError::CommitPastEnd { end: 1, .. })
    ));
    assert!(matches!(
        reader.commit(Position::new(1, 0)),
        Err(KafkaError::NoSuchPartition { .. })
    ));
    reader.commit(Position::new(0, 1))?;
    Ok(())
}

/// Every record of one key goes to one partition, the empty key included
/// (the connector's default partitioner hashes it; librdkafka's own
/// default spreads empty keys at random).
#[test]
fn records_of_the_empty_key_share_one_partition() -> Result {
    let kafka = connect()?;
    let name = fresh("empty-key-part");
    kafka.create_topic(&name, 4)?;
    let topic = kafka.topic::<u32>(&name)?;
    let mut partitions = BTreeSet::new();
    for i in 0..24u32 {
        partitions.insert(topic.publish_keyed(secs(i as i64), b"", &i)?.partition);
    }
    assert_eq!(
        partitions.len(),
        1,
        "one key, one partition: {partitions:?}"
    );
    Ok(())
}

/// A zero-length key comes back as a zero-length key, not as no key.
#[test]
fn an_empty_key_comes_back_empty_not_absent() -> Result {
    let kafka = connect()?;
    let name = fresh("empty-key");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u32>(&name)?;
    topic.publish_keyed(secs(1), b"", &1)?;
    topic.publish(secs(2), &2)?;
    let mut reader = topic.reader(Offset::Start)?;
    let a = next(&mut reader)?;
    let b = next(&mut reader)?;
    assert_eq!(
        (a.key, b.key),
        (Some(Vec::new()), None),
        "an empty key, then none"
    );
    Ok(())
}

/// A value over the producer's `message.max.bytes` (1 MB) is a `Delivery`
/// error that says the record is too large; a value just under it
/// round-trips.
#[test]
fn a_value_too_large_is_a_delivery_error_and_a_large_one_round_trips() -> Result {
    let kafka = connect()?;
    let name = fresh("huge");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic_with::<Vec<u8>, _>(&name, Raw)?;
    let large: Vec<u8> = (0..900_000u32).map(|i| i as u8).collect();
    let at = topic.publish(secs(1), &large)?;
    assert_eq!(at, Position::new(0, 0));
    let mut reader = topic.reader(Offset::Start)?;
    let r = next(&mut reader)?;
    assert!(r.value == large, "the large value round-trips");

    let huge = vec![7u8; 2_000_000];
    match topic.publish(secs(2), &huge) {
        Err(e @ KafkaError::Delivery { .. }) => {
            assert!(e.to_string().contains(&name), "{e}");
            let cause = e.source().map(|c| c.to_string()).unwrap_or_default();
            assert!(
                cause.contains("2000000 bytes") && cause.contains("message.max.bytes"),
                "{cause}"
            );
        }
        other => panic!("expected Delivery, got {other:?}"),
    }
    // Through the sink: the send that the producer refuses returns it, and
    // it counts as failed.
    let mut sink = topic.sink();
    let sent = futures::executor::block_on(sink.send((secs(3), huge)));
    assert!(matches!(sent, Err(KafkaError::Delivery { .. })), "{sent:?}");
    assert_eq!((sink.failed(), sink.in_flight()), (1, 0));
    Ok(())
}

/// More records than a reader buffers per partition (8192) before it
/// pauses fetching: every record arrives once, in order, none skipped
/// across the pause and resume.
#[test]
fn flow_control_loses_and_duplicates_nothing() -> Result {
    const N: u64 = 30_000;
    let kafka = connect()?;
    let name = fresh("flow");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u64>(&name)?;
    let mut sink = topic.sink();
    futures::executor::block_on(async {
        for i in 0..N {
            sink.send((secs(i as i64), i)).await?;
        }
        sink.flush().await
    })?;
    let mut reader = topic.reader(Offset::Start)?;
    // Let the reader's thread fill its buffer and pause.
    std::thread::sleep(Duration::from_secs(3));
    let got = futures::executor::block_on(async {
        let mut got = Vec::new();
        let timeout = futures_timer(Duration::from_secs(90));
        futures::pin_mut!(timeout);
        while (got.len() as u64) < N {
            match futures::future::select(reader.next(), timeout.as_mut()).await {
                futures::future::Either::Left((Some(r), _)) => {
                    let r = r?;
                    got.push((r.offset, r.value));
                }
                _ => break,
            }
        }
        Ok::<_, KafkaError>(got)
    })?;
    assert_eq!(got.len() as u64, N, "all records");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (o, v))| *o == i as u64 && *v == i as u64),
        "dense and in order"
    );
    Ok(())
}

/// A delivery failure is reported by the send or flush that runs: a send
/// future dropped before its first poll (a `select!` that lost) leaves it
/// for the next `flush`.
#[test]
fn a_send_future_dropped_unpolled_loses_no_failure() -> Result {
    let mut broker = broker::Broker::start()?;
    let kafka = Kafka::builder(&broker.addr())
        .set("message.timeout.ms", "2000")
        .connect()?;
    let name = fresh("sink-cancel");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u64>(&name)?;
    let mut sink = topic.sink();
    broker.stop()?;
    futures::executor::block_on(sink.send((secs(1), 1)))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sink.failed() == 0 {
        assert!(Instant::now() < deadline, "no failure reported");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A send made and abandoned before it ran.
    drop(sink.send((secs(2), 2)));
    assert_eq!(sink.in_flight(), 0);
    match futures::executor::block_on(sink.flush()) {
        Err(KafkaError::Delivery { .. }) => {}
        other => panic!("the failure of the first record was lost: flush gave {other:?}"),
    }
    Ok(())
}

/// Event times in the epoch's first millisecond (CreateTime 0, which
/// librdkafka reads as "now") and finer than a millisecond come back
/// exact, through the header.
#[test]
fn times_in_the_first_millisecond_come_back_exact() -> Result {
    let kafka = connect()?;
    let name = fresh("epoch");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u32>(&name)?;
    let times = [
        Timestamp::from_unix_nanos(0),
        Timestamp::from_unix_nanos(500),
        Timestamp::from_unix_nanos(1_000_000),
    ];
    for (i, ts) in times.iter().enumerate() {
        topic.publish(*ts, &(i as u32))?;
    }
    let mut reader = topic.reader(Offset::Start)?;
    for ts in times {
        assert_eq!(next(&mut reader)?.ts, ts);
    }
    Ok(())
}

/// The sink on a producer whose queue holds 5 records: `send` waits for
/// room (woken by its own deliveries) and every record is delivered, in
/// order, without a hang.
#[test]
fn the_sink_waits_for_room_in_a_full_producer_queue() -> Result {
    let kafka = Kafka::builder(&broker::shared().addr())
        .set("queue.buffering.max.messages", "5")
        .connect()?;
    let name = fresh("queue-full");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u64>(&name)?;
    let mut sink = topic.sink();
    let started = Instant::now();
    futures::executor::block_on(async {
        for i in 0..300u64 {
            sink.send((secs(i as i64), i)).await?;
        }
        sink.flush().await
    })?;
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(
        (sink.delivered(), sink.failed(), sink.in_flight()),
        (300, 0, 0)
    );
    let mut reader = topic.reader(Offset::Start)?;
    for i in 0..300u64 {
        let r = next(&mut reader)?;
        assert_eq!((r.offset, r.value), (i, i));
    }
    Ok(())
}

/// A reader placed past a partition's end waits for that offset, as the
/// embedded log's does: it fetches from the end and skips up to it (a
/// fetch past the end is out of range, which `auto.offset.reset=earliest`
/// would answer by replaying the partition from its start). So does a
/// seek past the end.
#[test]
fn a_reader_at_an_offset_past_the_end_waits_for_it() -> Result {
    let kafka = connect()?;
    let name = fresh("at-past-end");
    kafka.create_topic(&name, 1)?;
    let topic = kafka.topic::<u32>(&name)?;
    for i in 0..3 {
        topic.publish(secs(i), &(i as u32))?;
    }
    let mut reader = topic.reader(Offset::At(5))?;
    assert_eq!(reader.positions(), [Position::new(0, 5)]);
    // Let the consumer fetch (and meet the offset out of range).
    std::thread::sleep(Duration::from_secs(2));
    for i in 3..7 {
        topic.publish(secs(i), &(i as u32))?;
    }
    let first = next(&mut reader)?;
    assert_eq!(
        (first.offset, first.value),
        (5, 5),
        "the first record yielded from At(5)"
    );
    reader.seek(Position::new(0, 9));
    assert_eq!(reader.positions(), [Position::new(0, 9)]);
    std::thread::sleep(Duration::from_secs(1));
    for i in 7..10 {
        topic.publish(secs(i), &(i as u32))?;
    }
    let after_seek = next(&mut reader)?;
    assert_eq!((after_seek.offset, after_seek.value), (9, 9));
    Ok(())
}

/// A reader's past merges its partitions in time order also when it skips
/// records (placed past a partition's end, which then grew): a partition
/// whose skipped records emptied its buffer is waited for before the
/// others' heads (9,000 records to skip, more than the 8,192 buffered).
#[test]
fn the_past_stays_in_time_order_when_the_reader_skips_records() -> Result {
    use timecast::source::Source;
    let kafka = connect()?;
    // A key that goes to partition 0 of a 2-partition topic.
    let scratch_name = fresh("key-scratch");
    kafka.create_topic(&scratch_name, 2)?;
    let scratch = kafka.topic::<u32>(&scratch_name)?;
    let key = (0..64u32)
        .map(|i| format!("k{i}").into_bytes())
        .find(|k| {
            scratch
                .publish_keyed(secs(1), k, &0)
                .is_ok_and(|p| p.partition == 0)
        })
        .expect("a key for partition 0");

    let name = fresh("past-skip");
    kafka.create_topic(&name, 2)?;
    let topic = kafka.topic::<u32>(&name)?;
    assert_eq!(topic.publish_to(0, secs(10), &0)?.offset, 0); // high = 1
    const M: u64 = 9000; // more than the 8192 a partition buffers
    let target = 1 + M;
    let mut reader = Some(topic.reader_partitions([(0, Offset::At(target)), (1, Offset::Start)])?);
    // Partition 0: M records to skip (early times), then the target at 20 s.
    let mut sink = topic.sink();
    futures::executor::block_on(async {
        for i in 0..M {
            sink.send((secs(1), key.clone(), i as u32)).await?;
        }
        sink.send((secs(20), key.clone(), 20)).await?;
        sink.flush().await
    })?;
    // Partition 1: one record at 30 s.
    assert_eq!(topic.publish_to(1, secs(30), &30)?.offset, 0);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (past, _live) = reader.take().unwrap().into_parts();
    let got: Vec<(i64, u32, u64)> = past
        .take(2)
        .map(|(ts, r)| {
            let r = r.expect("a record");
            (ts.unix_secs(), r.partition, r.offset)
        })
        .collect();
    assert_eq!(
        got,
        [(20, 0, target), (30, 1, 0)],
        "the past out of time order"
    );
    Ok(())
}
