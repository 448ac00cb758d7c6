//! moto's server in a virtualenv of its own, pinned so that every machine emulates
//! AWS the same way.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::stack::{LocalProcesses, LocalStack, MOTO_SERVER_SCRIPT, MOTO_SERVER_SCRIPT_NAME};

use crate::process::{self, LocalError};

/// The moto release the tests were written against.
// scripts/test reads this line (to install the virtualenv while the build runs):
// keep it one line of this shape.
pub const MOTO_REQUIREMENT: &str = "moto[server]==5.2.1";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    pub endpoint: String,
    pub pid: u32,
    pub log: PathBuf,
}

fn port_of(endpoint: &str) -> Option<u16> {
    endpoint
        .rsplit(':')
        .next()?
        .trim_end_matches('/')
        .parse()
        .ok()
}

pub fn is_alive(stack: &LocalStack) -> bool {
    let running = process::process_cmdline(stack.processes.moto_pid)
        .is_some_and(|c| c.contains("moto_server"));
    running && port_of(&stack.aws_endpoint).is_some_and(process::port_answers)
}

fn installed(venv: &Path) -> bool {
    venv.join("bin/moto_server").is_file()
        && std::fs::read_to_string(venv.join("ticketbound-requirement"))
            .is_ok_and(|r| r.trim() == MOTO_REQUIREMENT)
}

fn install(venv: &Path) -> Result<(), LocalError> {
    if installed(venv) {
        return Ok(());
    }
    if !process::on_path("python3") {
        return Err(LocalError::Prerequisite {
            what: "python3".into(),
            how: "apt-get install python3 python3-venv".into(),
        });
    }
    eprintln!(
        "installing {MOTO_REQUIREMENT} into {} (about 30 s, once)",
        venv.display()
    );
    process::run(
        "python3 -m venv",
        Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg("--clear")
            .arg(venv),
    )
    .map_err(|e| match e {
        LocalError::Failed { tail, .. } => LocalError::Prerequisite {
            what: format!("a working python3 venv module ({tail})"),
            how: "apt-get install python3-venv".into(),
        },
        other => other,
    })?;
    process::run(
        "pip install moto",
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            // The wheels are installed once into the virtualenv; a cache of them too
            // would only take disk from the build (a CI machine ran out here).
            "--no-cache-dir",
            "--disable-pip-version-check",
            MOTO_REQUIREMENT,
        ]),
    )?;
    std::fs::write(venv.join("ticketbound-requirement"), MOTO_REQUIREMENT).map_err(|source| {
        LocalError::Io {
            path: venv.to_path_buf(),
            source,
        }
    })
}

/// Reuses the running emulator if `previous` describes a live one, else starts one.
pub async fn ensure_running(
    home: &Path,
    previous: Option<&LocalStack>,
) -> Result<Moto, LocalError> {
    if let Some(stack) = previous.filter(|s| is_alive(s)) {
        return Ok(Moto {
            endpoint: stack.aws_endpoint.clone(),
            pid: stack.processes.moto_pid,
            log: stack.processes.moto_log.clone(),
        });
    }
    let venv = home.join("venv");
    install(&venv)?;

    let port = process::free_port()?;
    let log = home.join("moto.log");
    let out = File::create(&log).map_err(|source| LocalError::Io {
        path: log.clone(),
        source,
    })?;
    let err = out.try_clone().map_err(|source| LocalError::Io {
        path: log.clone(),
        source,
    })?;
    // moto's server with its DynamoDB requests serialised (see MOTO_SERVER_SCRIPT).
    let script = venv.join(MOTO_SERVER_SCRIPT_NAME);
    std::fs::write(&script, MOTO_SERVER_SCRIPT).map_err(|source| LocalError::Io {
        path: script.clone(),
        source,
    })?;
    let child = Command::new(venv.join("bin/python3"))
        .arg(&script)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: it outlives this command, and `down` stops the group.
        .process_group(0)
        .spawn()
        .map_err(|source| LocalError::Spawn {
            what: "moto_server".into(),
            source,
        })?;
    let pid = child.id();
    process::wait_for("moto_server", 30, log.clone(), || {
        process::port_answers(port)
    })?;
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        pid,
        log,
    })
}

pub fn stop(processes: &LocalProcesses) {
    process::stop_group(processes.moto_pid, "moto_server", &processes.moto_log);
}

/// What moto lacks to let `RotateSecret` name a rotation function: Lambda without
/// Docker (moto's simple backend records invocations instead of running them) and a
/// function of that name, with its role. The local stack rotates secrets itself; this
/// only lets the provisioner turn rotation on exactly as it does in AWS.
const ROTATION_STUB: &str = r#"
import base64, json, sys, urllib.request
import boto3
endpoint, region, name = sys.argv[1], sys.argv[2], sys.argv[3]
urllib.request.urlopen(urllib.request.Request(
    endpoint + "/moto-api/config", data=json.dumps({"lambda": {"use_docker": False}}).encode(),
    method="POST", headers={"Content-Type": "application/json"}))
kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id="local", aws_secret_access_key="local")
iam, lam = boto3.client("iam", **kw), boto3.client("lambda", **kw)
try:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
except iam.exceptions.EntityAlreadyExistsException:
    pass
try:
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Handler="bootstrap",
        Role="arn:aws:iam::123456789012:role/" + name, Architectures=["arm64"],
        Code={"ZipFile": base64.b64decode("UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==")})
except lam.exceptions.ResourceConflictException:
    pass
"#;

/// Registers the rotation function's stand-in with the emulator (idempotent).
pub fn ensure_rotation_stub(
    home: &Path,
    stack: &LocalStack,
    function_name: &str,
) -> Result<(), LocalError> {
    process::run(
        "registering the rotation function with moto",
        Command::new(home.join("venv/bin/python"))
            .arg("-c")
            .arg(ROTATION_STUB)
            .args([&stack.aws_endpoint, &stack.region, function_name]),
    )
    .map(|_| ())
}
