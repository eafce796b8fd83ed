//! `scoria serve`: api, scheduler and volume services in one process, sharing
//! a SQLite database and the in-process bus. Without a configuration file it
//! runs one `file` backend; with one, the file's `enabled_backends`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use scoria_api::AuthStrategy;
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_db::Db;
use tokio::sync::watch;

use crate::config::Sources;
use crate::deploy::Deployment;
use crate::services::{self, Site, Task};

/// Options of `scoria serve`.
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Seconds between backend stats reports; `None`: the configuration
    /// file's `backend_stats_polling_interval`, else 10.
    pub stats_interval: Option<u64>,
    /// An INI file as for `scoria volume` (cinder.conf option names).
    pub config_file: Option<PathBuf>,
}

/// The built-in backend of a `scoria serve` without `enabled_backends`.
fn builtin_backend(data_dir: &Path) -> BackendConfig {
    BackendConfig {
        name: "file".into(),
        driver: "file".into(),
        volume_backend_name: "file".into(),
        options: BTreeMap::from([(
            "file_volumes_dir".to_string(),
            data_dir.join("volumes").display().to_string(),
        )]),
    }
}

/// Where and what `scoria serve` runs: its site and its backends. With a
/// configuration file, its `[DEFAULT]` and `[nova]` options apply as in the
/// deployment commands, and its `enabled_backends` replace the built-in
/// backend; a `file` backend without `file_volumes_dir` keeps its volumes in
/// `<data_dir>/volumes-<backend>`.
pub fn plan(opts: &ServeOptions, data_dir: &Path) -> anyhow::Result<(Site, Vec<BackendConfig>)> {
    let (mut site, mut backends) = match &opts.config_file {
        None => (Site::new(services::host_name(), "nova"), Vec::new()),
        Some(file) => {
            let dep = Deployment::load(&Sources::file(Some(file)))?;
            let backends = dep.config.backends()?;
            (dep.site, backends)
        }
    };
    if let Some(secs) = opts.stats_interval {
        site.stats_interval = Duration::from_secs(secs);
    }
    site.stats_interval = site.stats_interval.max(Duration::from_secs(1));
    if site.image_conversion_dir.is_none() {
        site.image_conversion_dir = Some(data_dir.join("conversion").display().to_string());
    }
    if backends.is_empty() {
        backends.push(builtin_backend(data_dir));
    }
    for b in &mut backends {
        if b.driver == "file" && !b.options.contains_key("file_volumes_dir") {
            let dir = data_dir.join(format!("volumes-{}", b.name));
            b.options
                .insert("file_volumes_dir".into(), dir.display().to_string());
        }
    }
    Ok((site, backends))
}

/// A started `scoria serve` whose api is not listening yet.
pub struct Started {
    /// The Cinder v3 api, to be served.
    pub app: axum::Router,
    pub site: Site,
    pub backends: Vec<BackendConfig>,
    pub db: Db,
    pub data_dir: PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<Task>,
}

impl Started {
    /// Stops the services, letting in-flight work finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        services::join_all(self.tasks).await
    }
}

/// Opens the database and starts the scheduler and the volume services.
pub async fn start(opts: &ServeOptions) -> anyhow::Result<Started> {
    let data_dir = std::path::absolute(&opts.data_dir)?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let (site, backends) = plan(opts, &data_dir)?;
    let db = Db::connect(&format!(
        "sqlite://{}",
        data_dir.join("scoria.db").display()
    ))
    .await?;
    db.migrate().await?;
    db.ensure_default_type().await?;
    let bus = Bus::in_process();
    let (stop, stopped) = watch::channel(false);
    let mut tasks = services::spawn_volumes(&db, &bus, &site, &backends, &stopped)?;
    tasks.push(services::spawn_scheduler(&db, &bus, &site, stopped));
    let app = scoria_api::router(services::api_state(&db, &bus, &site, AuthStrategy::NoAuth));
    Ok(Started {
        app,
        site,
        backends,
        db,
        data_dir,
        stop,
        tasks,
    })
}

/// Runs until SIGTERM or Ctrl-C, then lets in-flight work finish.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    let started = start(&opts).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let names: Vec<&str> = started.backends.iter().map(|b| b.name.as_str()).collect();
    tracing::info!(
        listen = %opts.listen,
        data_dir = %started.data_dir.display(),
        backends = %names.join(","),
        "scoria serve ready"
    );
    let Started {
        app, stop, tasks, ..
    } = started;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            services::stop_signal().await;
            tracing::info!("stopping: finishing in-flight work");
            let _ = stop.send(true);
        })
        .await?;
    services::join_all(tasks).await?;
    tracing::info!("stopped");
    Ok(())
}
