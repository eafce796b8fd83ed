//! Starting Scoria's services on a database and a bus.

use std::sync::Arc;
use std::time::Duration;

use scoria_api::{ApiConfig, ApiState, AuthStrategy, QuotaDefaults};
use scoria_bus::worker::DEFAULT_EXIT_DEADLINE;
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_core::host::Host;
use scoria_db::Db;
use scoria_scheduler::select::SchedulerConfig;
use scoria_scheduler::service::{Scheduler, ServiceConfig, DEFAULT_MAX_CONCURRENT_PLACEMENTS};
use scoria_volume_manager::{ManagerConfig, NovaClient, VolumeManager};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Seconds of silence after which a service counts as down (Cinder's default).
pub const SERVICE_DOWN_TIME: Duration = Duration::from_secs(60);

/// Where and how services run.
#[derive(Debug, Clone)]
pub struct Site {
    /// This machine's name; volume services are `host@backend`.
    pub host: String,
    pub availability_zone: String,
    pub stats_interval: Duration,
    pub report_interval: Duration,
    pub service_down_time: Duration,
    /// How long a `call` may take (oslo.messaging's `rpc_response_timeout`).
    pub rpc_timeout: Duration,
    pub placement: SchedulerConfig,
    /// Nova, told by volume services when an attached volume grows (`[nova]`).
    pub nova: Option<Arc<NovaClient>>,
}

impl Site {
    /// Defaults for `host` in `zone`.
    pub fn new(host: impl Into<String>, zone: impl Into<String>) -> Self {
        Site {
            host: host.into(),
            availability_zone: zone.into(),
            stats_interval: Duration::from_secs(10),
            report_interval: Duration::from_secs(10),
            service_down_time: SERVICE_DOWN_TIME,
            rpc_timeout: Duration::from_secs(60),
            placement: SchedulerConfig::default(),
            nova: None,
        }
    }
}

/// A running service task.
pub type Task = JoinHandle<scoria_core::Result<()>>;

/// Starts the volume service of one backend.
pub fn spawn_volume(
    db: &Db,
    bus: &Bus,
    site: &Site,
    backend: &BackendConfig,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Task> {
    let driver = scoria_drivers::registry::create(backend)?;
    let manager = VolumeManager::new(
        db.clone(),
        bus.clone(),
        driver,
        ManagerConfig {
            backend: Host::service(&site.host, &backend.name).map_err(anyhow::Error::msg)?,
            availability_zone: site.availability_zone.clone(),
            stats_interval: site.stats_interval,
            max_concurrent_ops: 16,
            exit_deadline: DEFAULT_EXIT_DEADLINE,
            nova: site.nova.clone(),
        },
    );
    Ok(tokio::spawn(manager.run(stop)))
}

/// Starts a scheduler.
pub fn spawn_scheduler(db: &Db, bus: &Bus, site: &Site, stop: watch::Receiver<bool>) -> Task {
    let scheduler = Scheduler::new(
        db.clone(),
        bus.clone(),
        ServiceConfig {
            host: site.host.clone(),
            availability_zone: site.availability_zone.clone(),
            placement: site.placement.clone(),
            report_interval: site.report_interval,
            service_down_time: site.service_down_time,
            init_wait: Duration::from_secs(10),
            max_concurrent_placements: DEFAULT_MAX_CONCURRENT_PLACEMENTS,
            exit_deadline: DEFAULT_EXIT_DEADLINE,
        },
    );
    tokio::spawn(scheduler.run(stop))
}

/// The api's shared state.
pub fn api_state(db: &Db, bus: &Bus, site: &Site, auth: AuthStrategy) -> ApiState {
    ApiState {
        db: db.clone(),
        bus: bus.clone(),
        cfg: Arc::new(ApiConfig {
            auth,
            default_availability_zone: site.availability_zone.clone(),
            public_endpoint: None,
            quotas: QuotaDefaults::default(),
            service_down_time: site.service_down_time,
            rpc_timeout: site.rpc_timeout,
        }),
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Waits for service tasks to end, reporting the first failure.
pub async fn join_all(tasks: Vec<Task>) -> anyhow::Result<()> {
    for t in tasks {
        t.await??;
    }
    Ok(())
}
