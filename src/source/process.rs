//! [`process_stream`]: a handler bound to a past iterator and a live stream.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, Ready};
use std::marker::PhantomData;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;

use crate::time::{
    spawn_as, spawn_on, Core, EventHandler, JoinHandle, Key, Replay, SourceEvent, Target, TimerId,
    Timestamp,
};

/// A source with a stored past and a live continuation, such as a durable
/// log or a Kafka topic: [`ProcessStream::source`] replays the past as fast
/// as the loop goes, then follows the live part on the wall clock.
///
/// # Laws
///
/// The past is finite and in time order; the live part starts where the
/// past ends, with nothing skipped and nothing repeated between them.
///
/// # Examples
///
/// See [`ProcessStream::source`].
pub trait Source {
    /// What the source yields, with its timestamp.
    type Item;
    /// The stored part: what exists when the source starts.
    type Past: Iterator<Item = (Timestamp, Self::Item)>;
    /// What comes after the stored part.
    type Live: Stream<Item = (Timestamp, Self::Item)>;

    /// Splits the source into its past and its live part.
    fn into_parts(self) -> (Self::Past, Self::Live);
}

/// What a stream does with a late live event: one stamped before an event
/// or timer the loop has already dispatched. Every late event is counted in
/// [`EventLoop::late_events`](crate::EventLoop::late_events) whatever the
/// policy.
///
/// # Examples
///
/// A live event stamped 5 s that arrives once the loop has dispatched 10 s,
/// under each policy:
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use futures::stream;
/// use timecast::{process_stream, sleep_until, EventLoop, LatePolicy, Timestamp};
///
/// let handled = |policy: LatePolicy<u32>| {
///     let (t5, t10) = (Timestamp::from_unix_secs(5), Timestamp::from_unix_secs(10));
///     let live = stream::once(async move {
///         sleep_until(t10).await;
///         (t5, 7)
///     });
///     let seen = Rc::new(RefCell::new(Vec::new()));
///     let s = seen.clone();
///     let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
///     el.block_on(
///         process_stream(move |ts: Timestamp, v: u32| s.borrow_mut().push((ts, v, timecast::lateness())))
///             .live(live)
///             .on_late(policy),
///     );
///     assert_eq!(el.late_events(), 1);
///     seen.take()
/// };
/// let late = Some(std::time::Duration::from_secs(5));
/// assert_eq!(handled(LatePolicy::Deliver), [(Timestamp::from_unix_secs(5), 7, late)]);
/// assert_eq!(handled(LatePolicy::Drop), []);
/// assert_eq!(handled(LatePolicy::divert(|_ts, _v| {})), []);
/// ```
pub enum LatePolicy<T> {
    /// Deliver it to the handler with its own timestamp, at once (the
    /// default). [`lateness`](crate::lateness) tells the handler how late.
    Deliver,
    /// Drop it.
    Drop,
    /// Hand it to this closure instead of the handler.
    Divert(Box<dyn FnMut(Timestamp, T)>),
}

impl<T> LatePolicy<T> {
    /// [`LatePolicy::Divert`] to `f`.
    ///
    /// # Examples
    ///
    /// A live event stamped 5 s that arrives once the loop has dispatched
    /// 10 s goes to the closure, not to the handler:
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use futures::stream;
    /// use timecast::{process_stream, sleep_until, EventLoop, LatePolicy, Timestamp};
    ///
    /// let (t5, t10) = (Timestamp::from_unix_secs(5), Timestamp::from_unix_secs(10));
    /// let live = stream::once(async move {
    ///     sleep_until(t10).await;
    ///     (t5, 7)
    /// });
    /// let late = Rc::new(RefCell::new(Vec::new()));
    /// let diverted = late.clone();
    /// let policy = LatePolicy::divert(move |ts, v: u32| diverted.borrow_mut().push((ts, v)));
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// el.block_on(process_stream(|_ts: Timestamp, _v: u32| {}).live(live).on_late(policy));
    /// assert_eq!(*late.borrow(), [(t5, 7)]);
    /// assert_eq!(el.late_events(), 1);
    /// ```
    pub fn divert(f: impl FnMut(Timestamp, T) + 'static) -> Self {
        Self::Divert(Box::new(f))
    }
}

impl<T> fmt::Debug for LatePolicy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deliver => "Deliver",
            Self::Drop => "Drop",
            Self::Divert(_) => "Divert(..)",
        })
    }
}

pub(super) type Past<T> = std::iter::Empty<(Timestamp, T)>;
pub(super) type Live<T> = futures_util::stream::Empty<(Timestamp, T)>;

/// Binds `handler` to a stream of timestamped events: first a past iterator,
/// replayed in time order with every other source of the loop, then a live
/// stream. Returns a builder that is itself the future to spawn.
///
/// The handler is `FnMut(Timestamp, T)` or `FnMut(Timestamp, T) -> impl
/// Future<Output = ()>`; it receives the event time first. Its argument types
/// must be written out (`|ts: Timestamp, name: &str|`).
///
/// Past events are pulled lazily, one at a time, so memory stays
/// proportional to the number of streams, not events. A past out of time
/// order is dispatched as it comes, without moving the clock back.
///
/// A plain handler's past costs little more than a bare merge of the
/// iterators: when its next event comes up, the loop calls the handler
/// itself, with no poll of a task in between, and a run of events that
/// nothing else comes between is dispatched in a loop of its own. An async
/// handler's events each resume its task.
///
/// # Examples
///
/// ASP's first example: greeting past visitors, replayed instantly.
///
/// ```
/// use std::{cell::RefCell, collections::HashSet, rc::Rc, time::Duration};
/// use timecast::{now, process_stream, EventLoop, Timestamp};
///
/// let start = Timestamp::from_ymd_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let names = ["Jane", "John", "Sarah", "Paul", "Jane"];
/// let past = names.into_iter().enumerate().map(move |(i, n)| (start + Duration::from_secs(i as u64), n));
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let seen = RefCell::new(HashSet::new());
/// let out = log.clone();
/// let greet = move |ts: Timestamp, name: &'static str| {
///     assert_eq!(now(), ts);
///     let again = !seen.borrow_mut().insert(name);
///     out.borrow_mut().push(if again { format!("{ts} Hello again {name}!") } else { format!("{ts} Hello {name}.") });
/// };
///
/// let el = EventLoop::starting_at(start);
/// el.spawn(process_stream(greet).past(past));
/// el.run()?;
/// assert_eq!(log.borrow()[4], "2025-01-01T00:00:04Z Hello again Jane!");
/// # Ok::<_, timecast::TaskError>(())
/// ```
pub fn process_stream<T, M, H>(handler: H) -> ProcessStream<T, M, H>
where
    H: EventHandler<T, M>,
{
    ProcessStream {
        config: Some(Config {
            handler,
            past: std::iter::empty(),
            live: futures_util::stream::empty(),
            on_live_start: None,
            late: LatePolicy::Deliver,
        }),
        task: None,
        _marker: PhantomData,
    }
}

struct Config<T, H, P, L> {
    handler: H,
    past: P,
    live: L,
    on_live_start: Option<Box<dyn FnOnce()>>,
    late: LatePolicy<T>,
}

/// The builder and future returned by [`process_stream`]. Spawn it on an
/// [`EventLoop`](crate::EventLoop) (or await it inside one); it completes
/// when the past is exhausted and the live stream has ended. Dropping it
/// before then stops the source: no further event is handled.
///
/// Its source runs as a task of its own, named after the task that awaits
/// it: a panic of the handler, of `on_live_start` or of a late-event
/// closure is a [`TaskError`](crate::TaskError) naming the task the user
/// spawned, and ends that task too (its
/// [`JoinHandle`](crate::JoinHandle) resolves to the panic).
///
/// # Cancel safety
///
/// Dropping it stops the source where it is: the event being handled (if
/// its handler awaits) is abandoned, and the rest of the past and the live
/// stream are dropped unread. It is not a stream to resume: to stop at a
/// point in time and go on later, stop the input, not this future. The same
/// holds when the handler itself aborts the task that awaits it: no later
/// event is pulled or handled, and a stream stopped on its last past event
/// does not go live (`on_live_start` does not run).
///
/// # Panics
///
/// Configured (`past`, `live`, …) after it was first polled, or polled
/// again after it completed.
///
/// # Examples
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use futures::stream;
/// use timecast::{process_stream, EventLoop, Timestamp};
///
/// let total = Rc::new(Cell::new(0));
/// let t = total.clone();
/// let past = [(Timestamp::from_unix_secs(1), 1), (Timestamp::from_unix_secs(2), 2)];
/// let live = stream::iter([(Timestamp::from_unix_secs(3), 3)]);
/// let task = process_stream(move |_ts: Timestamp, v: i32| t.set(t.get() + v))
///     .past(past)
///     .live(live);
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let handle = el.spawn(task);
/// el.run()?;
/// assert_eq!(total.get(), 6);
/// assert!(handle.is_finished());
/// # Ok::<_, timecast::TaskError>(())
/// ```
#[must_use = "futures do nothing unless spawned or awaited"]
pub struct ProcessStream<T, M, H, P = Past<T>, L = Live<T>> {
    config: Option<Config<T, H, P, L>>,
    /// Once polled: the source's own task, which this future awaits.
    task: Option<SourceTask>,
    _marker: PhantomData<fn() -> M>,
}

/// The task a [`ProcessStream`] runs its source in.
///
/// A source runs as a task of its own so that nothing is polled beside
/// its event loop in the same task: its waits for the next event can then
/// take the inline fast path (`SourceEvent`), and a plain handler's past
/// can be driven by the loop on the task's behalf (`PastReplay`), keeping
/// the exact dispatch order even when the `ProcessStream` itself is awaited
/// inside a `join` or `select`.
struct SourceTask {
    core: Rc<Core>,
    handle: JoinHandle<()>,
}

impl<T, M, H, P, L> ProcessStream<T, M, H, P, L> {
    fn config(&mut self) -> &mut Config<T, H, P, L> {
        self.config
            .as_mut()
            .expect("configure a process_stream before it runs")
    }

    fn map<P2, L2>(
        mut self,
        f: impl FnOnce(Config<T, H, P, L>) -> Config<T, H, P2, L2>,
    ) -> ProcessStream<T, M, H, P2, L2> {
        let config = self
            .config
            .take()
            .expect("configure a process_stream before it runs");
        ProcessStream {
            config: Some(f(config)),
            task: None,
            _marker: PhantomData,
        }
    }

    /// The past: `(timestamp, value)` pairs in time order, replayed as fast
    /// as the loop goes (ASP's `past`).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{process_stream, Timestamp};
    /// let past = (0..3).map(|i| (Timestamp::from_unix_secs(i), i));
    /// let task = process_stream(|_ts: Timestamp, _v: i64| {}).past(past);
    /// timecast::EventLoop::new().simulated().block_on(task);
    /// ```
    pub fn past<I>(self, past: I) -> ProcessStream<T, M, H, I::IntoIter, L>
    where
        I: IntoIterator<Item = (Timestamp, T)>,
    {
        self.map(|c| Config {
            handler: c.handler,
            past: past.into_iter(),
            live: c.live,
            on_live_start: c.on_live_start,
            late: c.late,
        })
    }

    /// The live stream, read once the past is exhausted (ASP's `future`):
    /// any `Stream` of `(timestamp, value)`, for instance an
    /// [`AsyncStream`](crate::AsyncStream) consumer fed from another thread.
    /// Each event is dispatched at its own timestamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use timecast::{process_stream, AsyncStream, Timestamp};
    ///
    /// let feed = AsyncStream::with_capacity(16);
    /// let live = feed.subscribe();
    /// std::thread::spawn(move || {
    ///     for i in 0..3 {
    ///         feed.put_blocking((Timestamp::now(), i)).unwrap();
    ///     }
    /// });
    /// let sum = Rc::new(Cell::new(0));
    /// let total = sum.clone();
    /// let el = timecast::EventLoop::new();
    /// // Ends when the thread is done: dropping `feed` closes the stream.
    /// el.block_on(process_stream(move |_ts: Timestamp, v: i32| total.set(total.get() + v)).live(live));
    /// assert_eq!(sum.get(), 3); // 0 + 1 + 2
    /// ```
    pub fn live<S>(self, live: S) -> ProcessStream<T, M, H, P, S>
    where
        S: Stream<Item = (Timestamp, T)>,
    {
        self.map(|c| Config {
            handler: c.handler,
            past: c.past,
            live,
            on_live_start: c.on_live_start,
            late: c.late,
        })
    }

    /// Both parts at once from a [`Source`]: a durable log or a topic whose
    /// stored records are the past and whose later records are the live
    /// part, so a pipeline catches up in virtual time and then goes live.
    ///
    /// # Examples
    ///
    #[cfg_attr(
        feature = "store",
        doc = "A hand-made source; [`store::LogReader`](crate::store::LogReader) is the usual one."
    )]
    #[cfg_attr(
        not(feature = "store"),
        doc = "A hand-made source; `store::LogReader` (feature `store`) is the usual one."
    )]
    ///
    /// ```
    /// use futures::stream::{self, Iter};
    /// use timecast::{process_stream, source::Source, EventLoop, Timestamp};
    ///
    /// struct Numbers;
    /// impl Source for Numbers {
    ///     type Item = u32;
    ///     type Past = std::vec::IntoIter<(Timestamp, u32)>;
    ///     type Live = Iter<std::vec::IntoIter<(Timestamp, u32)>>;
    ///     fn into_parts(self) -> (Self::Past, Self::Live) {
    ///         let t = Timestamp::from_unix_secs;
    ///         (vec![(t(1), 1), (t(2), 2)].into_iter(), stream::iter(vec![(t(3), 3)]))
    ///     }
    /// }
    ///
    /// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
    /// el.block_on(process_stream(|ts: Timestamp, v: u32| println!("{ts:?} {v}")).source(Numbers));
    /// ```
    pub fn source<S>(self, source: S) -> ProcessStream<T, M, H, S::Past, S::Live>
    where
        S: Source<Item = T>,
    {
        let (past, live) = source.into_parts();
        self.map(|c| Config {
            handler: c.handler,
            past,
            live,
            on_live_start: c.on_live_start,
            late: c.late,
        })
    }

    /// Runs `callback` once, when the past is exhausted, before the first
    /// live event.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{process_stream, Timestamp};
    /// let task = process_stream(|_ts: Timestamp, _v: ()| {}).on_live_start(|| println!("** Running live **"));
    /// timecast::EventLoop::new().simulated().block_on(task);
    /// ```
    pub fn on_live_start(mut self, callback: impl FnOnce() + 'static) -> Self {
        self.config().on_live_start = Some(Box::new(callback));
        self
    }

    /// What to do with late live events (default: [`LatePolicy::Deliver`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{process_stream, AsyncStream, EventLoop, LatePolicy, Timestamp};
    ///
    /// let feed = AsyncStream::with_capacity(1);
    /// let live = feed.subscribe();
    /// let el = EventLoop::new();
    /// el.spawn(process_stream(|_ts: Timestamp, _v: u8| {}).live(live).on_late(LatePolicy::Drop));
    /// feed.close();
    /// el.run()?;
    /// # Ok::<_, timecast::TaskError>(())
    /// ```
    pub fn on_late(mut self, policy: LatePolicy<T>) -> Self {
        self.config().late = policy;
        self
    }
}

impl<T, M, H, P, L> Future for ProcessStream<T, M, H, P, L>
where
    T: 'static,
    M: 'static,
    H: EventHandler<T, M>,
    P: Iterator<Item = (Timestamp, T)> + 'static,
    L: Stream<Item = (Timestamp, T)> + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.task.is_none() {
            let config = self
                .config
                .take()
                .expect("process_stream polled after it completed");
            let core = crate::time::current_core("process_stream");
            // Named after the task awaiting it, for its errors: the task
            // the user spawned.
            let source = run(core.clone(), config);
            let handle = match core.current_label() {
                Some(label) => spawn_as(&core, label, source),
                None => spawn_on(&core, None, source),
            };
            self.task = Some(SourceTask { core, handle });
        }
        let task = self.task.as_mut().expect("just set");
        let outcome = std::task::ready!(Pin::new(&mut task.handle).poll(cx));
        let SourceTask { core, .. } = self.task.take().expect("polled");
        match outcome {
            Ok(()) => Poll::Ready(()),
            // The handler (or a callback) panicked, and the loop reported
            // it: this future's task ends with the same panic.
            Err(e) if e.is_panic() => core.rethrow(e.into_panic()),
            // Only when the loop drops its tasks, this one too.
            Err(_) => Poll::Ready(()),
        }
    }
}

impl<T, M, H, P, L> Drop for ProcessStream<T, M, H, P, L> {
    /// Cancels the source: dropping the future stops its task.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.handle.abort();
        }
    }
}

// The builder holds no pinned state: the source runs in a task of its own.
impl<T, M, H, P, L> Unpin for ProcessStream<T, M, H, P, L> {}

impl<T, M, H, P, L> fmt::Debug for ProcessStream<T, M, H, P, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessStream")
            .field("running", &self.task.is_some())
            .finish_non_exhaustive()
    }
}

/// Whether a handler's future is the one of a plain closure: ready at
/// once, with nothing left to do once the handler has been called.
fn plain<F: 'static>() -> bool {
    TypeId::of::<F>() == TypeId::of::<Ready<()>>()
}

/// The past of a source whose handler is plain (see [`plain`]), replayed by
/// the loop itself: when its next key fires, the loop calls
/// [`Replay::drive`] for the source's task, which calls the handler and
/// pulls the next events, with no poll of the task in between. Between
/// events it sits in the timer queue, as its task would.
struct PastReplay<T, M, H, P> {
    state: RefCell<PastState<T, H, P>>,
    /// Its key in the timer queue, while queued.
    timer: Cell<Option<TimerId>>,
    /// The past is exhausted.
    done: Cell<bool>,
    _marker: PhantomData<fn() -> M>,
}

struct PastState<T, H, P> {
    handler: H,
    /// Taken while events are dispatched, so that it stays in registers.
    past: Option<P>,
    rank: u64,
    /// The sequence number of the last event pulled.
    seq: u64,
    /// The event whose key is queued.
    queued: Option<(Timestamp, T)>,
}

impl<T, M, H, P> Replay for PastReplay<T, M, H, P>
where
    T: 'static,
    M: 'static,
    H: EventHandler<T, M>,
    P: Iterator<Item = (Timestamp, T)> + 'static,
{
    fn drive(self: Rc<Self>, core: &Core, task: usize) -> bool {
        self.timer.set(None);
        let mut state = self.state.borrow_mut();
        let PastState {
            handler,
            past,
            rank,
            seq,
            queued,
        } = &mut *state;
        // A plain handler's future is `Ready`: calling it did all the work.
        if let Some((time, value)) = queued.take() {
            drop(handler.call(time, value));
            // The handler aborted the task (a failing `try_process_stream`
            // handler does): it is cancelled on return, and the past is
            // not pulled further.
            if core.is_aborting() {
                return false;
            }
        }
        let next = past
            .as_mut()
            .expect("a replay's past is back after each drive")
            .next();
        let event = next.and_then(|(time, value)| {
            *seq += 1;
            let key = Key::data(time, *rank, *seq);
            // Not `dispatch_fast` first: its window closed when this
            // source's key was queued, and is seldom open again by now.
            if !core.dispatch_inline(key) {
                return Some((key, time, value));
            }
            drop(handler.call(time, value));
            if core.is_aborting() {
                return None;
            }
            // Nothing else came first: more events likely follow the
            // same way, in a loop of their own.
            let taken = past.take().expect("put back below");
            let (rest, event) = replay_inline(core, taken, handler, *rank, seq);
            *past = Some(rest);
            event
        });
        let Some((key, time, value)) = event else {
            self.done.set(true);
            return true;
        };
        *queued = Some((time, value));
        drop(state);
        let id = core
            .timers
            .borrow_mut()
            .insert(key, Target::Replay(task, self.clone()));
        self.timer.set(Some(id));
        false
    }
}

/// Dispatches the events of `past` into a plain handler for as long as
/// each can be dispatched at once ([`Core::dispatch_fast`],
/// [`Core::dispatch_inline`]), in a loop with no await. Takes the iterator
/// by value so that it and the sequence number stay in registers. Returns
/// it, and the first event it did not dispatch with its key (counted in
/// `seq`), or `None` once `past` is exhausted.
#[inline]
fn replay_inline<T, M, H, P>(
    core: &Core,
    mut past: P,
    handler: &mut H,
    rank: u64,
    seq: &mut u64,
) -> (P, Option<(Key, Timestamp, T)>)
where
    H: EventHandler<T, M>,
    P: Iterator<Item = (Timestamp, T)>,
{
    let window = core.inline_window();
    let mut n = *seq;
    let next = loop {
        let Some((time, value)) = past.next() else {
            break None;
        };
        n += 1;
        // `dispatch_fast`, with the window held here.
        if window.covers(time) {
            core.dispatch_event(time);
        } else {
            let key = Key::data(time, rank, n);
            if !(core.dispatch_fast(key) || core.dispatch_inline(key)) {
                break Some((key, time, value));
            }
        }
        // A plain handler's future is `Ready`: calling it did all the work.
        drop(handler.call(time, value));
        if core.is_aborting() {
            break None;
        }
    };
    *seq = n;
    (past, next)
}

/// Awaits a [`PastReplay`]: its first poll starts the replay, which the
/// loop then drives until the past is exhausted. Dropping it stops the
/// replay.
struct AwaitPast<'a, T, M, H, P> {
    core: &'a Core,
    replay: Rc<PastReplay<T, M, H, P>>,
    started: bool,
}

impl<T, M, H, P> Future for AwaitPast<'_, T, M, H, P>
where
    T: 'static,
    M: 'static,
    H: EventHandler<T, M>,
    P: Iterator<Item = (Timestamp, T)> + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::replace(&mut self.started, true) {
            return if self.replay.done.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        let core = self.core;
        let task = core.source_task(cx, "a past is replayed");
        if self.replay.clone().drive(core, task) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<T, M, H, P> Drop for AwaitPast<'_, T, M, H, P> {
    fn drop(&mut self) {
        if let Some(id) = self.replay.timer.take() {
            // Dropped once the queue is no longer borrowed: the target
            // holds the replay, with the user's handler and iterator.
            let target = self.core.timers.borrow_mut().remove(id);
            drop(target);
        }
    }
}

/// Counts the source as replaying until dropped or marked done.
struct PastOpen(Option<Rc<Core>>);

impl PastOpen {
    fn close(&mut self) {
        if let Some(core) = self.0.take() {
            core.past_done();
        }
    }
}

impl Drop for PastOpen {
    fn drop(&mut self) {
        self.close();
    }
}

async fn run<T, M, H, P, L>(core: Rc<Core>, config: Config<T, H, P, L>)
where
    T: 'static,
    M: 'static,
    H: EventHandler<T, M>,
    P: Iterator<Item = (Timestamp, T)> + 'static,
    L: Stream<Item = (Timestamp, T)>,
{
    let Config {
        mut handler,
        past,
        live,
        on_live_start,
        mut late,
    } = config;
    let rank = core.register_source();
    let mut open = PastOpen(Some(core.clone()));
    let mut seq = 0;
    if plain::<H::Future>() {
        let replay = Rc::new(PastReplay {
            state: RefCell::new(PastState {
                handler,
                past: Some(past),
                rank,
                seq,
                queued: None,
            }),
            timer: Cell::new(None),
            done: Cell::new(false),
            _marker: PhantomData,
        });
        AwaitPast {
            core: &core,
            replay: replay.clone(),
            started: false,
        }
        .await;
        let Ok(replay) = Rc::try_unwrap(replay) else {
            unreachable!("a finished replay is held by its task alone")
        };
        let state = replay.state.into_inner();
        handler = state.handler;
        seq = state.seq;
    } else {
        for (time, value) in past {
            seq += 1;
            let key = Key::data(time, rank, seq);
            // While nothing else can come first, the loop needs no round
            // trip: the event is dispatched here.
            if !core.dispatch_fast(key) {
                SourceEvent::new(&core, key).await;
            }
            handler.call(time, value).await;
            if core.is_aborting() {
                break;
            }
        }
    }
    if core.is_aborting() {
        // The handler of its last past event aborted the task, which is
        // cancelled when this poll returns: it goes no further, whatever
        // its handler (when the loop drives a plain one's replay,
        // `Core::run_replay` does not poll the task on).
        std::future::pending::<()>().await;
    }
    open.close();
    let mut key = |time| {
        seq += 1;
        Key::data(time, rank, seq)
    };
    if let Some(callback) = on_live_start {
        callback();
    }
    let mut live = pin!(live);
    while let Some((time, value)) = live.next().await {
        let last = core.last_dispatch.get();
        let lateness = (time < last).then(|| last.duration_since(time));
        if lateness.is_some() {
            core.count_late();
            match &mut late {
                LatePolicy::Deliver => {}
                LatePolicy::Drop => continue,
                LatePolicy::Divert(divert) => {
                    divert(time, value);
                    continue;
                }
            }
        }
        SourceEvent::new(&core, key(time)).await;
        core.set_lateness(lateness);
        handler.call(time, value).await;
        core.set_lateness(None::<Duration>);
        if core.is_aborting() {
            // Cancelled when this poll returns: no later event is taken.
            std::future::pending::<()>().await;
        }
    }
}
