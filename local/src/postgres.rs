//! A PostgreSQL cluster of the local stack's own: the first real target system.
//!
//! Logins over TCP use SCRAM passwords (so a revoked credential is really refused).
//! The server speaks TLS with a certificate for 127.0.0.1 and localhost, signed by a
//! CA the stack makes on each fresh cluster (`.ticketbound/pg-ca.pem`); ticketbound's
//! administrator connects over TCP and must use TLS (`pg_hba.conf` rejects it
//! otherwise), as a production target is reached with `verify-full`. The cluster's
//! superuser connects over the Unix socket with trust: it only builds fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stack::{LocalProcesses, LocalStack};

use crate::process::{self, LocalError};

const OS_USER: &str = "postgres";

/// A running PostgreSQL cluster of the local stack.
pub struct Postgres {
    pub port: u16,
    pub data_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub os_user: Option<String>,
    /// The CA the server's certificate chains to.
    pub ca_file: PathBuf,
    /// ticketbound's administrator's password (local only, made per cluster).
    pub admin_password: String,
}

// By hand: the administrator's password is never printed.
impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("os_user", &self.os_user)
            .finish_non_exhaustive()
    }
}

/// The CA and the server certificate of a fresh cluster: the server's files go into
/// `data_dir` (owned by the cluster's OS user, the key readable by it alone, as
/// PostgreSQL demands), the CA into `ca_file`.
fn make_tls_material(
    data_dir: &Path,
    os_user: Option<&str>,
    ca_file: &Path,
) -> Result<(), LocalError> {
    let failed = |source: rcgen::Error| LocalError::Target {
        what: "making the local CA and server certificate".into(),
        source: Box::new(source),
    };
    let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ticketbound local stack CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(failed)?;
    let server_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let server = params.signed_by(&server_key, &ca).map_err(failed)?;

    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).map_err(|source| LocalError::Io { path, source })
    };
    write(ca_file.to_path_buf(), &ca.pem())?;
    write(data_dir.join("server.crt"), &server.pem())?;
    let key = data_dir.join("server.key");
    write(key.clone(), &server_key.serialize_pem())?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| LocalError::Io {
                path: key.clone(),
                source,
            },
        )?;
    }
    if let Some(user) = os_user {
        process::run(
            "chown of the server's certificate and key",
            Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(data_dir.join("server.crt"))
                .arg(&key),
        )?;
    }
    // The administrator over TLS only; everyone else as initdb set it up.
    let hba = data_dir.join("pg_hba.conf");
    let io = |source| LocalError::Io {
        path: hba.clone(),
        source,
    };
    let rules = std::fs::read_to_string(&hba).map_err(io)?;
    std::fs::write(
        &hba,
        format!(
            "# ticketbound's administrator must use TLS (as a verify-full target).\n\
             local all {admin} reject\n\
             hostnossl all {admin} all reject\n{rules}",
            admin = crate::targets::ADMIN_ROLE
        ),
    )
    .map_err(io)?;
    Ok(())
}

/// The newest installed server's binaries (Debian keeps them per major version).
fn find_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn install_server() -> Result<PathBuf, LocalError> {
    let how = "apt-get install postgresql (Debian/Ubuntu), or put initdb and pg_ctl on PATH";
    if !(process::is_root() && process::on_path("apt-get")) {
        return Err(LocalError::Prerequisite {
            what: "the PostgreSQL server (initdb, pg_ctl)".into(),
            how: how.into(),
        });
    }
    eprintln!("installing PostgreSQL with apt-get (once)");
    process::run(
        "apt-get update",
        Command::new("apt-get").args(["update", "-qq"]),
    )?;
    process::run(
        "apt-get install postgresql",
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "postgresql",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    find_bin_dir().ok_or_else(|| LocalError::Prerequisite {
        what:
            "the PostgreSQL server (apt-get installed it, but initdb is not where Debian puts it)"
                .into(),
        how: how.into(),
    })
}

/// `bin/<tool>`, run as the cluster's OS user.
fn pg_command(bin_dir: &Path, os_user: Option<&str>, tool: &str) -> Command {
    let program = bin_dir.join(tool);
    match os_user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

pub fn is_running(p: &LocalProcesses) -> bool {
    pg_command(&p.postgres_bin_dir, p.postgres_os_user.as_deref(), "pg_ctl")
        .args(["status", "-D"])
        .arg(&p.postgres_data_dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Reuses the cluster `previous` describes if it runs, else creates and starts one.
pub fn ensure_running(home: &Path, previous: Option<&LocalStack>) -> Result<Postgres, LocalError> {
    if let Some(stack) =
        previous.filter(|s| is_running(&s.processes) && process::port_answers(s.postgres.port))
    {
        return Ok(Postgres {
            port: stack.postgres.port,
            data_dir: stack.processes.postgres_data_dir.clone(),
            bin_dir: stack.processes.postgres_bin_dir.clone(),
            os_user: stack.processes.postgres_os_user.clone(),
            ca_file: stack.postgres.ca_file.clone(),
            admin_password: stack.postgres.admin_password.clone(),
        });
    }
    let bin_dir = match find_bin_dir() {
        Some(dir) => dir,
        None => install_server()?,
    };

    // initdb refuses root. As root we run the cluster as `postgres`, in a directory
    // that user can reach whatever the permissions of the checkout (a CI clone may
    // sit in a private temporary directory).
    let (os_user, data_dir) = if process::is_root() {
        let dir = std::env::temp_dir().join(format!(
            "ticketbound-pg-{}",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        (Some(OS_USER.to_owned()), dir)
    } else {
        (None, home.join("pg"))
    };
    let io = |source| LocalError::Io {
        path: data_dir.clone(),
        source,
    };
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).map_err(io)?;
    }
    std::fs::create_dir_all(&data_dir).map_err(io)?;
    if let Some(user) = &os_user {
        process::run(
            "chown of the PostgreSQL data directory",
            Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(&data_dir),
        )?;
    }
    let user = os_user.as_deref();

    process::run(
        "initdb",
        pg_command(&bin_dir, user, "initdb")
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ]),
    )?;

    let ca_file = home.join("pg-ca.pem");
    make_tls_material(&data_dir, user, &ca_file)?;

    let port = process::free_port()?;
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c password_encryption=scram-sha-256 -c ssl=on",
        data_dir.display()
    );
    process::run(
        "pg_ctl start",
        pg_command(&bin_dir, user, "pg_ctl")
            .arg("-D")
            .arg(&data_dir)
            .arg("-l")
            .arg(data_dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]),
    )?;
    Ok(Postgres {
        port,
        data_dir,
        bin_dir,
        os_user,
        ca_file,
        admin_password: format!("local-{}", ulid::Ulid::new()),
    })
}

/// Stops the cluster and removes its data: the emulator's state is gone too, so the
/// data would describe grants nobody remembers.
pub fn stop(p: &LocalProcesses) -> Result<(), LocalError> {
    if is_running(p) {
        process::run(
            "pg_ctl stop",
            pg_command(&p.postgres_bin_dir, p.postgres_os_user.as_deref(), "pg_ctl")
                .arg("-D")
                .arg(&p.postgres_data_dir)
                .args(["-m", "fast", "-w", "stop"]),
        )?;
    }
    if p.postgres_data_dir.exists() {
        std::fs::remove_dir_all(&p.postgres_data_dir).map_err(|source| LocalError::Io {
            path: p.postgres_data_dir.clone(),
            source,
        })?;
    }
    Ok(())
}
