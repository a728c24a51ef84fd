//! aiopype's example, the `yahoo_apple` pipeline: a poll source against an
//! HTTP quote endpoint, a processor extracting the price, an output
//! writing CSV rows, under a [`Flow`] that reports failures and restarts
//! the pipeline.
//!
//! No outside network is reachable, so [`QuoteServer`] serves Yahoo-shaped
//! quotes on a loopback port from a script, and [`http_get`] is a minimal
//! HTTP/1.1 client over `std::net::TcpStream`, run on a thread per request
//! so that the event loop never blocks.
//!
//! Not an example itself (Cargo builds `examples/*.rs` and
//! `examples/*/main.rs` only): `examples/yahoo_apple.rs` and
//! `tests/yahoo_apple.rs` include it.

// The example and the test use different parts of this module.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures::channel::oneshot;
use futures::StreamExt;
use timecast::flow::{Flow, Restart};
use timecast::source::poll;
use timecast::Timestamp;

/// What the quote server answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// 200 with a quote at this price.
    Quote(f64),
    /// This status with an error page.
    Status(u16),
    /// 200 with a body that is not a quote.
    Garbage,
}

/// A quote endpoint on a loopback port: answers each request with the
/// next [`Reply`] of its script; past the script, with 503, calling
/// `on_done` once before its first such answer.
pub(crate) struct QuoteServer {
    pub(crate) addr: SocketAddr,
    served: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl QuoteServer {
    pub(crate) fn start(
        script: Vec<Reply>,
        on_done: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Mutex::new(0));
        let count = served.clone();
        let thread = std::thread::spawn(move || {
            let mut on_done = Some(on_done);
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = {
                    let mut served = count.lock().unwrap();
                    *served += 1;
                    *served - 1
                };
                let reply = script.get(n).cloned();
                let stop = matches!(read_request(&stream).as_deref(), Ok("/quit"));
                if reply.is_none() {
                    // Before the answer: whoever waits for it sees the
                    // script's end first.
                    if let Some(done) = on_done.take() {
                        done();
                    }
                }
                let _ = respond(stream, reply.as_ref());
                if stop {
                    return;
                }
            }
        });
        Ok(Self {
            addr,
            served,
            thread: Some(thread),
        })
    }

    /// The quote URL of a symbol.
    pub(crate) fn url(&self, symbol: &str) -> String {
        format!(
            "http://{}/webservice/v1/symbols/{symbol}/quote?format=json&view=detail",
            self.addr
        )
    }

    /// How many requests it answered.
    pub(crate) fn served(&self) -> usize {
        *self.served.lock().unwrap()
    }
}

impl Drop for QuoteServer {
    fn drop(&mut self) {
        // Unblock `incoming` with a last request that stops the thread.
        if let Ok(mut s) = TcpStream::connect(self.addr) {
            let _ = s.write_all(b"GET /quit HTTP/1.1\r\nHost: x\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a request's head; returns its path.
fn read_request(stream: &TcpStream) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            return Ok(path);
        }
    }
}

fn respond(mut stream: TcpStream, reply: Option<&Reply>) -> std::io::Result<()> {
    let (status, body) = match reply {
        Some(Reply::Quote(price)) => (
            200,
            format!(
                r#"{{"list":{{"meta":{{"type":"resource-list","count":1}},"resources":[{{"resource":{{"classname":"Quote","fields":{{"name":"Apple Inc.","price":"{price:.2}","symbol":"AAPL"}}}}}}]}}}}"#
            ),
        ),
        Some(Reply::Status(code)) => (*code, "<html>error</html>".to_owned()),
        Some(Reply::Garbage) => (200, "<html>maintenance</html>".to_owned()),
        None => (503, "<html>closed</html>".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// A minimal HTTP/1.1 GET of `url` (`http://host:port/path`): the body of
/// a 2xx response, an error naming the status otherwise.
pub(crate) fn http_get_blocking(url: &str, timeout: Duration) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("GET {url}: only http:// URLs are supported"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let fail = |e: std::io::Error| format!("GET {url}: {e}");
    let mut stream = TcpStream::connect(host).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {url}: malformed response"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {url}: malformed status line"))?;
    if !(200..300).contains(&status) {
        return Err(format!("GET {url}: HTTP status {status}"));
    }
    Ok(body.to_owned())
}

/// [`http_get_blocking`] on a thread of its own: the event loop awaits the
/// answer without blocking.
pub(crate) async fn http_get(url: String, timeout: Duration) -> Result<String, String> {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(http_get_blocking(&url, timeout));
    });
    rx.await
        .unwrap_or_else(|_| Err("the request thread stopped".to_owned()))
}

/// The processor (aiopype's `HandleRawData`): the price in a Yahoo quote,
/// `list.resources[0].resource.fields.price`.
pub(crate) fn extract_price(body: &str) -> Result<f64, String> {
    let start = body.find(r#""price":""#).map(|i| i + r#""price":""#.len());
    let price = start.and_then(|s| body[s..].split('"').next());
    price
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no price in the quote: {body:.40}"))
}

/// The output (aiopype's `CSVOutput`): `time;price` rows, with a header
/// when the file is new; appends, so that a restarted pipeline goes on.
pub(crate) struct CsvOutput {
    file: File,
}

impl CsvOutput {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        if file.metadata()?.len() == 0 {
            writeln!(file, "time;price")?;
        }
        Ok(Self { file })
    }

    pub(crate) fn write(&mut self, time: Timestamp, price: f64) -> std::io::Result<()> {
        writeln!(self.file, "{time};{price:.2}")
    }
}

/// The settings of the `yahoo_apple` pipeline.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) csv: PathBuf,
    /// aiopype's `request_interval`.
    pub(crate) every: Duration,
    /// aiopype's `exception_threshold`.
    pub(crate) error_threshold: u32,
    pub(crate) timeout: Duration,
    pub(crate) backoff: (Duration, Duration),
}

/// aiopype's example flow: the `yahoo_apple` manager, restarted whenever
/// it stops (`run_always`).
pub(crate) fn yahoo_flow(settings: Settings) -> Flow {
    let (min, max) = settings.backoff;
    Flow::new()
        .pipeline_with_context("yahoo_apple", move |ctx| {
            let settings = settings.clone();
            let reporter = ctx.clone();
            let (url, timeout) = (settings.url.clone(), settings.timeout);
            // Source: the REST poller.
            let source = poll(settings.every, move || http_get(url.clone(), timeout))
                .error_threshold(settings.error_threshold)
                .timeout(timeout)
                .on_error(move |e| reporter.report(e));
            async move {
                let mut quotes = ctx.live(source);
                let mut output = CsvOutput::open(&settings.csv)
                    .map_err(|e| format!("cannot open {}: {e}", settings.csv.display()))?;
                while let Some((time, body)) = quotes.next().await {
                    // Processor, then output.
                    let price = extract_price(&body)?;
                    output
                        .write(time, price)
                        .map_err(|e| format!("cannot write {}: {e}", settings.csv.display()))?;
                }
                Ok::<_, String>(())
            }
        })
        .restart(Restart::always().backoff(min, max))
}
