//! `scoria serve`: api, scheduler and one `file` volume service in one
//! process, sharing a SQLite database and the in-process bus.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use scoria_api::AuthStrategy;
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_db::Db;
use tokio::sync::watch;

use crate::services::{self, Site};

/// Options of `scoria serve`.
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub stats_interval: u64,
}

/// Runs until SIGTERM or Ctrl-C, then lets in-flight work finish.
pub async fn run(opts: ServeOptions) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&opts.data_dir)?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let db = Db::connect(&format!(
        "sqlite://{}",
        data_dir.join("scoria.db").display()
    ))
    .await?;
    db.migrate().await?;
    db.ensure_default_type().await?;
    let bus = Bus::in_process();
    let mut site = Site::new(services::host_name(), "nova");
    site.stats_interval = Duration::from_secs(opts.stats_interval.max(1));
    let backend = BackendConfig {
        name: "file".into(),
        driver: "file".into(),
        volume_backend_name: "file".into(),
        options: BTreeMap::from([(
            "file_volumes_dir".to_string(),
            data_dir.join("volumes").display().to_string(),
        )]),
    };
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        services::spawn_volume(&db, &bus, &site, &backend, stopped.clone())?,
        services::spawn_scheduler(&db, &bus, &site, stopped),
    ];
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    tracing::info!(listen = %opts.listen, data_dir = %data_dir.display(), "scoria serve ready");
    let app = scoria_api::router(services::api_state(&db, &bus, &site, AuthStrategy::NoAuth));
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
