//! A replay of 10 million events under a flow, with a progress bar drawn
//! from another thread by the flow's handle, then a live status line once
//! the pipeline has caught up with the wall clock.
//!
//! The past is a day of trades ending now; the loop replays it as fast as
//! it goes, then follows the wall clock, where a live source ticks ten
//! times a second for three seconds. Ctrl-C stops the flow cleanly at any
//! point.
//!
//! Run with `cargo run --release --example replay_progress [events]`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use timecast::flow::Flow;
use timecast::{process_stream, timer, EventLoop, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(10_000_000), |a| a.parse())?;
    let now = Timestamp::now();
    let day = Duration::from_secs(86_400);
    let start = now - day;
    let step = day / u32::try_from(events).unwrap_or(u32::MAX).max(1);
    let live_for = Duration::from_secs(3);

    // Sum of prices and count, for the mean printed at the end.
    let stats = Rc::new(Cell::new((0.0, 0u64)));
    let totals = stats.clone();
    let flow = Flow::new().pipeline_with_context("trades", move |ctx| {
        let totals = totals.clone();
        async move {
            let past = (0..events)
                .map(move |i| (start + step * (i as u32), 100.0 + (i % 97) as f64 / 10.0));
            ctx.past_end(start + step * (events.saturating_sub(1) as u32));
            let live = timer(Duration::from_millis(100))
                .until(Timestamp::now() + live_for)
                .map(|tick| (tick, 100.0));
            process_stream(move |_ts: Timestamp, price: f64| {
                let (sum, n) = totals.get();
                totals.set((sum + price, n + 1));
            })
            .past(ctx.past(past))
            .live(ctx.live(live))
            .await;
            Ok::<_, String>(())
        }
    });
    let handle = flow.handle();

    // Ctrl-C stops the flow: the replay ends at the next event, the report
    // is printed.
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

    // The display thread: a progress bar while the past replays, then a
    // status line with the lag behind the wall clock.
    let watched = handle.clone();
    let display = std::thread::spawn(move || {
        let bar = ProgressBar::new(events);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} replay [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        loop {
            let status = watched.status();
            let p = &status.pipelines[0];
            if p.live || p.state.is_finished() {
                bar.set_position(p.replayed);
                bar.finish_with_message("caught up");
                break;
            }
            bar.set_position(p.replayed);
            if let Some(t) = p.reached {
                bar.set_message(format!("at {t}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        loop {
            let status = watched.status();
            eprint!("\r{status}   ");
            if status.pipelines.iter().all(|p| p.state.is_finished()) {
                eprintln!();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });

    let el = EventLoop::starting_at(start);
    let report = el.block_on(flow.run());
    display.join().expect("the display thread");
    println!(
        "events dispatched {}, timers fired {}, late events {}",
        el.events_dispatched(),
        el.timers_fired(),
        el.late_events()
    );
    let (sum, n) = stats.get();
    println!("mean price {:.3} over {n} trades", sum / n.max(1) as f64);
    for p in &report.pipelines {
        println!(
            "{}: {}, {} items, {} restarts",
            p.name, p.state, p.items, p.restarts
        );
    }
    Ok(())
}
