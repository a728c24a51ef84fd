//! aiopype's example, ported: a flow with the `yahoo_apple` pipeline. A
//! poll source requests an AAPL quote every 500 ms from a quote server on a
//! loopback port (this example starts it: no outside network is needed),
//! a processor extracts the price, an output appends `time;price` rows to
//! `yahoo_appl.csv` in the temporary directory. The server fails now and
//! then: failed requests are reported once they pass the threshold, a
//! malformed quote fails the pipeline, which is restarted.
//!
//! Run with `cargo run --example yahoo_apple [polls]`; it stops after
//! `polls` requests (default 40) or at Ctrl-C, and prints the report.

#[path = "yahoo_common/mod.rs"]
mod yahoo_common;

use std::time::Duration;

use timecast::{sleep, EventLoop};
use yahoo_common::{yahoo_flow, QuoteServer, Reply, Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polls: usize = std::env::args().nth(1).map_or(Ok(40), |a| a.parse())?;
    // A random walk of prices, with an outage and a malformed quote.
    let mut price = 189.0;
    let script: Vec<Reply> = (0..polls)
        .map(|i| match i % 20 {
            7..=9 => Reply::Status(500),
            15 => Reply::Garbage,
            _ => {
                price += ((i * 7919) % 13) as f64 / 10.0 - 0.6;
                Reply::Quote(price)
            }
        })
        .collect();

    let csv = std::env::temp_dir().join("yahoo_appl.csv");
    let _ = std::fs::remove_file(&csv);
    let settings = Settings {
        url: String::new(),
        csv: csv.clone(),
        every: Duration::from_millis(500),
        error_threshold: 1,
        timeout: Duration::from_secs(8),
        backoff: (Duration::from_millis(200), Duration::from_secs(5)),
    };

    // The flow's handle stops it: when the server's script is over, or at
    // Ctrl-C.
    let (tx, rx) = std::sync::mpsc::channel::<timecast::FlowHandle>();
    let server = QuoteServer::start(script, move || {
        if let Ok(handle) = rx.recv() {
            handle.shutdown();
        }
    })?;
    let flow = yahoo_flow(Settings {
        url: server.url("AAPL"),
        ..settings
    });
    let handle = flow.handle();
    tx.send(handle.clone())?;
    let on_ctrl_c = handle.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the Ctrl-C handler");
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            on_ctrl_c.shutdown();
        }
    });

    let el = EventLoop::new();
    // A live status line.
    let status = handle.clone();
    el.spawn(async move {
        while !status.is_shutdown() {
            eprint!("\r{}   ", status.status());
            sleep(Duration::from_millis(250)).await;
        }
        eprintln!();
    });
    let mut errors = handle.errors();
    el.spawn(async move {
        use futures::StreamExt;
        while let Some(e) = errors.next().await {
            eprintln!("\r{e}");
        }
    });
    let report = el.block_on(flow.run());

    println!("{} requests served", server.served());
    for p in &report.pipelines {
        println!(
            "{}: {}, {} rows, {} restarts, {} failures",
            p.name,
            p.state,
            p.items,
            p.restarts,
            p.errors.len()
        );
    }
    println!("--- {}", csv.display());
    print!("{}", std::fs::read_to_string(&csv)?);
    Ok(())
}
