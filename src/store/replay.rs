//! A log as a [`process_stream`](crate::process_stream) source: the stored
//! records are the past, replayed in virtual time; later appends are the
//! live part.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

use super::codec::Codec;
use super::{ExactlyOnce, LogReader, Record, StoreError};
use crate::source::Source;
use crate::sync::{Arc, Mutex};
use crate::time::Timestamp;

/// A reader of a log, as the parts of a source see it (sealed: public in
/// this private module, implemented here only).
pub trait Reader: Stream<Item = Result<Record<Self::Value>, StoreError>> + Unpin {
    type Value;
    /// The offset of the next record.
    fn position(&self) -> u64;
    /// The log's end now.
    fn end(&self) -> u64;
}

impl<T, C: Codec<T>> Reader for LogReader<T, C> {
    type Value = T;

    fn position(&self) -> u64 {
        LogReader::position(self)
    }

    fn end(&self) -> u64 {
        self.log().end()
    }
}

impl<T, C: Codec<T>> Reader for ExactlyOnce<T, C> {
    type Value = T;

    fn position(&self) -> u64 {
        self.reader().position()
    }

    fn end(&self) -> u64 {
        self.reader().log().end()
    }
}

/// A log read as a source yields what its reader yields: records, and
/// errors (a record that does not decode, one removed by retention) as
/// items too, so that a handler sees them, as with Kafka's reader.
type Item<T> = Result<Record<T>, StoreError>;

/// What the reader yielded, stamped: a record at its event time, an error
/// at `at`; `None` at the end of the part.
fn yielded<T>(polled: Poll<Option<Item<T>>>, at: Timestamp) -> Option<(Timestamp, Item<T>)> {
    match polled {
        Poll::Ready(Some(Ok(record))) => Some((record.ts, Ok(record))),
        Poll::Ready(Some(Err(e))) => Some((at, Err(e))),
        Poll::Ready(None) | Poll::Pending => None,
    }
}

/// The past of a log read as a source: the records stored when the source
/// started, in offset order. See [`LogReader`]'s [`Source`] implementation.
#[must_use = "iterators do nothing unless iterated"]
pub struct LogPast<R> {
    reader: Arc<Mutex<R>>,
    /// The log's end when the source started.
    until: u64,
    /// The event time of the last record yielded: an error's stamp.
    last: Timestamp,
}

/// The live part of a log read as a source: the records appended after
/// the source started, each woken by its append.
#[must_use = "streams do nothing unless polled"]
pub struct LogLive<R> {
    reader: Arc<Mutex<R>>,
}

impl<R> fmt::Debug for LogPast<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogPast")
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for LogLive<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLive").finish_non_exhaustive()
    }
}

impl<R: Reader> Iterator for LogPast<R> {
    type Item = (Timestamp, Item<R::Value>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut reader = self.reader.lock();
        if reader.position() >= self.until {
            return None;
        }
        // Stored records are ready at once; `Pending` means the log lost
        // them to a rollback, and the live part takes over.
        let mut cx = Context::from_waker(Waker::noop());
        let next = yielded(Pin::new(&mut *reader).poll_next(&mut cx), self.last);
        if let Some((ts, _)) = &next {
            self.last = *ts;
        }
        next
    }
}

impl<R: Reader> Stream for LogLive<R> {
    type Item = (Timestamp, Item<R::Value>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut reader = self.reader.lock();
        match Pin::new(&mut *reader).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            // An error live is stamped with the loop's clock.
            polled => Poll::Ready(yielded(polled, loop_now())),
        }
    }
}

/// The clock of the loop polling, or the wall clock off a loop.
fn loop_now() -> Timestamp {
    crate::time::try_with_core(|core| core.clock.get()).unwrap_or_else(Timestamp::now)
}

fn parts<R: Reader>(reader: R) -> (LogPast<R>, LogLive<R>) {
    let until = reader.end();
    let reader = Arc::new(Mutex::new(reader));
    (
        LogPast {
            reader: reader.clone(),
            until,
            last: Timestamp::MIN,
        },
        LogLive { reader },
    )
}

/// A reader is a [`process_stream`](crate::process_stream) source: the
/// records stored when the source starts are its past, replayed as fast as
/// the loop goes, each at its event time; the records appended later are
/// its live part. The handler gets each record as the reader yields it, a
/// `Result<Record<T>, StoreError>` (as from a Kafka topic's reader, so a
/// pipeline moves between them by changing the line that opens the topic).
///
/// An error is an item too, stamped with the last record's time in the
/// past and with the loop's clock once live: a record that does not decode
/// ([`StoreError::LogDecode`], naming the log and the offset; the source
/// then ends, unless the reader skips such records by
/// [`DecodeErrors::Skip`]), or one removed by retention before it was
/// read ([`StoreError::Trimmed`]).
///
/// [`DecodeErrors::Skip`]: super::DecodeErrors::Skip
///
/// # Examples
///
/// Two stored records replayed in virtual time, then one appended live:
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use timecast::{process_stream, store::{Offset, Record, Store, StoreError}, EventLoop, Timestamp};
///
/// let store = Store::temporary()?;
/// let log = store.log::<String>("activity")?;
/// log.append(Timestamp::from_unix_secs(10), &"swimming".into())?;
/// log.append(Timestamp::from_unix_secs(20), &"lunch".into())?;
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let task = el.spawn(
///     process_stream(move |ts: Timestamp, r: Result<Record<String>, StoreError>| {
///         let r = r.expect("every record decodes");
///         s.borrow_mut().push((ts.unix_secs(), r.offset, r.value));
///     })
///     .source(log.read(Offset::Start)),
/// );
/// let live = log.clone();
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(30)).await;
///     live.append(timecast::now(), &"reading".into()).expect("an append");
/// });
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(40)).await;
///     task.abort(); // the live part tails the log forever
/// });
/// el.run()?;
/// let expected = [(10, 0, "swimming"), (20, 1, "lunch"), (30, 2, "reading")];
/// assert_eq!(*seen.borrow(), expected.map(|(t, o, v)| (t, o, v.to_string())));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
impl<T: 'static, C: Codec<T>> Source for LogReader<T, C> {
    type Item = Result<Record<T>, StoreError>;
    type Past = LogPast<LogReader<T, C>>;
    type Live = LogLive<LogReader<T, C>>;

    fn into_parts(self) -> (Self::Past, Self::Live) {
        parts(self)
    }
}

/// An exactly-once reader is a [`process_stream`](crate::process_stream)
/// source too, with its checkpoints: every `n` records, and when the
/// replay catches up with the log's end, the group's offset is committed
/// with the store's pending batch. As [`LogReader`]'s source otherwise.
///
/// # Examples
///
/// ```
/// use timecast::{process_stream, store::{Record, Store, StoreError}, EventLoop, Timestamp};
///
/// let store = Store::temporary()?;
/// let (input, sum) = (store.log::<u64>("in")?, store.table::<u8, u64>("sum")?);
/// for i in 1..=4 {
///     input.append(Timestamp::from_unix_secs(i as i64), &i)?;
/// }
/// let total = sum.clone();
/// let el = EventLoop::starting_at(Timestamp::UNIX_EPOCH).simulated();
/// let task = el.spawn(
///     process_stream(move |_ts: Timestamp, r: Result<Record<u64>, StoreError>| {
///         let r = r.expect("every record decodes");
///         let s = total.get(&0).expect("a get").unwrap_or(0);
///         total.put(&0, &(s + r.value)).expect("a put");
///     })
///     .source(input.group("sum").consume().checkpoint_every(2)),
/// );
/// el.spawn(async move {
///     timecast::sleep_until(Timestamp::from_unix_secs(60)).await;
///     task.abort();
/// });
/// el.run()?;
/// assert_eq!(input.group("sum").committed()?, Some(4)); // caught up, committed
/// assert_eq!((sum.get(&0)?, store.pending()), (Some(10), 0));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
impl<T: 'static, C: Codec<T>> Source for ExactlyOnce<T, C> {
    type Item = Result<Record<T>, StoreError>;
    type Past = LogPast<ExactlyOnce<T, C>>;
    type Live = LogLive<ExactlyOnce<T, C>>;

    fn into_parts(self) -> (Self::Past, Self::Live) {
        parts(self)
    }
}
