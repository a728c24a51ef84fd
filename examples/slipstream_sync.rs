//! The Slipstream cookbook's "Synchronization": an activity stream,
//! produced into a log (the cookbook's Kafka topic), enriched with the
//! weather at the time of each activity; a [`Checkpoint`] detects that the
//! weather stream went down (it is "killed" for 5 seconds), pauses the
//! enrichment, and on recovery seeks the activity log back to the offset
//! saved when the weather went down, correcting the one faulty enrichment.
//!
//! Channel, clock, ops, store, log and checkpoint at once, on the embedded
//! store, in virtual time: it runs instantly and prints the cookbook's
//! output exactly.
//!
//! Run with `cargo run --example slipstream_sync`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{stream, Stream, StreamExt};
use timecast::store::{Checkpoint, Dependency, Store, StoreError};
use timecast::{sleep, EventLoop, Timestamp};

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

/// What the example prints.
pub(crate) fn lines() -> Result<Vec<String>, StoreError> {
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
    let activity = store.log::<String>("activity")?;
    let weather_cache = store.table::<Timestamp, String>("weather")?;
    let mut activity_reader = activity.group("activity").read();
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
                if let Some(offset) = saved.get("0") {
                    seek.seek(*offset);
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
        Ok::<_, StoreError>(())
    });

    // @handle(activity_stream, sink=[activity])
    let producer = activity.clone();
    let produced = el.spawn(async move {
        let mut activity_stream = Box::pin(async_iterable(activity_messages));
        while let Some((ts, a)) = activity_stream.next().await {
            producer.append(ts, &a.to_string())?;
        }
        Ok::<_, StoreError>(())
    });

    // @handle(activity, sink=[print]), paused while the weather is down.
    let c = checkpoint.clone();
    let handled = el.spawn(async move {
        let mut messages = c.pausable(&mut activity_reader);
        while let Some(msg) = messages.next().await {
            let msg = msg?;
            let (ts, a) = (msg.ts, msg.value);
            let state = BTreeMap::from([("0".to_string(), msg.offset)]);
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
        Ok::<_, StoreError>(())
    });

    el.run().expect("no task panics");
    for task in [weather, produced, handled] {
        el.block_on(task).expect("the task ran to its end")?;
    }
    let lines = printed.lock().expect("not poisoned").clone();
    Ok(lines)
}

fn main() -> Result<(), StoreError> {
    for line in lines()? {
        println!("{line}");
    }
    Ok(())
}
