//! A test broker (tansu, Kafka-compatible), started by the project's
//! script `.ci/tansu` on a free loopback port from a data directory of its
//! own, and stopped by its PID. The script installs tansu first if it is
//! missing. A watchdog started with it stops it once this test process is
//! gone, however it ended: no broker outlives the tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running broker.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) port: u16,
    pid: Option<u32>,
    dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/tansu")
}

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

impl Broker {
    /// Starts a broker on a free port, with a fresh data directory.
    pub(crate) fn start() -> Result<Broker> {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("timecast-tansu-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut broker = Broker {
            port,
            pid: None,
            dir,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// `host:port`.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) on the same port and data directory.
    pub(crate) fn restart(&mut self) -> Result<()> {
        assert!(self.pid.is_none(), "the broker is running");
        let out = Command::new("bash")
            .arg(script())
            .args(["start", &self.port.to_string()])
            .arg(&self.dir)
            .arg(std::process::id().to_string())
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "starting the broker failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        self.pid = Some(pid);
        Ok(())
    }

    /// Stops it by its PID (the data directory stays).
    pub(crate) fn stop(&mut self) -> Result<()> {
        if let Some(pid) = self.pid.take() {
            let status = Command::new("bash")
                .arg(script())
                .args(["stop", &pid.to_string()])
                .status()?;
            if !status.success() {
                return Err(format!("stopping broker {pid} failed").into());
            }
        }
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The broker the tests of this binary share, started on first use (its
/// watchdog stops it when the binary exits). `TIMECAST_TEST_KAFKA_PORT`
/// names the port of a broker already running on 127.0.0.1 to use
/// instead (to look at its log while developing); unset, the tests start
/// their own.
pub(crate) fn shared() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        if let Some(port) = std::env::var("TIMECAST_TEST_KAFKA_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            return Broker {
                port,
                pid: None,
                dir: std::env::temp_dir().join("timecast-tansu-external-not-owned"),
            };
        }
        Broker::start().expect("the test broker starts")
    })
}
