//! The volume manager: one worker per backend. It takes operations from the
//! backend's queue, runs them on the driver, commits the result to the
//! database and only then acknowledges the message. It reports the backend's
//! stats at a fixed interval and, at start, finishes or fails the operations a
//! previous run left unfinished.

mod connections;
mod handlers;
pub mod nova;
mod recovery;
mod revert;
mod specs;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use scoria_bus::{Bus, Incoming};
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::Result;
use scoria_db::Db;
use scoria_drivers::VolumeDriver;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use nova::{NovaClient, NovaConfig};

/// Settings of one volume manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// The service's host name: `host@backend`.
    pub backend: String,
    pub availability_zone: String,
    /// How often stats are reported (Cinder: `backend_stats_polling_interval`).
    pub stats_interval: Duration,
    /// Operations run at once.
    pub max_concurrent_ops: usize,
    /// Nova, told when an attached volume grows; `None`: Nova is not told.
    pub nova: Option<Arc<NovaClient>>,
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
        }
    }

    /// Sets up the driver, recovers unfinished work, then serves the backend's
    /// queue until `shutdown` turns true; in-flight operations are finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let span = tracing::info_span!("volume", backend = %self.cfg.backend);
        async move {
            self.setup_driver(&mut shutdown).await;
            if *shutdown.borrow() {
                return Ok(());
            }
            self.recover().await?;
            self.restore_exports().await?;
            let stats = tokio::spawn(self.clone().stats_loop(shutdown.clone()));
            let mut inbox = self.bus.consume(&volume_topic(&self.cfg.backend)).await?;
            let limit = Arc::new(Semaphore::new(self.cfg.max_concurrent_ops.max(1)));
            let mut running = JoinSet::new();
            tracing::info!("volume service ready");
            loop {
                let permit = tokio::select! {
                    p = limit.clone().acquire_owned() => p.expect("semaphore never closes"),
                    _ = shutdown.changed() => break,
                };
                let msg = tokio::select! {
                    m = inbox.next() => m,
                    _ = shutdown.changed() => break,
                };
                let Some(msg) = msg else { break };
                let this = self.clone();
                running.spawn(async move {
                    this.handle(msg).await;
                    drop(permit);
                });
                while running.try_join_next().is_some() {}
            }
            tracing::info!(in_flight = running.len(), "volume service stopping");
            while running.join_next().await.is_some() {}
            stats.abort();
            Ok(())
        }
        .instrument(span)
        .await
    }

    async fn setup_driver(&self, shutdown: &mut watch::Receiver<bool>) {
        let mut delay = Duration::from_millis(500);
        loop {
            match self.driver.setup().await {
                Ok(()) => return,
                Err(e) => tracing::error!(error = %e, "driver setup failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    async fn handle(&self, msg: Incoming) {
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
            match self.dispatch(&ctx, req).await {
                Ok(()) => {
                    let _ = msg.ack().await;
                }
                Err(e) => {
                    // The database could not record the outcome: let the
                    // message come back rather than lose the operation.
                    tracing::error!(error = %e, "operation not committed; requeueing");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let _ = msg.requeue().await;
                }
            }
        }
        .instrument(span)
        .await
    }
}
