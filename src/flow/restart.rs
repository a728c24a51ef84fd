//! [`Restart`]: when a pipeline is rebuilt, after how long, and how often.

use std::collections::VecDeque;
use std::time::Duration;

use crate::time::Timestamp;

/// Which ends of a pipeline lead to a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// After an error, a panic, or a normal end (aiopype's `run_always`,
    /// OTP's `permanent`).
    Always,
    /// After an error or a panic only (OTP's `transient`).
    OnFailure,
    /// Never (OTP's `temporary`).
    Never,
}

/// A pipeline's restart policy: when it is rebuilt from its factory, the
/// capped exponential backoff before each rebuild, and the most restarts
/// allowed within a period (Erlang/OTP's supervisor intensity).
///
/// - **When**: [`always`](Self::always) restarts after any end, normal or
///   not (a source that is meant to run forever and stopped);
///   [`on_failure`](Self::on_failure), the default, after an error or a
///   panic only;
///   [`never`](Self::never) not at all.
/// - **Backoff** ([`backoff(min, max)`](Self::backoff), default 1 s to
///   60 s): the first restart waits `min`, each consecutive one twice as
///   long as the one before, at most `max`, all on the loop's clock
///   (instant in [`simulated`](crate::EventLoop::simulated) time). The
///   delay goes back to `min` after a run that lasted at least `max`.
/// - **Limit** ([`max_restarts(n)`](Self::max_restarts), default none,
///   and [`within(period)`](Self::within), default forever): an end that
///   would make more than `n` restarts within the last `period` (counted
///   at the ends, on the loop's clock) is final: the pipeline is reported
///   failed, and the flow goes on with the others.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::flow::Restart;
///
/// let policy = Restart::on_failure()
///     .backoff(Duration::from_millis(100), Duration::from_secs(10))
///     .max_restarts(5)
///     .within(Duration::from_secs(60));
/// assert_eq!(policy.delay(0), Duration::from_millis(100));
/// assert_eq!(policy.delay(3), Duration::from_millis(800));
/// assert_eq!(policy.delay(20), Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    when: When,
    min: Duration,
    max: Duration,
    /// At most this many restarts…
    limit: Option<u32>,
    /// …within this period (`None`: ever).
    period: Option<Duration>,
}

impl Default for Restart {
    /// [`Restart::on_failure`]: a pipeline that returns `Ok` is done.
    fn default() -> Self {
        Self::on_failure()
    }
}

impl Restart {
    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    fn new(when: When) -> Self {
        Self {
            when,
            min: Self::MIN,
            max: Self::MAX,
            limit: None,
            period: None,
        }
    }

    /// Restart after every end, normal or not: aiopype's `run_always`, for
    /// pipelines meant to run forever (a replay under it replays again).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Restart;
    /// assert!(Restart::always().restarts_after(true));
    /// ```
    pub fn always() -> Self {
        Self::new(When::Always)
    }

    /// Restart after an error or a panic; a pipeline that returns `Ok` is
    /// done. The default.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Restart;
    /// assert_eq!(Restart::on_failure(), Restart::default());
    /// assert!(Restart::on_failure().restarts_after(false));
    /// assert!(!Restart::on_failure().restarts_after(true));
    /// ```
    pub fn on_failure() -> Self {
        Self::new(When::OnFailure)
    }

    /// Never restart: a failure is reported and the pipeline is failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Restart;
    /// assert!(!Restart::never().restarts_after(false));
    /// ```
    pub fn never() -> Self {
        Self::new(When::Never)
    }

    /// Waits `min` before the first restart, doubling for each consecutive
    /// one up to `max`, on the loop's clock. A `max` below `min` is taken
    /// as `min`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Restart;
    ///
    /// let p = Restart::always().backoff(Duration::from_secs(1), Duration::from_secs(8));
    /// let delays: Vec<_> = (0..6).map(|k| p.delay(k).as_secs()).collect();
    /// assert_eq!(delays, [1, 2, 4, 8, 8, 8]);
    /// ```
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min = min;
        self.max = max.max(min);
        self
    }

    /// Allows at most `n` restarts, over the pipeline's life or, with
    /// [`within`](Self::within), within any period of that length: the
    /// end that would exceed it is final (Erlang/OTP's intensity). `n = 0`
    /// makes every end final.
    ///
    /// The supervisor counts the restarts over the pipeline's life; with
    /// `within` it keeps the instants of those in the period, one entry per
    /// instant (at most `n`).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Restart;
    ///
    /// let p = Restart::on_failure().max_restarts(3);
    /// assert_eq!((p.limit(), p.period()), (Some(3), None));
    /// ```
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Counts the restarts of [`max_restarts`](Self::max_restarts) within
    /// the last `period` of the loop's time only (Erlang/OTP's period):
    /// `max_restarts(5).within(60 s)` allows 5 restarts a minute. A
    /// restart decided exactly `period` before an end is out of it; those
    /// decided at the end's own instant always count, so a zero period
    /// limits the restarts at one instant (as a zero backoff makes them).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Restart;
    ///
    /// let p = Restart::on_failure().max_restarts(3).within(Duration::from_secs(60));
    /// assert_eq!(p.period(), Some(Duration::from_secs(60)));
    /// ```
    pub fn within(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The limit set by [`max_restarts`](Self::max_restarts), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::flow::Restart::always().limit(), None);
    /// ```
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// The period set by [`within`](Self::within), if any.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::flow::Restart::always().period(), None);
    /// ```
    pub fn period(&self) -> Option<Duration> {
        self.period
    }

    /// Whether an end of the pipeline leads to a restart (before the
    /// limit is applied): `ok` is a normal end, `false` an error or a panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::flow::Restart;
    /// assert!(Restart::always().restarts_after(true));
    /// assert!(Restart::always().restarts_after(false));
    /// ```
    pub fn restarts_after(&self, ok: bool) -> bool {
        match self.when {
            When::Always => true,
            When::OnFailure => !ok,
            When::Never => false,
        }
    }

    /// The wait before a restart that follows `consecutive` earlier
    /// restarts in a row: `min · 2^consecutive`, at most `max` (computed
    /// without overflow for any `consecutive`: it doubles until it reaches
    /// `max`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use timecast::flow::Restart;
    ///
    /// let p = Restart::always().backoff(Duration::from_millis(10), Duration::from_secs(1));
    /// assert_eq!(p.delay(0), Duration::from_millis(10));
    /// assert_eq!(p.delay(1), Duration::from_millis(20));
    /// assert_eq!(p.delay(u32::MAX), Duration::from_secs(1));
    ///
    /// // It keeps doubling past 32 steps, up to the cap.
    /// let p = Restart::always().backoff(Duration::from_nanos(1), Duration::from_secs(3600));
    /// assert_eq!(p.delay(40), Duration::from_nanos(1 << 40));
    /// assert_eq!(p.delay(60), Duration::from_secs(3600));
    /// ```
    pub fn delay(&self, consecutive: u32) -> Duration {
        const NANOS_PER_SEC: u128 = 1_000_000_000;
        // In nanoseconds, saturating: `min` is below 2^94 ns, so the
        // product is exact until it passes any `max`.
        let factor = 1u128.checked_shl(consecutive).unwrap_or(u128::MAX);
        let nanos = self
            .min
            .as_nanos()
            .saturating_mul(factor)
            .min(self.max.as_nanos());
        // At most `max`, so the seconds fit a `u64`.
        Duration::new(
            (nanos / NANOS_PER_SEC) as u64,
            (nanos % NANOS_PER_SEC) as u32,
        )
    }
}

/// What the supervisor does after a pipeline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Rebuild it after this wait.
    Restart(Duration),
    /// It is done for good (policy, or a normal end under `on_failure`).
    Stop,
    /// It failed and the limit (or `never`) forbids a restart.
    GiveUp,
}

/// The restart bookkeeping of one pipeline.
///
/// # Invariants
///
/// With a limit and a period, `recent` holds the restarts decided within
/// the last period and at the latest end's instant, oldest first, one entry
/// per instant with its count (so a burst at one instant is one entry),
/// and `counted` is the sum of their counts. With a limit and no period,
/// `counted` counts every restart and `recent` is empty: nothing grows
/// with the restarts. `consecutive` counts restarts since the delay was
/// last reset.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: Restart,
    consecutive: u32,
    recent: VecDeque<(Timestamp, u64)>,
    counted: u64,
}

impl Backoff {
    pub(crate) fn new(policy: Restart) -> Self {
        Self {
            policy,
            consecutive: 0,
            recent: VecDeque::new(),
            counted: 0,
        }
    }

    /// Decides what follows a run that started at `started` and ended at
    /// `now`, normally if `ok`.
    pub(crate) fn decide(&mut self, ok: bool, started: Timestamp, now: Timestamp) -> Decision {
        if !self.policy.restarts_after(ok) {
            return if ok { Decision::Stop } else { Decision::GiveUp };
        }
        if let Some(n) = self.policy.limit {
            if let Some(period) = self.policy.period {
                // The period is `(now - period, now]`, and always holds
                // `now`: with a zero period, the restarts decided at this
                // very instant still count.
                let horizon = now.saturating_sub(period);
                while let Some(&(t, count)) = self.recent.front() {
                    if t > horizon || t >= now {
                        break;
                    }
                    self.recent.pop_front();
                    self.counted -= count;
                }
            }
            if self.counted >= u64::from(n) {
                return Decision::GiveUp;
            }
            self.counted += 1;
            if self.policy.period.is_some() {
                match self.recent.back_mut() {
                    Some((t, count)) if *t == now => *count += 1,
                    _ => self.recent.push_back((now, 1)),
                }
            }
        }
        if now.saturating_sub(self.policy.max) >= started {
            self.consecutive = 0;
        }
        let delay = self.policy.delay(self.consecutive);
        self.consecutive = self.consecutive.saturating_add(1);
        Decision::Restart(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bookkeeping_does_not_grow_with_the_restarts() {
        // No period: a count.
        let mut b = Backoff::new(
            Restart::always()
                .backoff(Duration::ZERO, Duration::ZERO)
                .max_restarts(u32::MAX),
        );
        for i in 0..100_000 {
            assert!(matches!(
                b.decide(false, secs(i), secs(i)),
                Decision::Restart(_)
            ));
        }
        assert_eq!((b.recent.len(), b.counted), (0, 100_000));
        // A period: a burst at one instant is one entry.
        let policy = Restart::always()
            .backoff(Duration::ZERO, Duration::ZERO)
            .max_restarts(100_001)
            .within(Duration::from_secs(3600));
        let mut b = Backoff::new(policy);
        for _ in 0..100_000 {
            assert!(matches!(
                b.decide(false, secs(5), secs(5)),
                Decision::Restart(_)
            ));
        }
        assert_eq!((b.recent.len(), b.counted), (1, 100_000));
        assert!(matches!(
            b.decide(false, secs(6), secs(6)),
            Decision::Restart(_)
        ));
        assert_eq!(b.decide(false, secs(7), secs(7)), Decision::GiveUp);
        // Past the period, the burst leaves it at once.
        assert!(matches!(
            b.decide(false, secs(3605), secs(3605)),
            Decision::Restart(_)
        ));
        assert_eq!((b.recent.len(), b.counted), (2, 2));
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp::from_unix_secs(s)
    }

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_long_run() {
        let policy = Restart::always().backoff(Duration::from_secs(1), Duration::from_secs(8));
        let mut b = Backoff::new(policy);
        let d: Vec<_> = (0..6).map(|i| b.decide(false, secs(i), secs(i))).collect();
        let want = [1, 2, 4, 8, 8, 8].map(|s| Decision::Restart(Duration::from_secs(s)));
        assert_eq!(d, want);
        // A run of 8 s (the cap) resets the delay.
        assert_eq!(
            b.decide(false, secs(100), secs(108)),
            Decision::Restart(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_limit_counts_restarts_within_the_period() {
        let policy = Restart::on_failure()
            .max_restarts(2)
            .within(Duration::from_secs(10));
        let mut b = Backoff::new(policy);
        assert!(matches!(
            b.decide(false, secs(0), secs(0)),
            Decision::Restart(_)
        ));
        assert!(matches!(
            b.decide(false, secs(5), secs(5)),
            Decision::Restart(_)
        ));
        assert_eq!(b.decide(false, secs(9), secs(9)), Decision::GiveUp);
        // The restart at 0 s is out of the period at 10 s.
        assert!(matches!(
            b.decide(false, secs(10), secs(10)),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn a_zero_period_counts_the_restarts_at_the_same_instant() {
        let policy = Restart::on_failure().max_restarts(2).within(Duration::ZERO);
        let mut b = Backoff::new(policy);
        assert!(matches!(
            b.decide(false, secs(0), secs(0)),
            Decision::Restart(_)
        ));
        assert!(matches!(
            b.decide(false, secs(0), secs(0)),
            Decision::Restart(_)
        ));
        assert_eq!(b.decide(false, secs(0), secs(0)), Decision::GiveUp);
        // A later instant starts afresh.
        assert!(matches!(
            b.decide(false, secs(1), secs(1)),
            Decision::Restart(_)
        ));
    }

    #[test]
    fn policies_decide_by_the_kind_of_end() {
        let now = secs(0);
        assert_eq!(
            Backoff::new(Restart::never()).decide(false, now, now),
            Decision::GiveUp
        );
        assert_eq!(
            Backoff::new(Restart::never()).decide(true, now, now),
            Decision::Stop
        );
        assert_eq!(
            Backoff::new(Restart::on_failure()).decide(true, now, now),
            Decision::Stop
        );
        assert!(matches!(
            Backoff::new(Restart::always()).decide(true, now, now),
            Decision::Restart(_)
        ));
        let zero = Restart::always().max_restarts(0);
        assert_eq!(Backoff::new(zero).decide(true, now, now), Decision::GiveUp);
    }
}
