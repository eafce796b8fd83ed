//! Starting Scoria's services on a database and a bus.

use std::sync::Arc;
use std::time::Duration;

use scoria_api::{ApiConfig, ApiState, AuthStrategy, QuotaDefaults};
use scoria_bus::worker::DEFAULT_EXIT_DEADLINE;
use scoria_bus::Bus;
use scoria_core::config::read_options;
use scoria_core::config::BackendConfig;
use scoria_core::host::Host;
use scoria_db::Db;
use scoria_glance::{Glance, GlanceConfig, GlanceOptions, ServiceUserOptions};
use scoria_scheduler::select::SchedulerConfig;
use scoria_scheduler::service::{Scheduler, ServiceConfig, DEFAULT_MAX_CONCURRENT_PLACEMENTS};
use scoria_volume_manager::images::{self, CacheOptions};
use scoria_volume_manager::{ImageSettings, ManagerConfig, NovaClient, VolumeManager};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// Where and how services run; the configuration's `[DEFAULT]` options.
#[derive(Debug, Clone)]
pub struct Site {
    /// This machine's name; volume services are `host@backend`.
    pub host: String,
    pub availability_zone: String,
    /// `backend_stats_polling_interval`.
    pub stats_interval: Duration,
    pub report_interval: Duration,
    pub service_down_time: Duration,
    /// How long a `call` may take (oslo.messaging's `rpc_response_timeout`).
    pub rpc_timeout: Duration,
    pub placement: SchedulerConfig,
    /// How long a scheduler waits for the first stats (`scheduler_driver_init_wait_time`).
    pub init_wait: Duration,
    /// Operations a volume service runs at once (`executor_thread_pool_size`).
    pub max_concurrent_ops: usize,
    /// Base URL of the api's links (`public_endpoint`).
    pub public_endpoint: Option<String>,
    pub quotas: QuotaDefaults,
    /// Nova, told by volume services when an attached volume grows (`[nova]`).
    pub nova: Option<Arc<NovaClient>>,
    /// Glance, for image operations (`[DEFAULT] glance_*`, `[service_user]`;
    /// see [`crate::deploy::glance`]).
    pub glance: Arc<Glance>,
    /// Where images are converted (`image_conversion_dir`); the system
    /// temporary folder when unset.
    pub image_conversion_dir: Option<String>,
    /// The internal project and user that own the image-volume cache.
    pub internal_tenant: Option<(String, String)>,
    /// Whether an attached volume may be uploaded to an image with `force`
    /// (`enable_force_upload`).
    pub enable_force_upload: bool,
}

impl Site {
    /// The default configuration, for `host` in `zone`.
    pub fn new(host: impl Into<String>, zone: impl Into<String>) -> Self {
        let mut site = Site::configured(&Config::defaults());
        site.host = host.into();
        site.availability_zone = zone.into();
        site
    }

    /// The site `config` describes, without Nova (see [`crate::deploy::nova`]).
    pub fn configured(config: &Config) -> Self {
        let d = &config.default;
        Site {
            host: d.host.clone().unwrap_or_else(host_name),
            availability_zone: d.storage_availability_zone.clone(),
            stats_interval: d.backend_stats_polling_interval,
            report_interval: d.report_interval,
            service_down_time: d.service_down_time,
            rpc_timeout: d.rpc_response_timeout,
            placement: SchedulerConfig {
                capacity_weight_multiplier: d.capacity_weight_multiplier,
                max_attempts: d.scheduler_max_attempts.get(),
            },
            init_wait: d.scheduler_driver_init_wait_time,
            max_concurrent_ops: d.executor_thread_pool_size.get(),
            public_endpoint: d.public_endpoint.clone(),
            quotas: QuotaDefaults::from(&config.quotas),
            nova: None,
            glance: unconfigured_glance(),
            image_conversion_dir: d.image_conversion_dir.clone(),
            enable_force_upload: d.enable_force_upload,
            internal_tenant: config
                .internal_tenant
                .internal()
                .map(|(p, u)| (p.to_string(), u.to_string())),
        }
    }
}

/// A Glance client with no Glance to call: image requests are refused.
pub fn unconfigured_glance() -> Arc<Glance> {
    let none = Default::default();
    let options: GlanceOptions = read_options("DEFAULT", &none).expect("documented defaults");
    let service: ServiceUserOptions =
        read_options("service_user", &none).expect("documented defaults");
    let cfg = GlanceConfig::from_options(&options, &service, None).expect("valid defaults");
    Glance::new(cfg).expect("no certificates to read")
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
    let service = Host::service(&site.host, &backend.name).map_err(anyhow::Error::msg)?;
    let cache: CacheOptions = read_options(&backend.name, &backend.options)?;
    let internal = site
        .internal_tenant
        .as_ref()
        .map(|(p, u)| (p.as_str(), u.as_str()));
    let images = ImageSettings {
        glance: site.glance.clone(),
        scratch: images::scratch_for(site.image_conversion_dir.as_deref(), service.as_str()),
        cache: cache
            .settings(&backend.name, internal)
            .map_err(anyhow::Error::msg)?,
    };
    let manager = VolumeManager::new(
        db.clone(),
        bus.clone(),
        driver,
        ManagerConfig {
            backend: service,
            availability_zone: site.availability_zone.clone(),
            stats_interval: site.stats_interval,
            max_concurrent_ops: site.max_concurrent_ops,
            exit_deadline: DEFAULT_EXIT_DEADLINE,
            nova: site.nova.clone(),
            images,
        },
    );
    Ok(tokio::spawn(manager.run(stop)))
}

/// Starts the volume service of each backend.
pub fn spawn_volumes(
    db: &Db,
    bus: &Bus,
    site: &Site,
    backends: &[BackendConfig],
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<Task>> {
    backends
        .iter()
        .map(|b| spawn_volume(db, bus, site, b, stop.clone()))
        .collect()
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
            init_wait: site.init_wait,
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
            public_endpoint: site.public_endpoint.clone(),
            quotas: site.quotas.clone(),
            service_down_time: site.service_down_time,
            rpc_timeout: site.rpc_timeout,
            glance: site.glance.clone(),
            enable_force_upload: site.enable_force_upload,
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
