//! [`Accumulate`] and [`AccumulateFrom`]: running folds.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_core::{FusedStream, Stream};

/// The stream returned by
/// [`StreamOps::accumulate`](super::StreamOps::accumulate): `x0, f(x0, x1),
/// f(f(x0, x1), x2), …`.
///
/// # Examples
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::ops::StreamOps;
///
/// let maxima: Vec<_> = block_on(stream::iter([3, 1, 4, 1, 5]).accumulate(i32::max).collect());
/// assert_eq!(maxima, [3, 3, 4, 4, 5]);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Accumulate<S: Stream, F> {
    stream: S,
    acc: Option<S::Item>,
    f: F,
    /// `f` is running, or panicked: then the stream ends (and reads no
    /// more of its input) rather than start a new fold.
    in_f: bool,
}

impl<S: Stream, F> Accumulate<S, F> {
    pub(super) fn new(stream: S, f: F) -> Self {
        Self {
            stream,
            acc: None,
            f,
            in_f: false,
        }
    }
}

// Neither the accumulator nor `f` is ever pinned.
impl<S: Stream + Unpin, F> Unpin for Accumulate<S, F> {}

/// The state is the accumulator: `None` before the first item (or if `f`
/// panicked: the stream ended).
impl<S, F> super::Stateful for Accumulate<S, F>
where
    S: Stream,
    S::Item: Clone,
{
    type State = Option<S::Item>;

    fn state(&self) -> Option<S::Item> {
        self.acc.clone()
    }

    fn restore(&mut self, state: Option<S::Item>) {
        self.acc = state;
        self.in_f = false;
    }
}

impl<S, F> Stream for Accumulate<S, F>
where
    S: Stream + Unpin,
    S::Item: Clone,
    F: FnMut(S::Item, S::Item) -> S::Item,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        // Ended by a panic of `f`: the input is left unread.
        if this.in_f {
            return Poll::Ready(None);
        }
        let Some(item) = ready!(Pin::new(&mut this.stream).poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let acc = match this.acc.take() {
            Some(acc) => {
                this.in_f = true;
                let acc = (this.f)(acc, item);
                this.in_f = false;
                acc
            }
            None => item,
        };
        Poll::Ready(Some(this.acc.insert(acc).clone()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, F> FusedStream for Accumulate<S, F>
where
    S: FusedStream + Unpin,
    S::Item: Clone,
    F: FnMut(S::Item, S::Item) -> S::Item,
{
    fn is_terminated(&self) -> bool {
        self.in_f || self.stream.is_terminated()
    }
}

impl<S: Stream + fmt::Debug, F> fmt::Debug for Accumulate<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accumulate")
            .field("stream", &self.stream)
            .field("started", &self.acc.is_some())
            .finish_non_exhaustive()
    }
}

/// The stream returned by
/// [`StreamOps::accumulate_from`](super::StreamOps::accumulate_from):
/// `f(init, x0), f(f(init, x0), x1), …`.
///
/// # Examples
///
/// ```
/// use futures::{executor::block_on, stream, StreamExt};
/// use timecast::ops::StreamOps;
///
/// let counts: Vec<usize> = block_on(stream::iter(["a", "bb", "ccc"]).accumulate_from(0, |n, s| n + s.len()).collect());
/// assert_eq!(counts, [1, 3, 6]);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AccumulateFrom<S, A, F> {
    stream: S,
    /// `None` only while `f` runs (if it panics, the stream ends, and
    /// reads no more of its input).
    acc: Option<A>,
    f: F,
}

impl<S, A, F> AccumulateFrom<S, A, F> {
    pub(super) fn new(stream: S, init: A, f: F) -> Self {
        Self {
            stream,
            acc: Some(init),
            f,
        }
    }
}

impl<S: Unpin, A, F> Unpin for AccumulateFrom<S, A, F> {}

/// The state is the accumulator (`None` only if `f` panicked).
impl<S, A: Clone, F> super::Stateful for AccumulateFrom<S, A, F> {
    type State = Option<A>;

    fn state(&self) -> Option<A> {
        self.acc.clone()
    }

    fn restore(&mut self, state: Option<A>) {
        self.acc = state;
    }
}

impl<S, A, F> Stream for AccumulateFrom<S, A, F>
where
    S: Stream + Unpin,
    A: Clone,
    F: FnMut(A, S::Item) -> A,
{
    type Item = A;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A>> {
        let this = self.get_mut();
        // Ended by a panic of `f`: the input is left unread.
        if this.acc.is_none() {
            return Poll::Ready(None);
        }
        let Some(item) = ready!(Pin::new(&mut this.stream).poll_next(cx)) else {
            return Poll::Ready(None);
        };
        let Some(acc) = this.acc.take() else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(this.acc.insert((this.f)(acc, item)).clone()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, A, F> FusedStream for AccumulateFrom<S, A, F>
where
    S: FusedStream + Unpin,
    A: Clone,
    F: FnMut(A, S::Item) -> A,
{
    fn is_terminated(&self) -> bool {
        self.acc.is_none() || self.stream.is_terminated()
    }
}

impl<S: fmt::Debug, A, F> fmt::Debug for AccumulateFrom<S, A, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccumulateFrom")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}
