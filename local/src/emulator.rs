//! An AWS emulator of one's own: a second moto server, started from the local stack's
//! pinned virtualenv on a free loopback port, and stopped when dropped.
//!
//! moto keeps everything it was ever given in one process and copies whole tables on
//! each transaction, so a long benchmark against the shared emulator ends up
//! measuring moto's memory (it reached all 24 GB of this machine at 650 grants). A
//! benchmark that starts a fresh emulator per round measures the function instead.
//! PostgreSQL stays the local stack's.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::RunningStack;

/// A running moto server of one's own and a [`RunningStack`] aimed at it.
#[derive(Debug)]
pub struct PrivateEmulator {
    pub stack: RunningStack,
    child: Child,
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(
        "the local stack's moto was not found at {0} (run `cargo run -p ticketbound -- local up` first)"
    )]
    NotInstalled(std::path::PathBuf),
    #[error("could not {what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("moto did not answer on port {port} within {seconds} s")]
    NotReady { port: u16, seconds: u64 },
}

impl PrivateEmulator {
    /// Starts moto beside the local stack's (same virtualenv, same release).
    pub async fn start(shared: &RunningStack) -> Result<Self, EmulatorError> {
        let home = shared
            .local
            .processes
            .moto_log
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let python = home.join("venv/bin/python3");
        // The launcher `local up` wrote: moto with its DynamoDB requests serialised.
        let script = home
            .join("venv")
            .join(crate::stack::MOTO_SERVER_SCRIPT_NAME);
        if !python.is_file() || !script.is_file() {
            return Err(EmulatorError::NotInstalled(script));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|source| EmulatorError::Io {
                what: "find a free loopback port",
                source,
            })?;
        let mut child = Command::new(python)
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| EmulatorError::Io {
                what: "start moto_server",
                source,
            })?;
        let seconds = 30;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EmulatorError::NotReady { port, seconds });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut local = shared.local.clone();
        local.aws_endpoint = format!("http://127.0.0.1:{port}");
        let sdk = local.sdk_config().await;
        Ok(Self {
            stack: RunningStack { local, sdk },
            child,
        })
    }
}

impl PrivateEmulator {
    /// CPU time the emulator has used so far, to tell its time from the code's.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.child.id())
    }
}

/// User plus system CPU seconds a process has used (Linux `/proc/<pid>/stat`, whose
/// times are in USER_HZ, 100 per second on Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing ')'.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 (from 0) after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
