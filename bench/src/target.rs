//! The Scoria under test: processes the benchmark starts (all-in-one, or the
//! deployment's api, scheduler and volume processes on a fresh PostgreSQL
//! database and RabbitMQ vhost) and stops again, or an endpoint already running.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use uuid::Uuid;

use crate::api::Api;

/// Longest wait for a started Scoria to serve and know a pool.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a process to exit after SIGTERM, or for a setup command.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Host of the local PostgreSQL server, used as `postgres` without a password.
const PG_HOST: &str = "127.0.0.1";
/// The same server as a `[database] connection` URL, less the database name.
const PG_URL: &str = "postgresql://postgres@127.0.0.1:5432";
/// The local RabbitMQ broker.
const BROKER_URL: &str = "rabbit://guest:guest@127.0.0.1:5672";
/// The project and user that own the image-volume cache's volumes.
const INTERNAL_TENANT: &str = "scoria-bench-internal";

/// What the configuration of a started Scoria adds for the image phase.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A Glance to use (`glance_api_servers`), with the image-volume cache on.
    pub glance: Option<String>,
    /// A folder in which a new folder holds the file backend's volumes.
    pub volumes_dir: Option<PathBuf>,
}

/// A Scoria to measure.
pub struct Target {
    /// Root URL of its API.
    pub root: String,
    /// Name and pid of each Scoria process whose memory is reported.
    pub processes: Vec<(String, u32)>,
    /// The folder of the file backend's volumes, when known.
    pub volumes_dir: Option<PathBuf>,
    /// A volumes folder made here outside the work directory.
    own_volumes_dir: Option<PathBuf>,
    children: Vec<(String, Child)>,
    /// Data, configuration and logs of the processes started here.
    work_dir: Option<PathBuf>,
    /// Database and vhost created here (same name).
    database_and_vhost: Option<String>,
}

impl Target {
    /// A Scoria already running at `root`, made of processes `pids`,
    /// keeping its volumes in `volumes_dir` if known.
    pub fn endpoint(root: &str, pids: &[u32], volumes_dir: Option<&Path>) -> Target {
        Target {
            root: root.to_string(),
            processes: pids.iter().map(|&p| (format!("pid{p}"), p)).collect(),
            volumes_dir: volumes_dir.map(Path::to_path_buf),
            own_volumes_dir: None,
            children: Vec::new(),
            work_dir: None,
            database_and_vhost: None,
        }
    }

    /// Starts `scoria serve` on a fresh data directory; with `options`
    /// set, through an INI file with one `file` backend.
    pub async fn all_in_one(bin: &Path, options: &Options) -> Result<Target> {
        let (mut target, port) = Target::launched(bin, options)?;
        let started = target.start_all_in_one(bin, port, options);
        target.or_clean_up(started).await
    }

    /// Creates a database and a vhost, writes an INI file, upgrades the
    /// database and starts `scoria api`, `scoria scheduler` and `scoria volume`.
    pub async fn deployment(bin: &Path, options: &Options) -> Result<Target> {
        let (mut target, port) = Target::launched(bin, options)?;
        let started = target.start_deployment(bin, port, options).await;
        target.or_clean_up(started).await
    }

    /// A target with a fresh work directory, a fresh volumes folder and a
    /// free loopback port, nothing started yet.
    fn launched(bin: &Path, options: &Options) -> Result<(Target, u16)> {
        if !bin.is_file() {
            bail!(
                "{} does not exist; run `cargo build --release` or pass --scoria-bin",
                bin.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("scoria-bench-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut target = Target::endpoint(&format!("http://127.0.0.1:{port}"), &[], None);
        let volumes = match &options.volumes_dir {
            Some(parent) => {
                let own = parent.join(dir.file_name().unwrap_or_default());
                target.own_volumes_dir = Some(own.clone());
                own
            }
            None => dir.join("volumes"),
        };
        target.work_dir = Some(dir);
        std::fs::create_dir_all(&volumes)
            .with_context(|| format!("cannot create {}", volumes.display()))?;
        target.volumes_dir = Some(volumes);
        Ok((target, port))
    }

    /// Passes the target on when it started, otherwise cleans up (keeping the logs).
    async fn or_clean_up(mut self, started: Result<()>) -> Result<Target> {
        match started {
            Ok(()) => Ok(self),
            Err(e) => {
                self.stop(false, true).await;
                Err(e)
            }
        }
    }

    fn dir(&self) -> &Path {
        self.work_dir.as_deref().unwrap_or(Path::new("."))
    }

    fn start_all_in_one(&mut self, bin: &Path, port: u16, options: &Options) -> Result<()> {
        let data = self.dir().join("data");
        let listen = format!("127.0.0.1:{port}");
        let mut args: Vec<&OsStr> = vec![
            "serve".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--listen".as_ref(),
            listen.as_ref(),
        ];
        let config = self.dir().join("serve.conf");
        std::fs::write(&config, self.ini(options, ""))?;
        args.extend(["--config-file".as_ref(), config.as_os_str()]);
        self.spawn("serve", bin, &args)
    }

    /// The INI file less the deployment's `[database]`: the `[DEFAULT]` lines
    /// `deployment` (or none), one `file` backend, and with a Glance the
    /// image options and the image-volume cache.
    fn ini(&self, options: &Options, deployment: &str) -> String {
        let volumes = self.volumes_dir.as_deref().unwrap_or(Path::new("volumes"));
        let (mut default, mut backend) = (String::new(), String::new());
        if let Some(glance) = &options.glance {
            default = format!(
                "glance_api_servers = {glance}
cinder_internal_tenant_project_id = {INTERNAL_TENANT}
cinder_internal_tenant_user_id = {INTERNAL_TENANT}
image_conversion_dir = {}
",
                self.dir().join("conversion").display()
            );
            backend = "image_volume_cache_enabled = true\n".into();
        }
        format!(
            "[DEFAULT]
{deployment}enabled_backends = file
{default}[file]
volume_driver = file
volume_backend_name = file
file_volumes_dir = {}
{backend}",
            volumes.display()
        )
    }

    async fn start_deployment(&mut self, bin: &Path, port: u16, options: &Options) -> Result<()> {
        let name = format!("scoria_bench_{}", Uuid::new_v4().simple());
        psql(&format!("CREATE DATABASE {name}")).await?;
        self.database_and_vhost = Some(name.clone());
        rabbitmqctl(&["add_vhost", &name]).await?;
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]).await?;
        let config = self.dir().join("scoria.conf");
        let ini = self.ini(options, &deployment_ini(&name, port))
            + &format!("[database]\nconnection = {PG_URL}/{name}\n");
        std::fs::write(&config, ini)?;
        let args: [&OsStr; 4] = [
            "db".as_ref(),
            "upgrade".as_ref(),
            "--config-file".as_ref(),
            config.as_os_str(),
        ];
        let upgraded = timeout(
            STOP_TIMEOUT,
            self.command("db-upgrade", bin, &args)?.status(),
        )
        .await;
        if !matches!(upgraded, Ok(Ok(status)) if status.success()) {
            bail!(
                "scoria db upgrade failed; see {}",
                self.log("db-upgrade").display()
            );
        }
        for role in ["api", "scheduler", "volume"] {
            self.spawn(
                role,
                bin,
                &[role.as_ref(), "--config-file".as_ref(), config.as_os_str()],
            )?;
        }
        Ok(())
    }

    /// Starts `bin args` as process `name`.
    fn spawn(&mut self, name: &str, bin: &Path, args: &[&OsStr]) -> Result<()> {
        let child = self
            .command(name, bin, args)?
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        self.processes
            .push((name.to_string(), child.id().unwrap_or_default()));
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// The command `bin args`, logging to `<name>.log` in the work directory.
    fn command(&self, name: &str, bin: &Path, args: &[&OsStr]) -> Result<Command> {
        let log = std::fs::File::create(self.log(name))?;
        let mut command = Command::new(bin);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        // Only the configuration written here applies, whatever the caller's environment holds.
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("SCORIA_") && var != "SCORIA_LOG" {
                command.env_remove(var);
            }
        }
        Ok(command)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.log"))
    }

    /// The name of a started process that has exited, if any.
    fn exited(&mut self) -> Result<Option<String>> {
        for (name, child) in &mut self.children {
            if child.try_wait()?.is_some() {
                return Ok(Some(name.clone()));
            }
        }
        Ok(None)
    }

    /// Waits until the API answers and knows a pool; fails early when a started process exits.
    pub async fn wait_ready(&mut self, api: &Api) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(name) = self.exited()? {
                bail!("scoria {name} exited; see {}", self.log(&name).display());
            }
            if api.ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within {READY_TIMEOUT:?}",
                    self.root
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the started processes (SIGTERM, then SIGKILL after 30 s); drops the
    /// database and vhost unless `keep_data`; removes the work directory unless
    /// `keep_data` or `keep_logs`.
    pub async fn stop(&mut self, keep_data: bool, keep_logs: bool) {
        while let Some((name, child)) = self.children.pop() {
            stop_child(&name, child).await;
        }
        if let Some(name) = self.database_and_vhost.take().filter(|_| !keep_data) {
            warn(psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await);
            warn(rabbitmqctl(&["delete_vhost", &name]).await);
        }
        if let Some(dir) = self.own_volumes_dir.take().filter(|_| !keep_data) {
            warn(std::fs::remove_dir_all(&dir).context("cannot remove the volumes folder"));
        }
        if let Some(dir) = self.work_dir.take() {
            if keep_data || keep_logs {
                eprintln!("[bench] kept {}", dir.display());
            } else {
                warn(std::fs::remove_dir_all(&dir).context("cannot remove the work directory"));
            }
        }
    }
}

/// The deployment's `[DEFAULT]` lines in its INI file: noauth, the given
/// vhost.
fn deployment_ini(name: &str, port: u16) -> String {
    format!(
        "transport_url = {BROKER_URL}/{name}
auth_strategy = noauth
osapi_volume_listen_port = {port}
backend_stats_polling_interval = 5
"
    )
}

async fn stop_child(name: &str, mut child: Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if timeout(STOP_TIMEOUT, child.wait()).await.is_err() {
        eprintln!("[bench] scoria {name} did not stop on SIGTERM; killing it");
        warn(child.kill().await.context("kill"));
    }
}

fn warn(result: Result<()>) {
    if let Err(e) = result {
        eprintln!("[bench] warning: {e:#}");
    }
}

async fn psql(sql: &str) -> Result<()> {
    tool(
        "psql",
        &[
            "-h",
            PG_HOST,
            "-U",
            "postgres",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
    )
    .await
}

async fn rabbitmqctl(args: &[&str]) -> Result<()> {
    tool("rabbitmqctl", args).await
}

/// Runs a setup command to completion (at most 30 s); fails with its stderr.
async fn tool(program: &str, args: &[&str]) -> Result<()> {
    let run = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = timeout(STOP_TIMEOUT, run)
        .await
        .with_context(|| format!("{program} took longer than {STOP_TIMEOUT:?}"))?
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
