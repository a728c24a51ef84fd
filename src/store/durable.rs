//! [`CheckpointScope`] and [`Durable`]: operator state (windows,
//! accumulators) saved in an exactly-once reader's checkpoints.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::{de::DeserializeOwned, Serialize};

use super::codec::{Binary, Codec};
use super::{ExactlyOnce, StoreError, Table};
use crate::ops::Stateful;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// What an [`ExactlyOnce`] reader shares with its durable operators.
///
/// The reader asks for a checkpoint (`ask`) when one is due; each durable
/// operator then saves its state at the end of each of its polls, so that
/// between two polls its last save is its state. The outermost durable
/// operator, at the start of a poll (no operator mid-poll, the records the
/// reader yielded all taken into the operators' states, the pipeline's
/// writes for the items yielded all made), commits once every durable
/// operator has saved since the ask. (The reader, polled inside the
/// operators, cannot commit: an operator mid-poll may have taken items
/// since it saved.)
#[derive(Default)]
pub(super) struct ScopeShared {
    /// The durable operators alive.
    durables: AtomicUsize,
    /// A checkpoint was asked for.
    due: AtomicBool,
    /// Counts the asks: an operator saving for a new one counts in `saved`.
    round: AtomicU64,
    /// The durable operators that saved since the ask.
    saved: AtomicUsize,
    /// The reader's position: the next record it yields.
    position: AtomicU64,
    /// How many durable operators are mid-poll.
    polling: AtomicUsize,
    /// A durable operator took a checkpoint the reader has not seen.
    checkpointed: AtomicBool,
}

impl ScopeShared {
    pub(super) fn has_durables(&self) -> bool {
        self.durables.load(Ordering::Relaxed) > 0
    }

    /// A checkpoint was asked for and every durable operator saved since.
    pub(super) fn is_ready(&self) -> bool {
        self.due.load(Ordering::Relaxed)
            && self.saved.load(Ordering::Relaxed) >= self.durables.load(Ordering::Relaxed)
    }

    pub(super) fn ask(&self) {
        if !self.due.swap(true, Ordering::Relaxed) {
            self.saved.store(0, Ordering::Relaxed);
            self.round.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn set_position(&self, position: u64) {
        self.position.store(position, Ordering::Relaxed);
    }

    pub(super) fn done(&self) {
        self.due.store(false, Ordering::Relaxed);
    }

    /// Whether a durable operator took a checkpoint since the last call.
    pub(super) fn take_checkpointed(&self) -> bool {
        self.checkpointed.swap(false, Ordering::Relaxed)
    }

    /// The round an operator saving now saves for, if one is asked for.
    fn due_round(&self) -> Option<u64> {
        self.due
            .load(Ordering::Relaxed)
            .then(|| self.round.load(Ordering::Relaxed))
    }

    /// An operator saved for `round`, for the first time if it last saved
    /// for `last`.
    fn saved(&self, round: u64, last: &mut u64) {
        if *last != round {
            *last = round;
            self.saved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The checkpoints of an [`ExactlyOnce`] reader, for the operators
/// downstream of it whose state must be part of them: windows,
/// accumulators, anything [`Stateful`]. [`durable`](Self::durable) wraps
/// such an operator; at each checkpoint its state is saved in the store's
/// batch, committed atomically with the group's offset and the pipeline's
/// other writes, and restored when the pipeline is built again after a
/// restart. User code assembles no transaction.
///
/// # The rules
///
/// - A durable operator reads, directly or through other combinators,
///   from the reader of its scope: the records the reader yielded are
///   exactly those in the operator's state when it is saved.
/// - Build the pipeline the same way after a restart (same operators,
///   sizes and names): each operator's saved state is restored by name.
/// - Stopping is dropping: the work since the last checkpoint is
///   discarded ([`Store::rollback`](super::Store::rollback)) and done
///   again after the restart. When the reader catches up with its log, a
///   checkpoint is taken at once, so an idle pipeline has committed
///   everything.
///
/// # Examples
///
/// A sum per 10-second tumbling window, its open window in the checkpoint;
/// stopped after 25 records and built again, it resumes exactly:
///
/// ```
/// use std::time::Duration;
/// use futures::{executor::block_on, StreamExt};
/// use timecast::{ops::StreamOps, store::{Store, StoreError}, Timestamp};
///
/// let store = Store::temporary()?;
/// let input = store.log::<u64>("in")?;
/// for i in 0..40 {
///     input.append(Timestamp::from_unix_secs(i), &(i as u64))?;
/// }
/// let sums = store.log::<u64>("sums")?;
/// let run = |windows_out: usize, stop_cleanly: bool| -> Result<(), StoreError> {
///     let records = input.group("sums").consume().checkpoint_every(5);
///     let scope = records.scope()?;
///     let windows = records
///         .map(|r| r.map(|r| (r.ts, r.value)).expect("the input decodes"))
///         .tumbling(Duration::from_secs(10));
///     let mut windows = scope.durable("windows", windows)?;
///     block_on(async {
///         for _ in 0..windows_out {
///             let w = windows.next().await.expect("a window")?;
///             sums.append(w.end, &w.values().sum())?;
///         }
///         if stop_cleanly {
///             windows.commit()?;
///         }
///         Ok(())
///     })
/// };
/// // Dropped after two windows: back to its last checkpoint, taken after
/// // the first window, with the second window's first record in its state.
/// run(2, false)?;
/// run(2, true)?; // resumes there: the second and third windows
/// let mut reader = sums.read(timecast::store::Offset::Start);
/// let got: Vec<u64> = block_on(reader.by_ref().take(3).map(|r| r.map(|r| r.value)).collect::<Vec<_>>())
///     .into_iter()
///     .collect::<Result<_, _>>()?;
/// assert_eq!(got, [45, 145, 245]);
/// # Ok::<_, StoreError>(())
/// ```
#[derive(Clone)]
pub struct CheckpointScope {
    shared: Arc<ScopeShared>,
    store: super::Store,
    /// Commits the group's offset in the pending batch.
    commit_offset: Arc<dyn Fn(u64) -> Result<(), StoreError> + Send + Sync>,
    /// `timecast.log/{log}/{group}/state/`: the tables' name prefix.
    prefix: String,
}

impl fmt::Debug for CheckpointScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointScope")
            .field("tables", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl<T: 'static, C: Codec<T>> ExactlyOnce<T, C> {
    /// The scope of this reader's checkpoints, to make operators
    /// downstream of it durable: see [`CheckpointScope`].
    ///
    /// # Errors
    ///
    /// Infallible today; a `Result` so that opening the scope's tables may
    /// report the database's errors.
    ///
    /// # Examples
    ///
    /// See [`CheckpointScope`].
    ///
    /// ```
    /// let store = timecast::store::Store::temporary()?;
    /// let records = store.log::<u8>("l")?.group("g").consume();
    /// let _scope = records.scope()?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn scope(&self) -> Result<CheckpointScope, StoreError> {
        let group = self.group();
        let committing = group.clone();
        Ok(CheckpointScope {
            shared: self.scope_shared().clone(),
            store: group.log_shared().store().clone(),
            commit_offset: Arc::new(move |offset| committing.commit(offset)),
            prefix: format!(
                "timecast.log/{}/{}/state/",
                group.log_shared().name(),
                group.name()
            ),
        })
    }
}

impl CheckpointScope {
    /// Makes `operator` durable under the name `name` (unique in this
    /// scope): its state saved at each checkpoint, and restored now if a
    /// checkpoint saved one.
    ///
    /// # Errors
    ///
    /// [`StoreError::TableTypes`] if the state saved under `name` is of
    /// another type (the pipeline changed: use another name);
    /// [`StoreError::Decode`] if it does not decode; [`StoreError::Io`] if
    /// the database fails.
    ///
    /// # Examples
    ///
    /// See [`CheckpointScope`].
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::ops::StreamOps;
    ///
    /// let store = timecast::store::Store::temporary()?;
    /// let records = store.log::<u64>("l")?.group("g").consume();
    /// let scope = records.scope()?;
    /// let totals = records.map(|r| r.map(|r| r.value).unwrap_or(0)).accumulate(|a, b| a + b);
    /// let _totals = scope.durable("totals", totals)?;
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn durable<W>(&self, name: &str, mut operator: W) -> Result<Durable<W>, StoreError>
    where
        W: Stateful,
        W::State: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let table = self
            .store
            .open_table::<u8, W::State, _>(&format!("{}{name}", self.prefix), Binary)?;
        if let Some(state) = table.get(&0)? {
            operator.restore(state);
        }
        self.shared.durables.fetch_add(1, Ordering::Relaxed);
        Ok(Durable {
            operator,
            table,
            scope: self.clone(),
            saved_round: 0,
        })
    }
}

/// An operator whose state is part of an exactly-once reader's
/// checkpoints: a `Stream` of the operator's items, or of the error of
/// saving its state. Made by [`CheckpointScope::durable`].
///
/// # Examples
///
/// See [`CheckpointScope`].
///
/// ```
/// use futures::StreamExt;
/// use timecast::ops::StreamOps;
///
/// let store = timecast::store::Store::temporary()?;
/// let records = store.log::<u64>("l")?.group("g").consume();
/// let scope = records.scope()?;
/// let pairs = scope.durable("pairs", records.map(|r| r.map(|r| r.value).unwrap_or(0)).pairwise())?;
/// # drop(pairs);
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Durable<W: Stateful> {
    operator: W,
    table: Table<u8, W::State>,
    scope: CheckpointScope,
    /// The last round this operator saved for (rounds count from 1).
    saved_round: u64,
}

impl<W: Stateful> fmt::Debug for Durable<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("saved_round", &self.saved_round)
            .finish_non_exhaustive()
    }
}

impl<W> Durable<W>
where
    W: Stateful,
    W::State: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Takes a checkpoint now: saves the operator's state and commits it
    /// with the group's offset (after the last record the reader yielded)
    /// and the store's pending batch. Call it to stop cleanly (after the
    /// input ended, or before a shutdown) without redoing the work since
    /// the last checkpoint. With several durable operators in one scope,
    /// call it on the outermost: the others' states are those of the last
    /// automatic checkpoint, so prefer one durable operator per scope
    /// when stopping this way.
    ///
    /// # Errors
    ///
    /// As [`Table::put`] and [`Store::commit`](super::Store::commit).
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::{ops::StreamOps, store::Store, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let input = store.log::<u64>("l")?;
    /// input.append(Timestamp::UNIX_EPOCH, &5)?;
    /// let records = input.group("g").consume();
    /// let scope = records.scope()?;
    /// let totals = records.take(1).map(|r| r.map(|r| r.value).unwrap_or(0)).accumulate(|a, b| a + b);
    /// let mut totals = scope.durable("totals", totals)?;
    /// assert_eq!(futures::executor::block_on(totals.next()).transpose()?, Some(5));
    /// totals.commit()?;
    /// assert_eq!(input.group("g").committed()?, Some(1));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.table.put(&0, &self.operator.state())?;
        self.scope.checkpoint()
    }
}

impl CheckpointScope {
    /// Commits the group's offset (after the last record the reader
    /// yielded) with the store's pending batch.
    fn checkpoint(&self) -> Result<(), StoreError> {
        (self.commit_offset)(self.shared.position.load(Ordering::Relaxed))?;
        self.store.commit()?;
        self.shared.done();
        self.shared.checkpointed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl<W: Stateful> Drop for Durable<W> {
    fn drop(&mut self) {
        self.scope.shared.durables.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<W: Stateful + Unpin> Unpin for Durable<W> {}

impl<W> Stream for Durable<W>
where
    W: Stream + Stateful + Unpin,
    W::State: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Item = Result<W::Item, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let shared = &this.scope.shared;
        // The outermost operator, between two of its items: every durable
        // operator's last save is its state, and holds exactly what the
        // reader has yielded.
        let outermost = shared.polling.fetch_add(1, Ordering::Relaxed) == 0;
        if outermost && shared.is_ready() {
            if let Err(e) = this.scope.checkpoint() {
                shared.polling.fetch_sub(1, Ordering::Relaxed);
                return Poll::Ready(Some(Err(e)));
            }
        }
        let polled = Pin::new(&mut this.operator).poll_next(cx);
        shared.polling.fetch_sub(1, Ordering::Relaxed);
        // Saved while a checkpoint is due, after each poll: until the next
        // poll, the save is the state.
        if let Some(round) = shared.due_round() {
            if let Err(e) = this.table.put(&0, &this.operator.state()) {
                return Poll::Ready(Some(Err(e)));
            }
            shared.saved(round, &mut this.saved_round);
        }
        polled.map(|item| item.map(Ok))
    }
}
