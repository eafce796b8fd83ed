//! `scoria serve`: api, scheduler and one `file` volume service in one
//! process, sharing a SQLite database and the in-process bus.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use scoria_api::{ApiConfig, ApiState, AuthStrategy, QuotaDefaults};
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_db::Db;
use scoria_scheduler::select::SchedulerConfig;
use scoria_scheduler::service::{Scheduler, ServiceConfig};
use scoria_volume_manager::{ManagerConfig, VolumeManager};
use tokio::sync::watch;

/// Options of `scoria serve`.
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub stats_interval: u64,
}

/// Availability zone of the embedded backend.
const ZONE: &str = "nova";
/// Seconds of silence after which a service counts as down (Cinder's default).
const SERVICE_DOWN_TIME: Duration = Duration::from_secs(60);

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Resolves when SIGTERM or Ctrl-C arrives.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
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
    let host = host_name();
    let (stop, shutdown) = watch::channel(false);

    let backend = BackendConfig {
        name: "file".into(),
        driver: "file".into(),
        volume_backend_name: "file".into(),
        options: BTreeMap::from([(
            "file_volumes_dir".to_string(),
            data_dir.join("volumes").display().to_string(),
        )]),
    };
    let driver = scoria_drivers::registry::create(&backend)?;
    let manager = VolumeManager::new(
        db.clone(),
        bus.clone(),
        driver,
        ManagerConfig {
            backend: format!("{host}@{}", backend.name),
            availability_zone: ZONE.into(),
            stats_interval: Duration::from_secs(opts.stats_interval.max(1)),
            max_concurrent_ops: 16,
        },
    );
    let scheduler = Scheduler::new(
        db.clone(),
        bus.clone(),
        ServiceConfig {
            host: host.clone(),
            availability_zone: ZONE.into(),
            placement: SchedulerConfig::default(),
            report_interval: Duration::from_secs(10),
            service_down_time: SERVICE_DOWN_TIME,
            init_wait: Duration::from_secs(10),
        },
    );
    let volume_task = tokio::spawn(manager.run(shutdown.clone()));
    let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));

    let state = ApiState {
        db,
        bus,
        cfg: Arc::new(ApiConfig {
            auth: AuthStrategy::NoAuth,
            default_availability_zone: ZONE.into(),
            public_endpoint: None,
            quotas: QuotaDefaults::default(),
            service_down_time: SERVICE_DOWN_TIME,
        }),
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    tracing::info!(listen = %opts.listen, data_dir = %data_dir.display(), "scoria serve ready");
    axum::serve(listener, scoria_api::router(state))
        .with_graceful_shutdown(async move {
            stop_signal().await;
            tracing::info!("stopping: finishing in-flight work");
            let _ = stop.send(true);
        })
        .await?;
    volume_task.await??;
    scheduler_task.await??;
    tracing::info!("stopped");
    Ok(())
}
