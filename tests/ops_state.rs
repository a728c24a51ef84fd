//! `ops::Stateful`: every combinator's state, saved at any point (while
//! its input is idle, after it ended) and restored into a fresh one, gives
//! the output and late events of an uninterrupted run.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::executor::block_on;
use futures::task::noop_waker_ref;
use futures::{Stream, StreamExt};
use timecast::ops::{LateOutput, Stateful, StreamOps, Window, WindowedState};
use timecast::Timestamp;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_secs(s)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------
// Stateful: harness
// ---------------------------------------------------------------------

/// An input fed by hand: `Pending` while empty and open.
struct Feed<T>(Rc<RefCell<(VecDeque<T>, bool)>>);

impl<T> Clone for Feed<T> {
    fn clone(&self) -> Self {
        Feed(self.0.clone())
    }
}

impl<T> Feed<T> {
    fn new() -> Self {
        Feed(Rc::new(RefCell::new((VecDeque::new(), false))))
    }
    fn push(&self, v: T) {
        self.0.borrow_mut().0.push_back(v);
    }
    fn close(&self) {
        self.0.borrow_mut().1 = true;
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut q = self.0.borrow_mut();
        match q.0.pop_front() {
            Some(v) => Poll::Ready(Some(v)),
            None if q.1 => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Polls until `Pending` (false) or the end (true).
fn drain<S: Stream + Unpin>(s: &mut S, out: &mut Vec<S::Item>) -> bool {
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        match Pin::new(&mut *s).poll_next(&mut cx) {
            Poll::Ready(Some(v)) => out.push(v),
            Poll::Ready(None) => return true,
            Poll::Pending => return false,
        }
    }
}

type Ev = (Timestamp, u32);
type Late = Rc<RefCell<Vec<Ev>>>;

/// Events mostly in time order, with ties, gaps and some out of order.
fn events(seed: u64, n: usize) -> Vec<Ev> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut now = next(20) as i64 - 10;
    (0..n)
        .map(|i| {
            let ts = if next(10) < 2 {
                now - next(7) as i64
            } else {
                now += next(5) as i64;
                now
            };
            (t(ts), i as u32)
        })
        .collect()
}

/// Every split of the input (state saved while the input is open and
/// idle, restored into a fresh op that reads the rest) gives the output
/// and the late events of an uninterrupted run.
fn check_splits<W, F>(name: &str, base: impl Fn(Timestamp) -> Timestamp, make: F)
where
    F: Fn(Feed<Ev>, Late) -> W,
    W: Stream + Stateful + Unpin,
    W::Item: PartialEq + std::fmt::Debug,
{
    for seed in 0..12 {
        let evs: Vec<Ev> = events(seed, 30)
            .into_iter()
            .map(|(ts, v)| (base(ts), v))
            .collect();
        let (feed, late) = (Feed::new(), Late::default());
        let mut op = make(feed.clone(), late.clone());
        let mut want = Vec::new();
        for e in &evs {
            feed.push(*e);
            drain(&mut op, &mut want);
        }
        feed.close();
        assert!(drain(&mut op, &mut want));
        for k in 0..=evs.len() {
            let (feed1, late1) = (Feed::new(), Late::default());
            let mut op1 = make(feed1.clone(), late1.clone());
            let mut got = Vec::new();
            for e in &evs[..k] {
                feed1.push(*e);
                drain(&mut op1, &mut got);
            }
            let saved = op1.state();
            drop(op1);
            let feed2 = Feed::new();
            let mut op2 = make(feed2.clone(), late1.clone());
            op2.restore(saved);
            for e in &evs[k..] {
                feed2.push(*e);
                drain(&mut op2, &mut got);
            }
            feed2.close();
            assert!(drain(&mut op2, &mut got));
            assert_eq!(got, want, "{name}: seed {seed}, split after {k}: {evs:?}");
            assert_eq!(
                *late1.borrow(),
                *late.borrow(),
                "{name}: late, seed {seed}, split {k}"
            );
        }
    }
}

/// The state saved once the first part of the input has ENDED, restored
/// into a fresh op reading the rest, gives the uninterrupted output.
fn check_after_end<W, F>(name: &str, make: F)
where
    F: Fn(Feed<Ev>) -> W,
    W: Stream + Stateful + Unpin,
    W::Item: PartialEq + std::fmt::Debug,
{
    for seed in 0..6 {
        let evs = events(seed, 20);
        let feed = Feed::new();
        let mut op = make(feed.clone());
        evs.iter().for_each(|e| feed.push(*e));
        feed.close();
        let mut want = Vec::new();
        assert!(drain(&mut op, &mut want));
        for k in 1..evs.len() {
            let feed1 = Feed::new();
            let mut op1 = make(feed1.clone());
            evs[..k].iter().for_each(|e| feed1.push(*e));
            feed1.close();
            let mut got = Vec::new();
            assert!(drain(&mut op1, &mut got));
            let saved = op1.state();
            let feed2 = Feed::new();
            let mut op2 = make(feed2.clone());
            op2.restore(saved);
            evs[k..].iter().for_each(|e| feed2.push(*e));
            feed2.close();
            assert!(drain(&mut op2, &mut got));
            assert_eq!(
                got, want,
                "{name}: seed {seed}, input ended after {k} events"
            );
        }
    }
}

fn to_late(late: Late) -> impl FnMut(Timestamp, u32) {
    move |ts, v| late.borrow_mut().push((ts, v))
}

// ---------------------------------------------------------------------
// Stateful: after the end of the input
// ---------------------------------------------------------------------

/// The state saved after the input ended keeps the last item: a resumed
/// op pairs it with the first new one.
#[test]
fn pairwise_keeps_its_last_item_after_the_input_ended() {
    let mut first = futures::stream::iter([1, 2, 3]).pairwise();
    assert_eq!(
        block_on(first.by_ref().collect::<Vec<_>>()),
        [(1, 2), (2, 3)]
    );
    let mut resumed = futures::stream::iter([4, 5]).pairwise();
    resumed.restore(first.state());
    assert_eq!(
        block_on(resumed.collect::<Vec<_>>()),
        [(3, 4), (4, 5)],
        "the pair (3, 4) of an uninterrupted run"
    );
}

#[test]
fn pairwise_resumed_after_its_input_ended_is_exact() {
    check_after_end("pairwise", |f| f.pairwise());
}

/// The state saved after the input ended keeps the events of the windows
/// to come.
#[test]
fn sliding_keeps_its_events_after_the_input_ended() {
    let mut first = futures::stream::iter([(t(1), 'a'), (t(2), 'b')]).sliding(secs(10));
    let _ = block_on(first.by_ref().collect::<Vec<_>>());
    let mut resumed = futures::stream::iter([(t(3), 'c')]).sliding(secs(10));
    resumed.restore(first.state());
    let w = block_on(resumed.next()).unwrap();
    assert_eq!(
        w.values().collect::<String>(),
        "abc",
        "the window [-7, 3] holds a, b and c in an uninterrupted run"
    );
}

#[test]
fn sliding_resumed_after_its_input_ended_is_exact() {
    check_after_end("sliding", |f| {
        f.sliding(secs(5)).allowed_lateness(secs(100))
    });
}

/// Through the store: a durable `pairwise` stopped cleanly
/// (`Durable::commit`) after its input ended, then rebuilt, writes the
/// pairs of an uninterrupted run.
#[cfg(feature = "store")]
#[test]
fn a_durable_pairwise_committed_after_its_input_ended_loses_no_pair() {
    use timecast::store::{Offset, Store};
    let store = Store::temporary().unwrap();
    let input = store.log::<u64>("in").unwrap();
    for i in 0..6u64 {
        input.append(t(i as i64), &i).unwrap();
    }
    let out = store.log::<(u64, u64)>("pairs").unwrap();
    let run = || {
        let records = input.group("g").consume();
        let scope = records.scope().unwrap();
        let pairs = records.take(3).map(|r| r.unwrap().value).pairwise();
        let mut pairs = scope.durable("pairs", pairs).unwrap();
        block_on(async {
            while let Some(p) = pairs.next().await {
                out.append(Timestamp::UNIX_EPOCH, &p.unwrap()).unwrap();
            }
            pairs.commit().unwrap();
        });
    };
    run();
    run();
    let n = out.end() as usize;
    let got: Vec<(u64, u64)> = block_on(
        out.read(Offset::Start)
            .take(n)
            .map(|r| r.unwrap().value)
            .collect(),
    );
    assert_eq!(got, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
}

/// The end of the input emits the open windows. Restored from the state
/// saved after that, a window op counts a new event of an emitted window
/// as late (as a session op does) and emits no interval twice.
#[test]
fn windows_emitted_by_the_end_of_the_input_are_not_emitted_again() {
    fn twice<W>(name: &str, make: impl Fn(Feed<Ev>) -> W)
    where
        W: Stream<Item = Window<u32>> + Stateful<State = WindowedState<u32>> + Unpin,
    {
        let feed1 = Feed::new();
        let mut op1 = make(feed1.clone());
        feed1.push((t(1), 1));
        feed1.push((t(2), 2));
        feed1.close();
        let mut out = Vec::new();
        assert!(drain(&mut op1, &mut out));
        let feed2 = Feed::new();
        let mut op2 = make(feed2.clone());
        op2.restore(op1.state());
        feed2.push((t(3), 3));
        feed2.push((t(12), 12));
        feed2.close();
        assert!(drain(&mut op2, &mut out));
        let mut seen = HashSet::new();
        for w in &out {
            assert!(
                seen.insert((w.start, w.end)),
                "{name}: the window [{}, {}) is emitted twice: {out:?}",
                w.start,
                w.end
            );
        }
    }
    twice("tumbling", |f| f.tumbling(secs(10)));
    twice("hopping", |f| f.hopping(secs(10), secs(5)));
    twice("session", |f| f.session(secs(5)));
}

// ---------------------------------------------------------------------
// Stateful: at every split, for every combinator
// ---------------------------------------------------------------------

#[test]
fn every_op_resumes_exactly_from_a_state_saved_while_its_input_is_idle() {
    let id = |ts| ts;
    check_splits("pairwise", id, |f, _| f.pairwise());
    check_splits("accumulate", id, |f, _| {
        f.accumulate(|a, b| (a.0.max(b.0), a.1.wrapping_mul(31).wrapping_add(b.1)))
    });
    check_splits("accumulate_from", id, |f, _| {
        f.accumulate_from(Vec::new(), |mut acc: Vec<u32>, (_, v)| {
            acc.push(v);
            acc
        })
    });
    for (size, lat) in [(1, 0), (3, 0), (5, 2), (4, 10)] {
        check_splits(&format!("sliding {size} {lat}"), id, move |f, late| {
            f.sliding(secs(size))
                .allowed_lateness(secs(lat))
                .on_late(to_late(late))
        });
    }
    for (size, lat) in [(1, 0), (5, 0), (5, 3), (4, 20)] {
        check_splits(&format!("tumbling {size} {lat}"), id, move |f, late| {
            f.tumbling(secs(size))
                .allowed_lateness(secs(lat))
                .origin(t(2))
                .on_late(to_late(late))
        });
    }
    for (size, hop, lat) in [(6, 2, 0), (6, 2, 3), (2, 5, 0), (5, 5, 1), (10, 3, 4)] {
        check_splits(
            &format!("hopping {size}/{hop} {lat}"),
            id,
            move |f, late| {
                f.hopping(secs(size), secs(hop))
                    .allowed_lateness(secs(lat))
                    .on_late(to_late(late))
            },
        );
    }
    for (gap, lat) in [(1, 0), (3, 0), (3, 4), (6, 2)] {
        check_splits(&format!("session {gap} {lat}"), id, move |f, late| {
            f.session(secs(gap))
                .allowed_lateness(secs(lat))
                .on_late(to_late(late))
        });
    }
}

#[test]
fn windows_resume_exactly_at_the_ends_of_time() {
    const SPAN: i64 = 40_000_000_000;
    let near_max = |ts: Timestamp| {
        Timestamp::from_unix_nanos(i64::MAX - SPAN + ts.unix_nanos().rem_euclid(SPAN))
    };
    let near_min =
        |ts: Timestamp| Timestamp::from_unix_nanos(i64::MIN + ts.unix_nanos().rem_euclid(SPAN));
    for base in [&near_max as &dyn Fn(Timestamp) -> Timestamp, &near_min] {
        check_splits("tumbling", base, |f, late| {
            f.tumbling(secs(7))
                .allowed_lateness(secs(2))
                .on_late(to_late(late))
        });
        check_splits("hopping", base, |f, late| {
            f.hopping(secs(7), secs(3)).on_late(to_late(late))
        });
        check_splits("session", base, |f, late| {
            f.session(secs(3))
                .allowed_lateness(secs(1))
                .on_late(to_late(late))
        });
        check_splits("sliding", base, |f, late| {
            f.sliding(secs(4))
                .allowed_lateness(secs(1))
                .on_late(to_late(late))
        });
    }
}

#[test]
fn accumulators_resume_exactly_after_their_input_ended() {
    check_after_end("accumulate", |f| f.accumulate(|a, b| (b.0, a.1 ^ b.1)));
    check_after_end("accumulate_from", |f| {
        f.accumulate_from(Vec::new(), |mut acc: Vec<u32>, (_, v)| {
            acc.push(v);
            acc
        })
    });
}

/// A late output that refuses while `blocked`: the late event waiting in
/// `pending_late` is part of the state.
struct Gate {
    blocked: bool,
    got: Late,
}

impl LateOutput<u32> for Gate {
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        if self.blocked {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
    fn send(&mut self, time: Timestamp, value: u32) {
        self.got.borrow_mut().push((time, value));
    }
}

#[test]
fn a_late_event_waiting_for_its_output_survives_save_and_restore() {
    fn check<W: Stream + Stateful + Unpin>(name: &str, make: impl Fn(Feed<Ev>, Gate) -> W)
    where
        W::Item: PartialEq + std::fmt::Debug,
    {
        for seed in 0..10 {
            let evs = events(seed, 30);
            let (feed, late) = (Feed::new(), Late::default());
            let mut op = make(
                feed.clone(),
                Gate {
                    blocked: false,
                    got: late.clone(),
                },
            );
            evs.iter().for_each(|e| feed.push(*e));
            feed.close();
            let mut want = Vec::new();
            assert!(drain(&mut op, &mut want));
            for k in 0..=evs.len() {
                let (feed1, late1) = (Feed::new(), Late::default());
                let mut op1 = make(
                    feed1.clone(),
                    Gate {
                        blocked: true,
                        got: late1.clone(),
                    },
                );
                let mut got = Vec::new();
                for e in &evs[..k] {
                    feed1.push(*e);
                    drain(&mut op1, &mut got);
                }
                let saved = op1.state();
                drop(op1);
                // What op1 did not read is read again after the restart.
                evs[k..].iter().for_each(|e| feed1.push(*e));
                feed1.close();
                let mut op2 = make(
                    feed1.clone(),
                    Gate {
                        blocked: false,
                        got: late1.clone(),
                    },
                );
                op2.restore(saved);
                assert!(drain(&mut op2, &mut got));
                assert_eq!(got, want, "{name}: seed {seed}, split {k}");
                assert_eq!(
                    *late1.borrow(),
                    *late.borrow(),
                    "{name}: seed {seed}, split {k}"
                );
            }
        }
    }
    check("sliding", |f, g| {
        f.sliding(secs(4)).allowed_lateness(secs(1)).on_late(g)
    });
    check("tumbling", |f, g| {
        f.tumbling(secs(4)).allowed_lateness(secs(1)).on_late(g)
    });
    check("hopping", |f, g| f.hopping(secs(6), secs(2)).on_late(g));
    check("session", |f, g| f.session(secs(2)).on_late(g));
}

/// Restoring a window state into an op of another kind or size is outside
/// the law (and `WindowedState<T>` is one type for every kind, so
/// `CheckpointScope::durable` cannot tell): it must at least not panic.
#[test]
fn a_window_state_restored_into_another_configuration_does_not_panic() {
    type Run = Box<dyn Fn(&[Ev], Option<WindowedState<u32>>, bool) -> WindowedState<u32>>;
    fn mk<W>(f: impl Fn(Feed<Ev>) -> W + 'static) -> Run
    where
        W: Stream<Item = Window<u32>> + Stateful<State = WindowedState<u32>> + Unpin,
    {
        Box::new(move |evs, st, close| {
            let feed = Feed::new();
            let mut op = f(feed.clone());
            if let Some(st) = st {
                op.restore(st);
            }
            evs.iter().for_each(|e| feed.push(*e));
            if close {
                feed.close();
            }
            drain(&mut op, &mut Vec::new());
            op.state()
        })
    }
    let kinds: Vec<Run> = vec![
        mk(|f| f.tumbling(secs(10))),
        mk(|f| f.tumbling(secs(3)).allowed_lateness(secs(4))),
        mk(|f| f.hopping(secs(10), secs(3))),
        mk(|f| f.hopping(secs(2), secs(7)).allowed_lateness(secs(20))),
        mk(|f| f.session(secs(4))),
        mk(|f| f.session(secs(1)).allowed_lateness(secs(9))),
    ];
    let done = Cell::new(0);
    for seed in 0..8 {
        let evs = events(seed, 40);
        for a in &kinds {
            for b in &kinds {
                for k in [5, 17, 30] {
                    let st = a(&evs[..k], None, false);
                    b(&evs[k..], Some(st), true);
                    done.set(done.get() + 1);
                }
            }
        }
    }
    assert_eq!(done.get(), 8 * 36 * 3);
}

/// The end of the input closes everything up to the last window it
/// emitted, as a watermark past it would: with an allowed lateness, an
/// event of an empty window between two emitted ones, after a restore from
/// the state saved at the end, is late (the window after it is out
/// already, so no order of the output could match a run that had not
/// ended).
#[test]
fn the_end_of_the_input_closes_the_windows_up_to_the_last_it_emitted() {
    let lateness = secs(100);
    let mut first = futures::stream::iter([(t(1), 'a'), (t(25), 'b')])
        .tumbling(secs(10))
        .allowed_lateness(lateness);
    let emitted: Vec<_> = block_on(first.by_ref().map(|w| w.start).collect::<Vec<_>>());
    assert_eq!(emitted, [t(0), t(20)]);
    let mut resumed = futures::stream::iter([(t(15), 'c'), (t(31), 'd')])
        .tumbling(secs(10))
        .allowed_lateness(lateness);
    resumed.restore(first.state());
    let rest: Vec<_> = block_on(
        resumed
            .by_ref()
            .map(|w| (w.start, w.values().copied().collect::<String>()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(rest, [(t(30), "d".to_string())]);
    assert_eq!(resumed.late_count(), 1, "'c', in [10, 20)");
}
