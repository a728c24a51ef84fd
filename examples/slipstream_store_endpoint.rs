//! The Slipstream cookbook's "Endpoint": a timer writes the time into a
//! table every second; an HTTP endpoint streams the table's updates as
//! server-sent events.
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
//! The HTTP side is a small HTTP/1.1 server on `std::net` with a thread per
//! connection, written here so that the example needs no web framework:
//! each `/updates` connection subscribes to `table.updates()` and writes
//! each value as an event, blocking on the subscription
//! (`recv_blocking`); the table's pipeline runs on an `EventLoop` on its
//! own thread. A slow client holds back the timer's pipeline
//! (backpressure); a client that disconnects lets it go.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

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

/// `GET /updates`: the table's values as `text/event-stream`.
fn serve_connection(stream: TcpStream, cache: &Table<String, String>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers, up to the blank line.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut out = stream;
    if !request.starts_with("GET /updates ") {
        return out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    // Subscribe before answering: every value from here on is sent.
    let mut updates = cache.updates();
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
          Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    // `async for _, v in cache: yield v`
    while let Some((_, v)) = updates.recv_blocking() {
        out.write_all(format!("data: {v}\n\n").as_bytes())?;
        out.flush()?;
    }
    Ok(())
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
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    tick_tock(cache.clone(), period, print);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let cache = cache.clone();
            std::thread::spawn(move || {
                // A client that goes away ends its connection: no more to do.
                let _ = serve_connection(stream, &cache);
            });
        }
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
