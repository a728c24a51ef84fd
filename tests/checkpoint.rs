//! Checkpoint: Slipstream's docstring sequence, callbacks (sync and
//! async), several dependencies, custom checks, pausing, persistence, and
//! unknown dependency names.
#![cfg(feature = "store")]

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use timecast::store::{Checkpoint, Dependency, Heartbeat, Store, StoreError};
use timecast::{sleep, EventLoop, Timestamp};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

fn at(h: u32, m: u32) -> Timestamp {
    Timestamp::from_ymd_hms(2025, 1, 1, h, m, 0).expect("a valid date")
}

fn run<F: std::future::Future + 'static>(f: F) -> F::Output {
    EventLoop::starting_at(at(0, 0)).simulated().block_on(f)
}

type Events = Arc<Mutex<Vec<String>>>;

fn recorder() -> (Events, Events) {
    let e = Arc::new(Mutex::new(Vec::new()));
    (e.clone(), e)
}

#[test]
fn the_docstring_sequence_of_slipstreams_checkpoint() -> Result {
    let (events, log) = recorder();
    let (down_log, up_log) = (log.clone(), log);
    let c = Checkpoint::<u64>::new("dependent")
        .dependency(Dependency::new("dependency"))
        .on_downtime_sync(move |_c, d| {
            down_log.lock().unwrap().push(format!("down {}", d.name()));
        })
        .on_recovery(move |_c, d| {
            let up_log = up_log.clone();
            async move {
                sleep(Duration::from_secs(1)).await; // an async callback may await
                up_log
                    .lock()
                    .unwrap()
                    .push(format!("up {} {:?}", d.name(), d.checkpoint_state()));
            }
        });
    let c2 = c.clone();
    run(async move {
        let c = c2;
        // The first pulse sets the dependency's checkpoint.
        assert_eq!(c.check_pulse(at(10, 0), 8).await?, None);
        assert_eq!(
            c.dependency_state("dependency")?.checkpoint_marker(),
            Some(at(10, 0))
        );
        assert_eq!(
            c.heartbeat(at(10, 30), None).await?,
            Heartbeat {
                is_late: false,
                dependent_marker: Some(at(10, 0)),
                dependency_marker: Some(at(10, 30)),
            }
        );
        // 30 minutes without a heartbeat: beyond the default 10 minutes.
        assert_eq!(
            c.check_pulse(at(11, 0), 9).await?,
            Some(Duration::from_secs(1800))
        );
        assert!(c.is_paused()?);
        let late = c.heartbeat(at(10, 45), None).await?;
        assert_eq!(
            late,
            Heartbeat {
                is_late: true,
                dependent_marker: Some(at(11, 0)),
                dependency_marker: Some(at(10, 45)),
            }
        );
        let back = c.heartbeat(at(11, 1), None).await?;
        assert!(!back.is_late);
        assert!(!c.is_paused()?);
        Ok::<_, StoreError>(())
    })?;
    assert_eq!(
        *events.lock().unwrap(),
        ["down dependency", "up dependency Some(9)"]
    );
    Ok(())
}

#[test]
fn an_unknown_dependency_is_an_error_naming_it_never_a_panic() -> Result {
    let c = Checkpoint::<u64>::new("activity")
        .dependency(Dependency::new("weather"))
        .dependency(Dependency::new("traffic"));
    let el = EventLoop::starting_at(at(0, 0)).simulated();
    match el.block_on(c.heartbeat(at(10, 0), "wether")) {
        Err(e @ StoreError::UnknownDependency { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("\"activity\"")
                    && message.contains("\"wether\"")
                    && message.contains("\"weather\""),
                "{message}"
            );
        }
        other => panic!("expected UnknownDependency, got {other:?}"),
    }
    // With several dependencies, a heartbeat must name one.
    match el.block_on(c.heartbeat(at(10, 0), None)) {
        Err(StoreError::UnknownDependency {
            dependency: None,
            known,
            ..
        }) => assert_eq!(known, ["weather", "traffic"]),
        other => panic!("expected UnknownDependency, got {other:?}"),
    }
    assert!(matches!(
        c.dependency_state("nope"),
        Err(StoreError::UnknownDependency { .. })
    ));
    Ok(())
}

#[test]
fn several_dependencies_with_their_own_thresholds_and_custom_checks() -> Result {
    let c = Checkpoint::<u32>::new("c")
        .dependency(Dependency::new("fast").downtime_threshold(Duration::from_secs(60)))
        .dependency(Dependency::new("slow").downtime_threshold(Duration::from_secs(3600)))
        .dependency(
            // Down when more than 2 h behind; recovered once within 1 h.
            Dependency::new("custom")
                .downtime_check(|dependent, dependency| {
                    dependent
                        .checked_duration_since(dependency)
                        .filter(|d| *d > Duration::from_secs(7200))
                })
                .recovery_check(|dependent, dependency| {
                    dependent
                        .checked_duration_since(dependency)
                        .is_none_or(|d| d <= Duration::from_secs(3600))
                }),
        );
    let c2 = c.clone();
    run(async move {
        let c = c2;
        c.check_pulse(at(10, 0), 0).await?;
        for name in ["fast", "slow", "custom"] {
            c.heartbeat(at(10, 0), name).await?;
        }
        // 2 min: only "fast" is down.
        assert_eq!(
            c.check_pulse(at(10, 2), 1).await?,
            Some(Duration::from_secs(120))
        );
        assert!(c.dependency_state("fast")?.is_down());
        assert!(!c.dependency_state("slow")?.is_down());
        // "fast" catches up, "slow" and "custom" fall behind.
        assert!(!c.heartbeat(at(10, 3), "fast").await?.is_late);
        assert!(!c.heartbeat(at(12, 1), "fast").await?.is_late);
        assert_eq!(
            c.check_pulse(at(12, 1), 2).await?,
            Some(Duration::from_secs(7260))
        );
        assert!(c.dependency_state("slow")?.is_down());
        assert!(c.dependency_state("custom")?.is_down());
        assert_eq!(c.dependency_state("custom")?.checkpoint_state(), Some(&2));
        // "custom" recovers within 1 h of the dependent; "slow" still down.
        assert!(!c.heartbeat(at(11, 30), "custom").await?.is_late);
        assert!(c.is_paused()?);
        assert!(c.heartbeat(at(12, 0), "slow").await?.is_late);
        assert!(!c.heartbeat(at(12, 2), "slow").await?.is_late);
        assert!(!c.is_paused()?);
        Ok::<_, StoreError>(())
    })?;
    Ok(())
}

#[test]
fn a_pausable_stream_waits_while_down_and_resumes_on_recovery() -> Result {
    let c = Checkpoint::<usize>::new("c")
        .dependency(Dependency::new("d").downtime_threshold(Duration::from_secs(60)));
    let el = EventLoop::starting_at(at(10, 0)).simulated();
    let (seen, out) = recorder();
    let dependent = c.clone();
    el.spawn(async move {
        // One event a minute, each one pulsing the checkpoint.
        let events = futures::stream::iter(0..6).then(|i| async move {
            sleep(Duration::from_secs(60)).await;
            i
        });
        let mut events = Box::pin(dependent.pausable(events));
        while let Some(i) = events.next().await {
            let now = timecast::now();
            let down = dependent.check_pulse(now, i).await.expect("pulse");
            out.lock()
                .unwrap()
                .push(format!("{now} event {i} down {down:?}"));
        }
    });
    let dependency = c.clone();
    el.spawn(async move {
        dependency
            .heartbeat(at(10, 0), None)
            .await
            .expect("heartbeat");
        // Silent for 10 minutes, then a heartbeat that catches up (its
        // event time is ahead of the dependent's).
        sleep(Duration::from_secs(600)).await;
        dependency
            .heartbeat(at(10, 20), None)
            .await
            .expect("heartbeat");
    });
    el.run()?;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "2025-01-01T10:01:00Z event 0 down None",
            "2025-01-01T10:02:00Z event 1 down Some(120s)",
            // Paused (the source not even polled) until the heartbeat at 10:10.
            "2025-01-01T10:11:00Z event 2 down None",
            "2025-01-01T10:12:00Z event 3 down None",
            "2025-01-01T10:13:00Z event 4 down None",
            "2025-01-01T10:14:00Z event 5 down None",
        ]
    );
    Ok(())
}

#[test]
fn a_checkpoint_in_a_store_continues_after_a_restart() -> Result {
    let dir = std::env::temp_dir().join(format!("timecast-ckpt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let make = |store: &Store| {
        Checkpoint::<String>::new("activity")
            .dependency(Dependency::new("weather").downtime_threshold(Duration::from_secs(3600)))
            .store(store)
    };
    {
        let store = Store::open(&dir)?;
        let c = make(&store);
        let c2 = c.clone();
        run(async move {
            let c = c2;
            c.check_pulse(at(10, 30), "offset 0".into()).await?;
            c.heartbeat(at(11, 0), None).await?;
            c.check_pulse(at(12, 30), "offset 2".into()).await?;
            Ok::<_, StoreError>(())
        })?;
        assert!(c.is_paused()?);
    }
    let store = Store::open(&dir)?;
    let c = make(&store);
    assert!(c.is_paused()?, "still down after the restart");
    assert_eq!(c.state()?, (Some("offset 2".to_string()), Some(at(12, 30))));
    let weather = c.dependency_state("weather")?;
    assert_eq!(
        weather.checkpoint_state().map(String::as_str),
        Some("offset 2")
    );
    assert_eq!(weather.checkpoint_marker(), Some(at(11, 0)));
    let (got, log) = recorder();
    let c = c.on_recovery_sync(move |_c, d| {
        log.lock()
            .unwrap()
            .push(format!("{:?}", d.checkpoint_state()));
    });
    assert!(run(c.heartbeat(at(12, 0), None))?.is_late);
    assert!(!run(c.heartbeat(at(13, 0), None))?.is_late);
    assert_eq!(*got.lock().unwrap(), ["Some(\"offset 2\")"]);
    drop((c, store));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A checkpoint whose stored state cannot be read: `pausable` lets the
/// items pass (the checkpoint's calls return the error), `try_pausable`
/// yields the error, and again when polled again.
#[test]
fn an_unreadable_checkpoint_pauses_nothing_and_try_pausable_yields_the_error() -> Result {
    use futures::FutureExt;

    let store = Store::temporary()?;
    let stored = Checkpoint::<u64>::new("c")
        .dependency(Dependency::new("d"))
        .store(&store);
    run(stored.check_pulse(at(10, 0), 7))?;
    // The same checkpoint, opened with another state type.
    let c = Checkpoint::<String>::new("c")
        .dependency(Dependency::new("d"))
        .store(&store);
    let is_table_types = |e: &StoreError| matches!(e, StoreError::TableTypes { .. });

    let passed: Vec<_> = futures::executor::block_on(
        c.pausable(futures::stream::iter([1, 2]))
            .collect::<Vec<_>>(),
    );
    assert_eq!(passed, [1, 2]);
    let err = run(c.check_pulse(at(10, 1), "s".into())).expect_err("unreadable");
    assert!(is_table_types(&err), "{err:?}");

    let mut s = c.try_pausable(futures::stream::iter([1, 2]));
    for _ in 0..2 {
        match s.next().now_or_never() {
            Some(Some(Err(e))) => assert!(is_table_types(&e), "{e:?}"),
            other => panic!("expected the error, got {other:?}"),
        }
    }
    Ok(())
}

/// `try_pausable` pauses while a dependency is down and yields `Ok` items
/// once it recovers.
#[test]
fn try_pausable_pauses_while_down_and_resumes_with_ok_items() -> Result {
    use futures::FutureExt;

    let c = Checkpoint::<usize>::new("c")
        .dependency(Dependency::new("d").downtime_threshold(Duration::from_secs(60)));
    let mut s = c.try_pausable(futures::stream::iter([1, 2]));
    assert!(matches!(s.next().now_or_never(), Some(Some(Ok(1)))));
    let dependent = c.clone();
    run(async move {
        dependent.heartbeat(at(10, 0), None).await?;
        assert!(dependent.check_pulse(at(10, 2), 0).await?.is_some());
        Ok::<_, StoreError>(())
    })?;
    assert!(s.next().now_or_never().is_none(), "paused");
    run(c.heartbeat(at(10, 20), None))?;
    assert!(matches!(s.next().now_or_never(), Some(Some(Ok(2)))));
    assert!(matches!(s.next().now_or_never(), Some(None)));
    Ok(())
}

/// Handles configured with other dependencies share one checkpoint: a
/// dependency added to a clone after the checkpoint was used joins it,
/// from its stored record if there is one, and no handle's calls fail on
/// a dependency another handle added.
#[test]
fn handles_configured_apart_share_the_checkpoint_without_a_panic() -> Result {
    let store = Store::temporary()?;
    let a = Checkpoint::<u64>::new("c").store(&store);
    // Used before `b` adds its dependency.
    assert!(!a.is_paused()?);
    let b = a.clone().dependency(Dependency::new("weather"));
    assert_eq!(b.dependency_state("weather")?.checkpoint_marker(), None);
    let c = b.clone().dependency(Dependency::new("prices"));
    run({
        let (a, b, c) = (a.clone(), b.clone(), c.clone());
        async move {
            // `c` knows both dependencies, and finds "prices" down.
            assert_eq!(c.check_pulse(at(10, 0), 1).await?, None);
            assert!(!c.heartbeat(at(11, 0), "weather").await?.is_late);
            assert_eq!(
                c.check_pulse(at(11, 0), 2).await?,
                Some(Duration::from_secs(3600))
            );
            // `a` knows neither: its pulse checks none, and is shared.
            assert_eq!(a.check_pulse(at(11, 5), 3).await?, None);
            assert!(a.is_paused()?);
            // `b` knows "weather" only, which is up.
            assert_eq!(b.check_pulse(at(11, 6), 4).await?, None);
            assert!(matches!(
                b.heartbeat(at(11, 6), "prices").await,
                Err(StoreError::UnknownDependency { .. })
            ));
            assert!(!c.heartbeat(at(11, 7), "prices").await?.is_late);
            assert!(!a.is_paused()?);
            Ok::<_, StoreError>(())
        }
    })?;
    assert_eq!(a.state()?, (Some(4), Some(at(11, 6))));
    drop((a, b, c));

    // Reopened: a handle with only "prices" finds its stored record.
    let again = Checkpoint::<u64>::new("c").store(&store);
    assert_eq!(again.state()?, (Some(4), Some(at(11, 6))));
    let again = again.dependency(Dependency::new("prices"));
    assert_eq!(
        again.dependency_state("prices")?.checkpoint_marker(),
        Some(at(11, 7))
    );
    Ok(())
}
