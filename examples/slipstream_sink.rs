//! The Slipstream cookbook's "Sink": counting emoji into a cache through a
//! sink closure. The cookbook's cache is Redis; here it is an in-memory map
//! shared by the handler (which reads it) and the sink (which writes it).
//!
//! Run with `cargo run --example slipstream_sink`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures::{stream, Stream};
use timecast::{sink::handle, EventLoop};

/// `messages()`: the four emoji, twice.
fn messages() -> impl Stream<Item = &'static str> + Unpin {
    stream::iter((0..2).flat_map(|_| ["🏆", "📞", "🐟", "👌"]))
}

/// The order Redis listed the keys in, in the cookbook (`KEYS *` follows
/// Redis's hash table): printing in it gives the cookbook's exact line.
const KEY_ORDER: [&str; 4] = ["👌", "🏆", "📞", "🐟"];

/// Runs the pipeline on the event loop; returns the cache.
pub(crate) fn counts() -> HashMap<&'static str, u32> {
    let r = Rc::new(RefCell::new(HashMap::new()));
    let (reader, cache) = (r.clone(), r.clone());
    let handler = move |msg: &'static str| {
        let count = reader.borrow().get(msg).map_or(1, |n| n + 1);
        Some((msg, count))
    };
    let pipeline = handle(messages(), handler).sink(move |(msg, count)| {
        cache.borrow_mut().insert(msg, count);
    });
    let el = EventLoop::new().simulated();
    el.block_on(pipeline.run()).expect("the sink never closes");
    // The pipeline, its handler and sink are gone: the map is ours again.
    Rc::try_unwrap(r).expect("no other owner").into_inner()
}

/// `print({k: int(r[k]) for k in r.keys('*')})`.
pub(crate) fn python_dict(counts: &HashMap<&str, u32>) -> String {
    let entries: Vec<String> = KEY_ORDER
        .iter()
        .filter_map(|k| counts.get(k).map(|n| format!("'{k}': {n}")))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// What the example prints.
pub(crate) fn lines() -> Vec<String> {
    vec![python_dict(&counts())]
}

fn main() {
    for line in lines() {
        println!("{line}");
    }
}
