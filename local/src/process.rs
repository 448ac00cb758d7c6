//! Running the commands the local stack is made of, with errors that say what to do.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{what} is missing and could not be installed here; install it by hand: {how}")]
    Prerequisite { what: String, how: String },
    #[error("could not run {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); its last output:\n{tail}")]
    Failed {
        what: String,
        status: String,
        tail: String,
    },
    #[error("{what} did not become ready within {seconds} s; see {log}")]
    NotReady {
        what: String,
        seconds: u64,
        log: PathBuf,
    },
    #[error("could not use {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write the local stack description")]
    Json(#[source] serde_json::Error),
    #[error("could not create the tables on the emulator")]
    Tables(#[source] Box<ticketbound_store::StoreError>),
    #[error("could not seed the local identity registry: {0}")]
    Seed(String),
    #[error("could not set up the local targets: {what} failed")]
    Target {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not set up the local stack's secrets: {what} failed")]
    Secrets {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Runs `cmd` to completion; a non-zero exit becomes `Failed` with its output's tail.
pub fn run(what: &str, cmd: &mut Command) -> Result<Output, LocalError> {
    let out = cmd.output().map_err(|source| LocalError::Spawn {
        what: what.to_owned(),
        source,
    })?;
    if out.status.success() {
        return Ok(out);
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(LocalError::Failed {
        what: what.to_owned(),
        status: out.status.to_string(),
        tail,
    })
}

/// Whether a command can be found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, LocalError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| LocalError::Io {
        path: "127.0.0.1:0".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| LocalError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

pub fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until `ready()` or the timeout.
pub fn wait_for(
    what: &str,
    seconds: u64,
    log: PathBuf,
    mut ready: impl FnMut() -> bool,
) -> Result<(), LocalError> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(LocalError::NotReady {
        what: what.to_owned(),
        seconds,
        log,
    })
}

/// The command line of a live process, or `None` if it is gone.
pub fn process_cmdline(pid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Stops the process group led by `pid` if that process still runs `expected`.
pub fn stop_group(pid: u32, expected: &str, log: &std::path::Path) {
    if pid == 0 || !process_cmdline(pid).is_some_and(|c| c.contains(expected)) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pid}")])
        .status();
    let gone = || process_cmdline(pid).is_none_or(|c| c.trim().is_empty());
    if wait_for(expected, 10, log.to_path_buf(), gone).is_err() {
        // A busy moto (deep in copying its tables) can sit on SIGTERM for minutes,
        // holding gigabytes: after ten seconds the group is killed.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = wait_for(expected, 5, log.to_path_buf(), gone);
    }
}
