//! The Slipstream cookbook's "Endpoint": a timer writes the time into a
//! table every second; an HTTP endpoint (axum) streams the table's updates
//! as server-sent events.
//!
//! ```text
//! cargo run --example slipstream_store_endpoint
//! curl -N http://127.0.0.1:8000/updates
//! data: 00:16:57
//!
//! data: 00:16:58
//! ...
//! ```
//!
//! The table's pipeline runs on a live `EventLoop` on its own thread; the
//! server on a tokio runtime on another. Each `/updates` request subscribes
//! to `table.updates()`, a `Stream` that axum's `Sse` sends as events. A
//! slow client holds back the timer's pipeline (backpressure); a client
//! that disconnects drops its subscription and lets it go.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use axum::Router;
use futures::{Stream, StreamExt};
use timecast::store::{Store, StoreError, Table};
use timecast::{now, sink::handle, timer, EventLoop, Timestamp};

/// `strftime('%H:%M:%S')` of a time, in UTC.
fn hms(t: Timestamp) -> String {
    let secs = t.unix_secs().rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `@handle(timer(), sink=[cache, print])`: on its own thread, on a live
/// event loop, writes `("time", HH:MM:SS)` every `period`.
fn tick_tock(cache: Table<String, String>, period: Duration, print: bool) {
    std::thread::spawn(move || {
        let pipeline = handle(timer(period), |_tick| {
            Some(("time".to_string(), hms(now())))
        })
        .sink_to(cache)
        .sink(move |(_, v): (String, String)| {
            if print {
                println!("{v}");
            }
        });
        if let Err(e) = EventLoop::new().block_on(pipeline.run()) {
            eprintln!("the timer's pipeline stopped: {e}");
        }
    });
}

/// `GET /updates`: `async for _, v in cache: yield v`, as events.
async fn updates(
    State(cache): State<Table<String, String>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(cache.updates().map(|(_, v)| Ok(Event::default().data(v))))
}

/// Starts the timer and the server on `addr`; returns the address the
/// server listens on.
pub(crate) fn start(
    store: &Store,
    addr: &str,
    period: Duration,
    print: bool,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let cache = store.table::<String, String>("db")?;
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    tick_tock(cache.clone(), period, print);
    let app = Router::new()
        .route("/updates", get(updates))
        .with_state(cache);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let served = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => axum::serve(listener, app).await,
                Err(e) => Err(e),
            };
            if let Err(e) = served {
                eprintln!("the server stopped: {e}");
            }
        })
    });
    Ok(local)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::temporary().map_err(|e: StoreError| Box::new(e))?;
    let addr = start(&store, "127.0.0.1:8000", Duration::from_secs(1), true)?;
    eprintln!("serving http://{addr}/updates; try: curl -N http://{addr}/updates");
    loop {
        std::thread::park();
    }
}
