//! The Slipstream cookbook's "Synchronization" against Kafka: the activity
//! stream is produced into a real Kafka topic (the cookbook's
//! `Topic('activity', ...)`), read back by a member of the consumer group
//! `activity`, and enriched with the weather at the time of each activity;
//! a [`Checkpoint`] detects that the weather stream went down (it is
//! "killed" for 5 seconds), pauses the enrichment, and on recovery seeks
//! the activity topic back to the offset saved when the weather went down,
//! correcting the one faulty enrichment.
//!
//! `examples/slipstream_sync.rs` with the topic opened on Kafka instead of
//! the embedded log (and the saved offsets keyed by the record's own
//! partition). It runs in virtual time: a reader holds the clock while
//! records it knows were written are on their way, so it prints the
//! cookbook's output exactly, every run.
//!
//! Run with a broker at `127.0.0.1:9092` (or the address in
//! `TIMECAST_KAFKA`): `cargo run --features kafka --example kafka_sync`.
//! The project's script starts one: `.ci/tansu start 9092 /tmp/tansu-data`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::kafka::Kafka;
use timecast::store::{Checkpoint, Dependency, Store};
use timecast::topic::Position;
use timecast::{sleep, EventLoop, Timestamp};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn at(hour: u32, min: u32) -> Timestamp {
    Timestamp::from_ymd_hms(2023, 1, 1, hour, min, 0).expect("a valid date")
}

/// `async_iterable(it)`: `await sleep(1)` before each message.
fn async_iterable<T>(messages: Vec<T>) -> impl Stream<Item = T> {
    stream::iter(messages).then(|msg| async move {
        sleep(Duration::from_secs(1)).await;
        msg
    })
}

/// Python's `str(timedelta)`: `1:30:00`.
fn timedelta(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Python's `str(dict)` of partition → offset: `{'0': 2}`.
fn offsets(o: &BTreeMap<String, u64>) -> String {
    let items: Vec<_> = o.iter().map(|(p, o)| format!("'{p}': {o}")).collect();
    format!("{{{}}}", items.join(", "))
}

/// What the example prints, with the activity topic on the brokers at
/// `brokers` (a new topic each run, so that its offsets start at 0).
pub(crate) fn lines(brokers: &str) -> Result<Vec<String>, Error> {
    let weather_messages = vec![
        (at(10, 0), "🌞"),
        (at(11, 0), "⛅"),
        (at(12, 0), "🌦️"),
        (at(13, 0), "🌧"),
    ];
    let activity_messages = vec![
        (at(10, 30), "swimming"),     // 🌞
        (at(11, 30), "walking home"), // ⛅
        (at(12, 30), "shopping"),     // 🌦️
        (at(13, 10), "lunch"),        // 🌧
    ];
    let last_activity = activity_messages.len() as u64 - 1;
    let printed = Arc::new(Mutex::new(Vec::new()));
    let print = {
        let printed = printed.clone();
        move |line: String| printed.lock().expect("not poisoned").push(line)
    };

    let store = Store::temporary()?;
    // The cookbook's Topic('activity', ...) and Caches.
    let kafka = Kafka::connect(brokers)?;
    let name = format!(
        "activity-{}-{}",
        std::process::id(),
        Timestamp::now().unix_nanos()
    );
    kafka.create_topic(&name, 1)?;
    let activity = kafka.topic::<String>(&name)?;
    let weather_cache = store.table::<Timestamp, String>("weather")?;
    let mut activity_reader = activity.subscribe("activity")?;
    let seek = activity_reader.seek_handle();

    // The activity log depends on the weather stream, down after 1 hour.
    let (p1, p2) = (print.clone(), print.clone());
    let checkpoint = Checkpoint::<BTreeMap<String, u64>>::new("activity")
        .dependency(Dependency::new("weather_stream").downtime_threshold(Duration::from_secs(3600)))
        .on_downtime(move |_c, _d| {
            let print = p1.clone();
            async move { print("\tThe stream is automatically paused.".into()) }
        })
        .on_recovery(move |_c, d| {
            let (print, seek) = (p2.clone(), seek.clone());
            async move {
                let saved = d.checkpoint_state().cloned().unwrap_or_default();
                print(format!(
                    "\tDowntime resolved, going back to offset {} for reprocessing.",
                    offsets(&saved)
                ));
                for (partition, offset) in &saved {
                    if let Ok(partition) = partition.parse() {
                        seek.seek(Position::new(partition, *offset));
                    }
                }
            }
        })
        .store(&store);

    let el = EventLoop::starting_at(at(14, 0)).simulated();

    // @handle(weather_stream, sink=[weather_cache, print])
    let (c, cache, print_w) = (checkpoint.clone(), weather_cache.clone(), print.clone());
    let weather = el.spawn(async move {
        let mut weather_stream = Box::pin(async_iterable(weather_messages));
        while let Some((ts, w)) = weather_stream.next().await {
            c.heartbeat(ts, None).await?;
            cache.put(&ts, &w.to_string())?;
            if w == "⛅" {
                print_w("\tKilling weather stream on purpose".into());
                sleep(Duration::from_secs(5)).await;
                print_w("\tRecovering the weather stream".into());
            }
        }
        Ok::<_, Error>(())
    });

    // @handle(activity_stream, sink=[activity])
    let producer = activity.clone();
    let produced = el.spawn(async move {
        let mut activity_stream = Box::pin(async_iterable(activity_messages));
        while let Some((ts, a)) = activity_stream.next().await {
            producer.publish(ts, &a.to_string())?;
        }
        Ok::<_, Error>(())
    });

    // @handle(activity, sink=[print]), paused while the weather is down.
    let c = checkpoint.clone();
    let handled = el.spawn(async move {
        let mut messages = c.pausable(&mut activity_reader);
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            let (ts, a) = (msg.ts, msg.value);
            let state = BTreeMap::from([(msg.partition.to_string(), msg.offset)]);
            if let Some(downtime) = c.check_pulse(ts, state).await? {
                print(format!(
                    "\tDowntime detected: {}, (could cause faulty enrichment)",
                    timedelta(downtime)
                ));
            }
            print(match weather_cache.at_or_before(&ts)? {
                Some((_, w)) => format!("The weather during {a} was {w}"),
                None => format!("('{a}', '?')"),
            });
            // A log never ends: stop after the last activity.
            if msg.offset == last_activity {
                break;
            }
        }
        Ok::<_, Error>(())
    });

    el.run().expect("no task panics");
    for task in [weather, produced, handled] {
        el.block_on(task).expect("the task ran to its end")?;
    }
    let lines = printed.lock().expect("not poisoned").clone();
    Ok(lines)
}

fn main() -> Result<(), Error> {
    let brokers = std::env::var("TIMECAST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    for line in lines(&brokers)? {
        println!("{line}");
    }
    Ok(())
}
