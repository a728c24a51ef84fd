//! [`Checkpoint`]: Slipstream's downtime detection and recovery between a
//! dependent stream and the streams it depends on, persisted in a store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use serde::{de::DeserializeOwned, Serialize};

use super::{Binary, Store, StoreError, Table};
use std::sync::Arc;

use crate::sync::Mutex;
use crate::time::Timestamp;

/// A downtime check: `(dependent marker, dependency marker)` → the downtime,
/// if the dependency is down.
type DowntimeCheck = Arc<dyn Fn(Timestamp, Timestamp) -> Option<Duration> + Send + Sync>;
/// A recovery check: `(dependent marker, dependency marker)` → caught up?
type RecoveryCheck = Arc<dyn Fn(Timestamp, Timestamp) -> bool + Send + Sync>;
/// A downtime or recovery callback.
type Callback<S> = Arc<
    dyn Fn(Checkpoint<S>, DependencyState<S>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync,
>;

/// A stream a [`Checkpoint`]'s dependent depends on, with its downtime
/// threshold and (optionally) custom downtime and recovery checks.
///
/// The name is the dependency's key in the store: keep it once data is
/// stored.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use timecast::store::Dependency;
///
/// let weather = Dependency::new("weather").downtime_threshold(Duration::from_secs(3600));
/// assert_eq!(weather.name(), "weather");
/// ```
#[derive(Clone)]
pub struct Dependency {
    name: String,
    threshold: Duration,
    downtime_check: Option<DowntimeCheck>,
    recovery_check: Option<RecoveryCheck>,
}

impl fmt::Debug for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dependency")
            .field("name", &self.name)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Dependency {
    /// A dependency named `name`, with Slipstream's default threshold of 10
    /// minutes.
    ///
    /// # Examples
    ///
    /// ```
    /// let d = timecast::store::Dependency::new("weather");
    /// assert_eq!(d.threshold(), std::time::Duration::from_secs(600));
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Dependency {
            name: name.into(),
            threshold: Duration::from_secs(600),
            downtime_check: None,
            recovery_check: None,
        }
    }

    /// The dependency is down once the dependent's marker is more than `d`
    /// past the dependency's last heartbeat marker.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let d = timecast::store::Dependency::new("w").downtime_threshold(Duration::from_secs(5));
    /// assert_eq!(d.threshold(), Duration::from_secs(5));
    /// ```
    pub fn downtime_threshold(mut self, d: Duration) -> Self {
        self.threshold = d;
        self
    }

    /// Replaces the default downtime check (the dependent's marker minus
    /// the dependency's, if above the threshold). `check(dependent_marker,
    /// dependency_marker)` returns the downtime if the dependency is down.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Dependency;
    /// // Down as soon as the dependent is ahead at all.
    /// let d = Dependency::new("w").downtime_check(|dependent, dependency| {
    ///     dependent.checked_duration_since(dependency).filter(|d| !d.is_zero())
    /// });
    /// # let _ = d;
    /// ```
    pub fn downtime_check(
        mut self,
        check: impl Fn(Timestamp, Timestamp) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.downtime_check = Some(Arc::new(check));
        self
    }

    /// Replaces the default recovery check (the dependency's marker is past
    /// the dependent's). `check(dependent_marker, dependency_marker)`
    /// returns whether the dependency caught up.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Dependency;
    /// let d = Dependency::new("w").recovery_check(|dependent, dependency| dependency >= dependent);
    /// # let _ = d;
    /// ```
    pub fn recovery_check(
        mut self,
        check: impl Fn(Timestamp, Timestamp) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.recovery_check = Some(Arc::new(check));
        self
    }

    /// The dependency's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(timecast::store::Dependency::new("w").name(), "w");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The downtime threshold.
    ///
    /// # Examples
    ///
    /// See [`downtime_threshold`](Self::downtime_threshold).
    ///
    /// ```
    /// let _ = timecast::store::Dependency::new("w").threshold();
    /// ```
    pub fn threshold(&self) -> Duration {
        self.threshold
    }

    fn downtime(&self, dependent: Timestamp, dependency: Timestamp) -> Option<Duration> {
        match &self.downtime_check {
            Some(check) => check(dependent, dependency),
            None => dependent
                .checked_duration_since(dependency)
                .filter(|d| *d > self.threshold),
        }
    }

    fn recovered(&self, dependent: Timestamp, dependency: Timestamp) -> bool {
        match &self.recovery_check {
            Some(check) => check(dependent, dependency),
            None => dependency > dependent,
        }
    }
}

/// What a [`Checkpoint`] knows of one dependency: the dependent's state
/// saved for it, its last heartbeat marker, and whether it is down. Given
/// to the downtime and recovery callbacks.
///
/// # Examples
///
/// ```
/// use timecast::{store::{Checkpoint, Dependency}, EventLoop, Timestamp};
///
/// let c = Checkpoint::<u64>::new("activity").dependency(Dependency::new("weather"));
/// EventLoop::new().simulated().block_on(c.check_pulse(Timestamp::from_unix_secs(60), 8))?;
/// let weather = c.dependency_state("weather")?;
/// assert_eq!(weather.checkpoint_state(), Some(&8));
/// assert_eq!(weather.checkpoint_marker(), Some(Timestamp::from_unix_secs(60)));
/// assert!(!weather.is_down());
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyState<S> {
    name: String,
    checkpoint_state: Option<S>,
    checkpoint_marker: Option<Timestamp>,
    is_down: bool,
}

impl<S> DependencyState<S> {
    /// The dependency's name.
    ///
    /// # Examples
    ///
    /// See [`DependencyState`].
    ///
    /// ```
    /// # use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("d"));
    /// assert_eq!(c.dependency_state("d")?.name(), "d");
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dependent's state saved for this dependency: at its last
    /// heartbeat while up, and frozen at the check that found it down (so
    /// that the recovery callback can go back to it).
    ///
    /// # Examples
    ///
    /// See [`DependencyState`].
    ///
    /// ```
    /// # use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("d"));
    /// assert_eq!(c.dependency_state("d")?.checkpoint_state(), None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn checkpoint_state(&self) -> Option<&S> {
        self.checkpoint_state.as_ref()
    }

    /// The marker of the dependency's last heartbeat (or of the first
    /// pulse, before any heartbeat).
    ///
    /// # Examples
    ///
    /// See [`DependencyState`].
    ///
    /// ```
    /// # use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("d"));
    /// assert_eq!(c.dependency_state("d")?.checkpoint_marker(), None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn checkpoint_marker(&self) -> Option<Timestamp> {
        self.checkpoint_marker
    }

    /// Whether the dependency is down.
    ///
    /// # Examples
    ///
    /// See [`DependencyState`].
    ///
    /// ```
    /// # use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("d"));
    /// assert!(!c.dependency_state("d")?.is_down());
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn is_down(&self) -> bool {
        self.is_down
    }
}

/// What [`Checkpoint::heartbeat`] returns.
///
/// # Examples
///
/// See [`Checkpoint`].
///
/// ```
/// let h = timecast::store::Heartbeat { is_late: false, dependent_marker: None, dependency_marker: None };
/// assert!(!h.is_late);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// The dependency is (still) down: it has not caught up with the
    /// dependent.
    pub is_late: bool,
    /// The dependent's last marker.
    pub dependent_marker: Option<Timestamp>,
    /// This heartbeat's marker.
    pub dependency_marker: Option<Timestamp>,
}

/// The configuration of a checkpoint.
struct Config<S> {
    name: String,
    dependencies: Vec<Dependency>,
    store: Option<Store>,
    on_downtime: Option<Callback<S>>,
    on_recovery: Option<Callback<S>>,
}

impl<S> Clone for Config<S> {
    fn clone(&self) -> Self {
        Config {
            name: self.name.clone(),
            dependencies: self.dependencies.clone(),
            store: self.store.clone(),
            on_downtime: self.on_downtime.clone(),
            on_recovery: self.on_recovery.clone(),
        }
    }
}

/// A dependency's persisted record: state, marker (ns), down.
type DepRecord<S> = (Option<S>, Option<i64>, bool);

/// The tables a checkpoint persists in.
struct Tables<S> {
    /// 0 → the dependent's (state, marker).
    dependent: Table<u8, (Option<S>, Option<i64>)>,
    dependencies: Table<String, DepRecord<S>>,
}

/// The live state of a checkpoint.
struct State<S> {
    loaded: bool,
    state: Option<S>,
    marker: Option<Timestamp>,
    /// By the index of the dependency in the configuration.
    dependencies: Vec<DependencyState<S>>,
    /// The paused streams to wake on recovery.
    paused: Vec<Waker>,
}

/// Slipstream's `Checkpoint`: tracks a dependent stream against the
/// streams it depends on, by comparing markers (event times). The
/// dependent calls [`check_pulse`](Self::check_pulse) with each event's
/// time and the state to go back to (a log offset, typically); each
/// dependency calls [`heartbeat`](Self::heartbeat) with its events' times.
///
/// - A pulse whose marker is more than a dependency's threshold past that
///   dependency's last heartbeat marker finds it down: the pulse returns the
///   downtime, the dependency's checkpoint state is frozen at the
///   dependent's current state, streams wrapped by
///   [`pausable`](Self::pausable) pause, and the downtime callback runs
///   (once per downtime).
/// - A heartbeat of a down dependency whose marker passes the dependent's
///   marker ends the downtime: once no dependency is down, the paused
///   streams resume and the recovery callback runs with the saved state
///   (typically to seek the dependent back to it and send corrections).
/// - With [`store`](Self::store), every change is written to the store
///   (in its pending batch, see [`CommitPolicy`](super::CommitPolicy)),
///   and a checkpoint of the same name continues where it stopped.
///
/// A clone is a handle to the same checkpoint: the markers and states are
/// shared. The configuration (dependencies, callbacks, store) is each
/// handle's own, copied by `clone` and changed by the builder methods for
/// the handle they return; configure the checkpoint before cloning it.
/// A dependency added to a handle after the checkpoint was first used
/// joins the shared state then (with its stored record, if any).
///
/// # Examples
///
/// Slipstream's docstring sequence:
///
/// ```
/// use std::time::Duration;
/// use timecast::{store::{Checkpoint, Dependency}, EventLoop, Timestamp};
///
/// let at = |h, m| Timestamp::from_ymd_hms(2025, 1, 1, h, m, 0).unwrap();
/// let c = Checkpoint::<u64>::new("dependent").dependency(Dependency::new("dependency"));
/// EventLoop::new().simulated().block_on(async move {
///     assert_eq!(c.check_pulse(at(10, 0), 8).await?, None);
///     assert!(!c.heartbeat(at(10, 30), None).await?.is_late);
///     assert_eq!(c.check_pulse(at(11, 0), 9).await?, Some(Duration::from_secs(1800)));
///     assert!(c.heartbeat(at(10, 45), None).await?.is_late);
///     assert!(!c.heartbeat(at(11, 1), None).await?.is_late);
///     Ok::<_, timecast::store::StoreError>(())
/// })?;
/// # Ok::<_, timecast::store::StoreError>(())
/// ```
pub struct Checkpoint<S> {
    config: Arc<Config<S>>,
    state: Arc<Mutex<State<S>>>,
}

impl<S> Clone for Checkpoint<S> {
    fn clone(&self) -> Self {
        Checkpoint {
            config: self.config.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S> fmt::Debug for Checkpoint<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("name", &self.config.name)
            .field("dependencies", &self.config.dependencies)
            .finish_non_exhaustive()
    }
}

impl<S> Checkpoint<S>
where
    S: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A checkpoint named `name` (its key in the store: keep it once data
    /// is stored), with no dependency yet and in memory only.
    ///
    /// # Examples
    ///
    /// See [`Checkpoint`].
    ///
    /// ```
    /// let c = timecast::store::Checkpoint::<u64>::new("activity");
    /// assert_eq!(c.name(), "activity");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Checkpoint {
            config: Arc::new(Config {
                name: name.into(),
                dependencies: Vec::new(),
                store: None,
                on_downtime: None,
                on_recovery: None,
            }),
            state: Arc::new(Mutex::new(State {
                loaded: false,
                state: None,
                marker: None,
                dependencies: Vec::new(),
                paused: Vec::new(),
            })),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut Config<S>)) -> Self {
        // A fresh configuration: handles cloned before keep the old one.
        let mut config = (*self.config).clone();
        f(&mut config);
        self.config = Arc::new(config);
        self
    }

    /// The checkpoint's name.
    ///
    /// # Examples
    ///
    /// See [`new`](Self::new).
    ///
    /// ```
    /// assert_eq!(timecast::store::Checkpoint::<u8>::new("c").name(), "c");
    /// ```
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Adds a dependency (a dependency of the same name is replaced).
    ///
    /// # Examples
    ///
    /// See [`Checkpoint`].
    ///
    /// ```
    /// use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("a")).dependency(Dependency::new("b"));
    /// assert!(c.dependency_state("b").is_ok());
    /// ```
    pub fn dependency(self, dependency: Dependency) -> Self {
        self.configure(|c| {
            c.dependencies.retain(|d| d.name != dependency.name);
            c.dependencies.push(dependency);
        })
    }

    /// Persists the checkpoint in `store` (tables
    /// `timecast.checkpoint/{name}` and `timecast.checkpoint/{name}/dependencies`),
    /// and continues from what is stored there under this name.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::{Checkpoint, Dependency, Store}, EventLoop, Timestamp};
    ///
    /// let store = Store::temporary()?;
    /// let c = Checkpoint::<u64>::new("c").dependency(Dependency::new("d")).store(&store);
    /// EventLoop::new().simulated().block_on(c.check_pulse(Timestamp::from_unix_secs(1), 7))?;
    /// // A restart: the same name, the same store.
    /// let again = Checkpoint::<u64>::new("c").dependency(Dependency::new("d")).store(&store);
    /// assert_eq!(again.dependency_state("d")?.checkpoint_state(), Some(&7));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn store(self, store: &Store) -> Self {
        let store = store.clone();
        self.configure(|c| c.store = Some(store))
    }

    /// Runs `callback(checkpoint, dependency)` when a pulse finds a
    /// dependency down (once per downtime), after pausing the
    /// [`pausable`](Self::pausable) streams. For a synchronous callback see
    /// [`on_downtime_sync`](Self::on_downtime_sync).
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Checkpoint;
    /// let c = Checkpoint::<u64>::new("c").on_downtime(|_c, d| async move {
    ///     println!("\tThe stream is automatically paused ({} is down).", d.name());
    /// });
    /// # let _ = c;
    /// ```
    pub fn on_downtime<F, Fut>(self, callback: F) -> Self
    where
        F: Fn(Checkpoint<S>, DependencyState<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let callback: Callback<S> = Arc::new(move |c, d| Box::pin(callback(c, d)));
        self.configure(|c| c.on_downtime = Some(callback))
    }

    /// [`on_downtime`](Self::on_downtime) with a synchronous callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Checkpoint;
    /// let c = Checkpoint::<u64>::new("c").on_downtime_sync(|_c, d| println!("{} is down", d.name()));
    /// # let _ = c;
    /// ```
    pub fn on_downtime_sync<F>(self, callback: F) -> Self
    where
        F: Fn(Checkpoint<S>, DependencyState<S>) + Send + Sync + 'static,
    {
        self.on_downtime(move |c, d| {
            callback(c, d);
            std::future::ready(())
        })
    }

    /// Runs `callback(checkpoint, dependency)` when a heartbeat ends the
    /// last downtime, after resuming the [`pausable`](Self::pausable)
    /// streams; `dependency.checkpoint_state()` is the dependent's state
    /// when the dependency went down. For a synchronous callback see
    /// [`on_recovery_sync`](Self::on_recovery_sync).
    ///
    /// # Examples
    ///
    /// See the example `slipstream_sync`.
    ///
    /// ```
    /// use timecast::store::Checkpoint;
    /// let c = Checkpoint::<u64>::new("c").on_recovery(|_c, d| async move {
    ///     println!("going back to offset {:?}", d.checkpoint_state());
    /// });
    /// # let _ = c;
    /// ```
    pub fn on_recovery<F, Fut>(self, callback: F) -> Self
    where
        F: Fn(Checkpoint<S>, DependencyState<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let callback: Callback<S> = Arc::new(move |c, d| Box::pin(callback(c, d)));
        self.configure(|c| c.on_recovery = Some(callback))
    }

    /// [`on_recovery`](Self::on_recovery) with a synchronous callback.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::store::Checkpoint;
    /// let c = Checkpoint::<u64>::new("c").on_recovery_sync(|_c, d| println!("{} is back", d.name()));
    /// # let _ = c;
    /// ```
    pub fn on_recovery_sync<F>(self, callback: F) -> Self
    where
        F: Fn(Checkpoint<S>, DependencyState<S>) + Send + Sync + 'static,
    {
        self.on_recovery(move |c, d| {
            callback(c, d);
            std::future::ready(())
        })
    }

    fn tables(&self) -> Result<Option<Tables<S>>, StoreError> {
        let Some(store) = &self.config.store else {
            return Ok(None);
        };
        let name = &self.config.name;
        if name.contains('/') {
            return Err(StoreError::ReservedName {
                name: name.chars().take(64).collect(),
                of: "checkpoint",
            });
        }
        Ok(Some(Tables {
            dependent: store.open_table(&format!("timecast.checkpoint/{name}"), Binary)?,
            dependencies: store
                .open_table(&format!("timecast.checkpoint/{name}/dependencies"), Binary)?,
        }))
    }

    /// Loads the stored state once, and the stored state of each of this
    /// handle's dependencies that the shared state does not hold yet (one
    /// added to a clone after the first load), reading the store with no
    /// lock held.
    fn load(&self) -> Result<(), StoreError> {
        let (loaded, missing): (bool, Vec<&Dependency>) = {
            let s = self.state.lock();
            let missing: Vec<_> = self
                .config
                .dependencies
                .iter()
                .filter(|d| Self::position(&s, &d.name).is_none())
                .collect();
            if s.loaded && missing.is_empty() {
                return Ok(());
            }
            (s.loaded, missing)
        };
        let mut dependent = None;
        let mut dependencies = Vec::new();
        let tables = self.tables()?;
        // The dependent's record is read once.
        if let (false, Some(tables)) = (loaded, &tables) {
            if let Some((state, marker)) = tables.dependent.get(&0)? {
                dependent = Some((state, marker.map(Timestamp::from_unix_nanos)));
            }
        }
        for d in missing {
            let stored = match &tables {
                Some(tables) => tables.dependencies.get(&d.name)?,
                None => None,
            };
            let (state, marker, down) = stored.unwrap_or((None, None, false));
            dependencies.push(DependencyState {
                name: d.name.clone(),
                checkpoint_state: state,
                checkpoint_marker: marker.map(Timestamp::from_unix_nanos),
                is_down: down,
            });
        }
        let mut state = self.state.lock();
        if !state.loaded {
            state.loaded = true;
            if let Some((s, marker)) = dependent {
                state.state = s;
                state.marker = marker;
            }
        }
        for d in dependencies {
            // Unless another handle added it meanwhile.
            if Self::position(&state, &d.name).is_none() {
                state.dependencies.push(d);
            }
        }
        Ok(())
    }

    /// Where the shared state holds the dependency `name`: every handle's
    /// dependencies, once loaded (see [`load`](Self::load)), in the order
    /// they were first loaded. An entry is never removed.
    fn position(state: &State<S>, name: &str) -> Option<usize> {
        state.dependencies.iter().position(|d| d.name == name)
    }

    /// [`position`](Self::position) of one of this handle's dependencies,
    /// after [`load`](Self::load).
    fn held(state: &State<S>, name: &str) -> usize {
        Self::position(state, name).expect("a handle's dependencies are loaded before use")
    }

    /// Writes the dependent's state and the given dependencies to the store.
    fn persist(
        &self,
        dependent: bool,
        dependencies: &[DependencyState<S>],
    ) -> Result<(), StoreError> {
        let Some(tables) = self.tables()? else {
            return Ok(());
        };
        if dependent {
            let (state, marker) = {
                let s = self.state.lock();
                (s.state.clone(), s.marker)
            };
            tables
                .dependent
                .put(&0, &(state, marker.map(Timestamp::unix_nanos)))?;
        }
        for d in dependencies {
            tables.dependencies.put(
                &d.name,
                &(
                    d.checkpoint_state.clone(),
                    d.checkpoint_marker.map(Timestamp::unix_nanos),
                    d.is_down,
                ),
            )?;
        }
        Ok(())
    }

    fn index(&self, name: Option<&str>) -> Result<usize, StoreError> {
        let deps = &self.config.dependencies;
        let found = match name {
            Some(name) => deps.iter().position(|d| d.name == name),
            None if deps.len() == 1 => Some(0),
            None => None,
        };
        found.ok_or_else(|| StoreError::UnknownDependency {
            checkpoint: self.config.name.clone(),
            dependency: name.map(str::to_string),
            known: deps.iter().map(|d| d.name.clone()).collect(),
        })
    }

    /// What the checkpoint knows of the dependency `name`.
    ///
    /// (Named `dependency_state`, not `dependency`, which adds a
    /// dependency.)
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownDependency`] if the checkpoint has no
    /// dependency `name`; the store's errors when loading it.
    ///
    /// # Examples
    ///
    /// See [`DependencyState`].
    ///
    /// ```
    /// use timecast::store::{Checkpoint, Dependency, StoreError};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("weather"));
    /// assert!(matches!(c.dependency_state("wether"), Err(StoreError::UnknownDependency { .. })));
    /// ```
    pub fn dependency_state(&self, name: &str) -> Result<DependencyState<S>, StoreError> {
        self.index(Some(name))?;
        self.load()?;
        let s = self.state.lock();
        Ok(s.dependencies[Self::held(&s, name)].clone())
    }

    /// The dependent's last state and marker.
    ///
    /// # Errors
    ///
    /// The store's errors when loading the checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// use timecast::{store::Checkpoint, EventLoop, Timestamp};
    /// let c = Checkpoint::<u8>::new("c");
    /// EventLoop::new().simulated().block_on(c.check_pulse(Timestamp::UNIX_EPOCH, 3))?;
    /// assert_eq!(c.state()?, (Some(3), Some(Timestamp::UNIX_EPOCH)));
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn state(&self) -> Result<(Option<S>, Option<Timestamp>), StoreError> {
        self.load()?;
        let s = self.state.lock();
        Ok((s.state.clone(), s.marker))
    }

    /// Whether any dependency is down (then [`pausable`](Self::pausable)
    /// streams are paused).
    ///
    /// # Errors
    ///
    /// The store's errors when loading the checkpoint.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!timecast::store::Checkpoint::<u8>::new("c").is_paused()?);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn is_paused(&self) -> Result<bool, StoreError> {
        self.load()?;
        Ok(self.state.lock().dependencies.iter().any(|d| d.is_down))
    }

    /// The dependent's pulse: records `marker` (its event's time) and
    /// `state` (what to go back to, typically the event's log offset), then
    /// checks each dependency. A dependency without any heartbeat yet gets
    /// this state and marker as its checkpoint (Slipstream's first pulse).
    ///
    /// Returns the largest downtime found: `marker` less a dependency's
    /// last heartbeat marker, for each dependency where that is more than
    /// its downtime threshold (as Slipstream's default `downtime_check`).
    /// A dependency marked down whose late heartbeats brought it back
    /// within the threshold, but not yet past the dependent's marker, stays
    /// down (and the dependent paused) and is not counted. The first
    /// pulse that finds a dependency down freezes its checkpoint
    /// state at `state`, pauses the [`pausable`](Self::pausable) streams
    /// and runs the downtime callback.
    ///
    /// # Errors
    ///
    /// The store's errors when loading or persisting the checkpoint.
    ///
    /// The future owns a handle to the checkpoint (it is `'static`).
    ///
    /// # Cancel safety
    ///
    /// The state is recorded before the first await: dropping the future
    /// during a callback leaves the checkpoint consistent, but the callback
    /// may not have finished.
    ///
    /// # Examples
    ///
    /// See [`Checkpoint`].
    ///
    /// ```
    /// use timecast::{store::Checkpoint, EventLoop, Timestamp};
    /// let c = Checkpoint::<u8>::new("no dependencies");
    /// let d = EventLoop::new().simulated().block_on(c.check_pulse(Timestamp::UNIX_EPOCH, 0))?;
    /// assert_eq!(d, None);
    /// # Ok::<_, timecast::store::StoreError>(())
    /// ```
    pub fn check_pulse(
        &self,
        marker: Timestamp,
        state: S,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + 'static {
        let this = self.clone();
        async move { this.pulse(marker, state).await }
    }

    async fn pulse(&self, marker: Timestamp, state: S) -> Result<Option<Duration>, StoreError> {
        self.load()?;
        // The markers to compare, with no lock held during the checks.
        let (snapshot, first) = {
            let mut s = self.state.lock();
            s.state = Some(state.clone());
            s.marker = Some(marker);
            let mut first = Vec::new();
            for d in &mut s.dependencies {
                if d.checkpoint_marker.is_none() {
                    d.checkpoint_state = Some(state.clone());
                    d.checkpoint_marker = Some(marker);
                    first.push(d.clone());
                }
            }
            // This handle's dependencies: it knows their thresholds.
            let snapshot: Vec<_> = self
                .config
                .dependencies
                .iter()
                .map(|config| {
                    let d = &s.dependencies[Self::held(&s, &config.name)];
                    (config, d.checkpoint_marker, d.is_down)
                })
                .collect();
            (snapshot, first)
        };
        self.persist(true, &first)?;
        let mut downtime = None;
        for (config, dep_marker, was_down) in snapshot {
            let Some(dep_marker) = dep_marker else {
                continue;
            };
            let Some(down_for) = config.downtime(marker, dep_marker) else {
                continue;
            };
            downtime = downtime.max(Some(down_for));
            if was_down {
                continue;
            }
            let went_down = {
                let mut s = self.state.lock();
                let i = Self::held(&s, &config.name);
                let d = &mut s.dependencies[i];
                d.is_down = true;
                d.checkpoint_state = Some(state.clone());
                d.clone()
            };
            self.persist(false, std::slice::from_ref(&went_down))?;
            if let Some(callback) = &self.config.on_downtime {
                callback(self.clone(), went_down).await;
            }
        }
        Ok(downtime)
    }

    /// A dependency's heartbeat: records `marker` (its event's time) as
    /// the dependency's checkpoint marker (and, while it is up, the
    /// dependent's current state as its checkpoint state). If it was down,
    /// checks whether it recovered; once no dependency is down, resumes the
    /// [`pausable`](Self::pausable) streams and runs the recovery callback.
    ///
    /// `dependency` names the dependency: `None` is enough when the
    /// checkpoint has exactly one, as in Slipstream.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownDependency`] if the checkpoint has no such
    /// dependency (or `None` with several); the store's errors when loading
    /// or persisting the checkpoint.
    ///
    /// # Cancel safety
    ///
    /// As [`check_pulse`](Self::check_pulse).
    ///
    /// # Examples
    ///
    /// See [`Checkpoint`].
    ///
    /// ```
    /// use timecast::{store::{Checkpoint, Dependency, StoreError}, EventLoop, Timestamp};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("weather"));
    /// let el = EventLoop::new().simulated();
    /// let h = el.block_on(c.heartbeat(Timestamp::UNIX_EPOCH, "weather"))?;
    /// assert!(!h.is_late);
    /// let unknown = el.block_on(c.heartbeat(Timestamp::UNIX_EPOCH, "wether"));
    /// assert!(matches!(unknown, Err(StoreError::UnknownDependency { .. })));
    /// # Ok::<_, StoreError>(())
    /// ```
    pub fn heartbeat<'a>(
        &self,
        marker: Timestamp,
        dependency: impl Into<Option<&'a str>>,
    ) -> impl Future<Output = Result<Heartbeat, StoreError>> + 'static {
        let this = self.clone();
        let index = self.index(dependency.into());
        async move { this.beat(marker, index?).await }
    }

    async fn beat(&self, marker: Timestamp, config: usize) -> Result<Heartbeat, StoreError> {
        self.load()?;
        let config = &self.config.dependencies[config];
        let (saved, dependent_marker) = {
            let mut s = self.state.lock();
            let current = s.state.clone();
            let i = Self::held(&s, &config.name);
            let d = &mut s.dependencies[i];
            if !d.is_down {
                d.checkpoint_state = current;
            }
            d.checkpoint_marker = Some(marker);
            (d.clone(), s.marker)
        };
        self.persist(false, std::slice::from_ref(&saved))?;
        if !saved.is_down {
            return Ok(Heartbeat {
                is_late: false,
                dependent_marker,
                dependency_marker: Some(marker),
            });
        }
        let recovered = dependent_marker.is_none_or(|m| config.recovered(m, marker));
        if !recovered {
            return Ok(Heartbeat {
                is_late: true,
                dependent_marker,
                dependency_marker: Some(marker),
            });
        }
        let (now, all_up, paused) = {
            let mut s = self.state.lock();
            let i = Self::held(&s, &config.name);
            s.dependencies[i].is_down = false;
            let all_up = !s.dependencies.iter().any(|d| d.is_down);
            let paused = if all_up {
                std::mem::take(&mut s.paused)
            } else {
                Vec::new()
            };
            (s.dependencies[i].clone(), all_up, paused)
        };
        self.persist(false, std::slice::from_ref(&now))?;
        for waker in paused {
            waker.wake();
        }
        if all_up {
            if let Some(callback) = &self.config.on_recovery {
                callback(self.clone(), now).await;
            }
        }
        Ok(Heartbeat {
            is_late: false,
            dependent_marker,
            dependency_marker: Some(marker),
        })
    }

    /// Wraps the dependent's stream: it yields nothing while a dependency
    /// is down, and resumes (woken, no polling) when the last one
    /// recovers.
    ///
    /// If the checkpoint's stored state cannot be read (its store fails, or
    /// holds it with another state type), the stream does not pause: its
    /// items pass, and the checkpoint's own calls
    /// ([`check_pulse`](Self::check_pulse), [`state`](Self::state)…)
    /// return the error. [`try_pausable`](Self::try_pausable) yields it in
    /// the stream instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use timecast::store::{Checkpoint, Dependency};
    /// let c = Checkpoint::<u8>::new("c").dependency(Dependency::new("d"));
    /// let mut s = c.pausable(futures::stream::iter([1, 2]));
    /// assert_eq!(futures::executor::block_on(s.next()), Some(1));
    /// ```
    pub fn pausable<St: Stream>(&self, stream: St) -> Pausable<St, S> {
        Pausable {
            checkpoint: self.clone(),
            stream: Box::pin(stream),
        }
    }

    /// As [`pausable`](Self::pausable), but a failure to read the
    /// checkpoint's stored state comes out of the stream, as `Err`, in
    /// place of an item; the stream's items come as `Ok`. An error does
    /// not end the stream: polled again, it reads the store again.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::TryStreamExt;
    /// use timecast::store::{Checkpoint, Store, StoreError};
    /// let store = Store::temporary()?;
    /// let c = Checkpoint::<u8>::new("c").store(&store);
    /// let mut s = c.try_pausable(futures::stream::iter([1, 2]));
    /// assert_eq!(futures::executor::block_on(s.try_next())?, Some(1));
    /// # Ok::<_, StoreError>(())
    /// ```
    pub fn try_pausable<St: Stream>(&self, stream: St) -> TryPausable<St, S> {
        TryPausable {
            inner: self.pausable(stream),
        }
    }
}

/// A stream paused while a [`Checkpoint`]'s dependency is down: see
/// [`Checkpoint::pausable`].
///
/// # Examples
///
/// See [`Checkpoint::pausable`].
///
/// ```
/// use timecast::store::{Checkpoint, Pausable};
/// let c = Checkpoint::<u8>::new("c");
/// let _s: Pausable<_, u8> = c.pausable(futures::stream::iter([1]));
/// ```
pub struct Pausable<St, S> {
    checkpoint: Checkpoint<S>,
    stream: Pin<Box<St>>,
}

impl<St, S> fmt::Debug for Pausable<St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pausable")
            .field("checkpoint", &self.checkpoint.config.name)
            .finish_non_exhaustive()
    }
}

impl<St, S> Stream for Pausable<St, S>
where
    St: Stream,
    S: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Item = St::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<St::Item>> {
        let this = self.get_mut();
        match this.poll_resumed(cx) {
            Poll::Pending => Poll::Pending,
            // Unread, the checkpoint does not pause (see `pausable`).
            Poll::Ready(_) => this.stream.as_mut().poll_next(cx),
        }
    }
}

impl<St, S> Pausable<St, S>
where
    S: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Ready when no dependency is down (or the checkpoint cannot be read);
    /// otherwise pending, woken by the recovery.
    fn poll_resumed(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        self.checkpoint.load()?;
        let mut s = self.checkpoint.state.lock();
        if s.dependencies.iter().any(|d| d.is_down) {
            if !s.paused.iter().any(|w| w.will_wake(cx.waker())) {
                s.paused.push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

/// A stream paused while a [`Checkpoint`]'s dependency is down, which
/// yields the failures to read the checkpoint: see
/// [`Checkpoint::try_pausable`].
///
/// # Examples
///
/// See [`Checkpoint::try_pausable`].
///
/// ```
/// use timecast::store::{Checkpoint, TryPausable};
/// let c = Checkpoint::<u8>::new("c");
/// let _s: TryPausable<_, u8> = c.try_pausable(futures::stream::iter([1]));
/// ```
pub struct TryPausable<St, S> {
    inner: Pausable<St, S>,
}

impl<St, S> fmt::Debug for TryPausable<St, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryPausable")
            .field("checkpoint", &self.inner.checkpoint.config.name)
            .finish_non_exhaustive()
    }
}

impl<St, S> Stream for TryPausable<St, S>
where
    St: Stream,
    S: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Item = Result<St::Item, StoreError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = &mut self.get_mut().inner;
        match inner.poll_resumed(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => inner.stream.as_mut().poll_next(cx).map(|i| i.map(Ok)),
        }
    }
}
