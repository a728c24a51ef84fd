//! The Slipstream cookbook's "Sink", with the counts kept in a store table
//! instead of Redis: the handler reads the table, the table is the sink.
//!
//! Run with `cargo run --example slipstream_store_sink`.

use futures::{stream, Stream};
use timecast::store::{Store, StoreError, Table};
use timecast::{sink::handle, EventLoop};

/// `messages()`: the four emoji, twice.
fn messages() -> impl Stream<Item = &'static str> + Unpin {
    stream::iter((0..2).flat_map(|_| ["🏆", "📞", "🐟", "👌"]))
}

/// The order Redis listed the keys in, in the cookbook (`KEYS *` follows
/// Redis's hash table). The table itself iterates in key order.
const KEY_ORDER: [&str; 4] = ["👌", "🏆", "📞", "🐟"];

/// Runs the pipeline on the event loop into `counts`.
pub(crate) fn count_into(counts: &Table<String, u32>) -> Result<(), StoreError> {
    let reader = counts.clone();
    let handler = move |msg: &'static str| {
        // `r.get(msg)`; a handler returns outputs, so a failed read stops
        // the pipeline with a panic naming the error.
        let count = match reader.get(&msg.to_string()) {
            Ok(count) => count.map_or(1, |n| n + 1),
            Err(e) => panic!("reading the count of {msg}: {e}"),
        };
        Some((msg.to_string(), count))
    };
    let pipeline = handle(messages(), handler).sink_to(counts.clone());
    EventLoop::new().simulated().block_on(pipeline.run())
}

/// What the example prints: `print({k: int(r[k]) for k in r.keys('*')})`.
pub(crate) fn lines() -> Result<Vec<String>, StoreError> {
    let store = Store::temporary()?;
    let counts = store.table::<String, u32>("emoji")?;
    count_into(&counts)?;
    let mut entries = Vec::new();
    for k in KEY_ORDER {
        if let Some(n) = counts.get(&k.to_string())? {
            entries.push(format!("'{k}': {n}"));
        }
    }
    assert_eq!(
        counts.len()?,
        entries.len(),
        "only the four emoji are counted"
    );
    Ok(vec![format!("{{{}}}", entries.join(", "))])
}

fn main() -> Result<(), StoreError> {
    for line in lines()? {
        println!("{line}");
    }
    Ok(())
}
