//! The volume manager: one worker per backend. It takes operations from the
//! backend's queue, runs them on the driver, commits the result to the
//! database and only then acknowledges the message. It reports the backend's
//! stats at a fixed interval and, at start, finishes or fails the operations a
//! previous run left unfinished.

mod connections;
mod handlers;
pub mod images;
pub mod nova;
mod recovery;
mod revert;
mod specs;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use scoria_bus::backoff::Backoff;
use scoria_bus::worker::{self, Consumer};
use scoria_bus::{Bus, Incoming};
use scoria_core::host::Host;
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::Result;
use scoria_db::Db;
use scoria_drivers::VolumeDriver;
use tokio::sync::watch;
use tracing::Instrument;

pub use images::{CacheLimits, CacheSettings, ImageSettings};
pub use nova::{NovaClient, NovaConfig};

/// Settings of one volume manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The service's name: `host@backend`.
    pub backend: Host,
    pub availability_zone: String,
    /// How often stats are reported (Cinder: `backend_stats_polling_interval`).
    pub stats_interval: Duration,
    /// Operations run at once.
    pub max_concurrent_ops: usize,
    /// How long a stopping manager lets the operations in hand finish
    /// ([`worker::DEFAULT_EXIT_DEADLINE`] unless configured).
    pub exit_deadline: Duration,
    /// Nova, told when an attached volume grows; `None`: Nova is not told.
    pub nova: Option<Arc<NovaClient>>,
    /// Glance, the conversion folder and the image-volume cache.
    pub images: ImageSettings,
}

/// The worker of one backend.
#[derive(Clone)]
pub struct VolumeManager {
    db: Db,
    bus: Bus,
    driver: Arc<dyn VolumeDriver>,
    cfg: Arc<ManagerConfig>,
    /// The id of this service's record, read once it exists.
    service_uuid: Arc<tokio::sync::OnceCell<String>>,
    /// Serialises the image-volume cache's fills and clones.
    cache_locks: Arc<images::CacheLocks>,
}

impl VolumeManager {
    /// A manager for `driver`, not yet running.
    pub fn new(db: Db, bus: Bus, driver: Arc<dyn VolumeDriver>, cfg: ManagerConfig) -> Self {
        VolumeManager {
            db,
            bus,
            driver,
            cfg: Arc::new(cfg),
            service_uuid: Arc::default(),
            cache_locks: Arc::default(),
        }
    }

    /// Sets up the driver, recovers unfinished work, then serves the backend's
    /// queue until `shutdown` turns true; operations in hand get until the exit deadline to finish.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let span = tracing::info_span!("volume", backend = %self.cfg.backend);
        async move {
            self.setup_driver(&mut shutdown).await;
            if *shutdown.borrow() {
                return Ok(());
            }
            self.recover().await?;
            self.restore_exports().await?;
            let inbox = self
                .bus
                .consume(&volume_topic(self.cfg.backend.as_str()))
                .await?;
            let operations = Consumer::new(
                "volume operations",
                self.cfg.max_concurrent_ops,
                self.cfg.exit_deadline,
            );
            tracing::info!("volume service ready");
            tokio::join!(
                operations.serve(inbox, shutdown.clone(), |msg| self.clone().handle(msg)),
                worker::every("stats report", self.cfg.stats_interval, shutdown, || {
                    self.report_stats()
                }),
            );
            tracing::info!("volume service stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn setup_driver(&self, shutdown: &mut watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        loop {
            match self.driver.setup().await {
                Ok(()) => return,
                Err(e) => tracing::error!(error = %e, "driver setup failed; retrying"),
            }
            tokio::select! {
                _ = backoff.wait() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn handle(self, msg: Incoming) {
        let ctx = msg.context().clone();
        let span = tracing::info_span!("op", request_id = %ctx.request_id);
        async {
            let req: VolumeRequest = match msg.body() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "dropping undecodable volume request");
                    let _ = msg.ack().await;
                    return;
                }
            };
            if req.is_call() {
                let answer = self.answer(&req).await;
                if let Err(e) = msg.reply(answer).await {
                    tracing::error!(error = %e, "could not send a reply");
                }
                return;
            }
            // When the database could not record the outcome, the message
            // comes back rather than the operation being lost.
            let outcome = self.dispatch(&ctx, req).await;
            msg.settle(outcome).await;
        }
        .instrument(span)
        .await
    }
}

/// `Ok(None)` for a record that is gone (deleted meanwhile), the record or
/// any other error as it is.
fn present<T>(r: scoria_core::Result<T>) -> scoria_core::Result<Option<T>> {
    match r {
        Err(scoria_core::Error::NotFound(_)) => Ok(None),
        other => other.map(Some),
    }
}
