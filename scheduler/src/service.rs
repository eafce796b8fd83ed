//! The scheduler service: keeps the pool book fresh from stats reports and the
//! database, places each volume, and hands it to the chosen backend.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use scoria_bus::worker::{self, Consumer};
use scoria_bus::{Bus, Incoming};
use scoria_core::events::{self, Action, Detail, Resource};
use scoria_core::host::Host;
use scoria_core::model::{SCHEDULER_BINARY, VOLUME_BINARY};
use scoria_core::rpc::{
    volume_topic, RequestSpec, SchedulerRequest, VolumeRequest, SCHEDULER_TOPIC, STATS_FANOUT,
};
use scoria_core::stats::StatsReport;
use scoria_core::time::Timestamp;
use scoria_core::transitions::volume;
use scoria_core::{Error, RequestContext, Result};
use scoria_db::{Db, VolumeChanges, VolumeGuard};
use tokio::sync::{watch, Mutex};
use tracing::Instrument;

use crate::pools::PoolBook;
use crate::select::{select, NoValidBackend, Placement, SchedulerConfig};

/// Settings of the scheduler service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// This scheduler's host name.
    pub host: String,
    pub availability_zone: String,
    pub placement: SchedulerConfig,
    /// How often the heartbeat is written and the book refreshed from the database.
    pub report_interval: Duration,
    /// A backend silent for longer is considered down.
    pub service_down_time: Duration,
    /// How long a create waits for the first stats when none have arrived.
    pub init_wait: Duration,
    /// Volumes placed at once; further requests wait in the queue
    /// ([`DEFAULT_MAX_CONCURRENT_PLACEMENTS`] unless configured).
    pub max_concurrent_placements: usize,
    /// How long a stopping scheduler lets the placements in hand finish
    /// ([`worker::DEFAULT_EXIT_DEADLINE`] unless configured).
    pub exit_deadline: Duration,
}

/// Volumes placed at once unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENT_PLACEMENTS: usize = 16;

/// A running scheduler.
#[derive(Clone)]
pub struct Scheduler {
    db: Db,
    bus: Bus,
    cfg: Arc<ServiceConfig>,
    book: Arc<Mutex<PoolBook>>,
}

impl Scheduler {
    /// A scheduler, not yet running.
    pub fn new(db: Db, bus: Bus, cfg: ServiceConfig) -> Self {
        Scheduler {
            db,
            bus,
            cfg: Arc::new(cfg),
            book: Arc::default(),
        }
    }

    /// Serves the scheduler queue until `shutdown` turns true: placements run side by side,
    /// up to `max_concurrent_placements`, next to the stats intake and the periodic refresh.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let span = tracing::info_span!("scheduler", host = %self.cfg.host);
        async move {
            let stats = self.bus.subscribe(STATS_FANOUT).await?;
            let inbox = self.bus.consume(SCHEDULER_TOPIC).await?;
            self.refresh().await?;
            self.reschedule_unplaced().await?;
            let deadline = self.cfg.exit_deadline;
            let placements =
                Consumer::new("scheduler", self.cfg.max_concurrent_placements, deadline);
            let reports = Consumer::new("stats reports", 1, deadline);
            tracing::info!("scheduler ready");
            tokio::join!(
                placements.serve(inbox, shutdown.clone(), |msg| self.clone().handle(msg)),
                reports.serve(stats, shutdown.clone(), |msg| self.clone().take_report(msg)),
                worker::every(
                    "scheduler refresh",
                    self.cfg.report_interval,
                    shutdown,
                    || { self.refresh() }
                ),
            );
            tracing::info!("scheduler stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Takes a backend's stats report into the pool book.
    async fn take_report(self, report: Incoming) {
        match report.body::<StatsReport>() {
            Ok(r) => {
                self.book.lock().await.update(r);
            }
            Err(e) => tracing::error!(error = %e, "bad stats report"),
        }
    }

    /// Heartbeat, then drop backends that went silent and take newer stats from the database.
    async fn refresh(&self) -> Result<()> {
        self.db
            .service_heartbeat(
                SCHEDULER_BINARY,
                &self.cfg.host,
                &self.cfg.availability_zone,
                None,
            )
            .await?;
        let since = Timestamp::from_now(-(self.cfg.service_down_time.as_secs() as i64));
        let mut up = HashSet::new();
        let mut reports = Vec::new();
        for svc in self.db.list_services(None, Some(VOLUME_BINARY)).await? {
            if svc.disabled || svc.updated_at < since {
                continue;
            }
            up.insert(svc.host.clone());
            if let Some(r) = svc
                .stats
                .and_then(|s| serde_json::from_value::<StatsReport>(s).ok())
            {
                reports.push(r);
            }
        }
        let mut book = self.book.lock().await;
        for r in reports {
            book.update(r);
        }
        book.retain_backends(&up);
        Ok(())
    }

    async fn handle(self, msg: Incoming) {
        let ctx = msg.context().clone();
        let span = tracing::info_span!("schedule", request_id = %ctx.request_id);
        async {
            let outcome = match msg.body::<SchedulerRequest>() {
                Ok(SchedulerRequest::CreateVolume { request_spec }) => {
                    self.schedule_create(&ctx, request_spec).await
                }
                Err(e) => {
                    tracing::error!(error = %e, "dropping undecodable scheduler request");
                    Ok(())
                }
            };
            msg.settle(outcome).await;
        }
        .instrument(span)
        .await
    }

    /// Places a volume in `creating` and casts it to its backend.
    pub async fn schedule_create(&self, ctx: &RequestContext, mut spec: RequestSpec) -> Result<()> {
        let vol = match self.db.get_volume(&spec.volume_id).await {
            Ok(v) => v,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let op = &volume::CREATE;
        if op.interim != Some(vol.status) {
            return Ok(());
        }
        if let Some(host) = &vol.host {
            // Placed before a crash or redelivery: hand it to the same backend again.
            return self.cast_create(ctx, spec, host.clone()).await;
        }
        self.wait_for_stats().await?;
        let mut placement = self.place(&spec).await?;
        if placement.is_err() {
            // Reports may have reached the database but not this scheduler yet.
            self.refresh().await?;
            placement = self.place(&spec).await?;
        }
        let creating = op.in_progress();
        match placement {
            Ok(p) => {
                let placed = VolumeChanges {
                    host: Some(Some(p.pool.clone())),
                    ..Default::default()
                };
                let guard = VolumeGuard {
                    statuses: Some(creating),
                    host: Some(None),
                    ..Default::default()
                };
                if !self.db.update_volume(&vol.id, &placed, guard).await? {
                    return Ok(()); // another scheduler placed it, or it left `creating`
                }
                tracing::info!(volume = %vol.id, pool = %p.pool, "volume placed");
                spec.attempts.push(p.backend);
                self.cast_create(ctx, spec, p.pool).await
            }
            Err(why) => {
                tracing::warn!(volume = %vol.id, reason = %why, "no valid backend");
                let mut text = why.to_string();
                if !spec.attempt_errors.is_empty() {
                    text.push_str(&format!(
                        " Earlier attempts failed: {}.",
                        spec.attempt_errors.join("; ")
                    ));
                }
                let failed = VolumeChanges {
                    status: op.failed,
                    ..Default::default()
                };
                if self
                    .db
                    .update_volume(&vol.id, &failed, VolumeGuard::status_in(creating))
                    .await?
                {
                    let msg = events::user_message(
                        ctx,
                        Resource::Volume,
                        &vol.id,
                        Action::ScheduleAllocateVolume,
                        Detail::NoBackendAvailable,
                        &text,
                    );
                    self.db.insert_message(&msg).await?;
                }
                Ok(())
            }
        }
    }

    /// Picks a pool and books the volume's size on it.
    async fn place(&self, spec: &RequestSpec) -> Result<Result<Placement, NoValidBackend>> {
        let allocated: HashMap<String, f64> = self
            .db
            .allocated_by_pool_all()
            .await?
            .into_iter()
            .map(|(pool, gb)| (pool, gb as f64))
            .collect();
        let mut book = self.book.lock().await;
        book.sync_allocated(&allocated);
        let placement = select(&book, spec, &self.cfg.placement);
        if let Ok(p) = &placement {
            book.consume(p.pool.as_str(), spec.size as f64);
        }
        Ok(placement)
    }

    async fn cast_create(
        &self,
        ctx: &RequestContext,
        request_spec: RequestSpec,
        host: Host,
    ) -> Result<()> {
        let topic = volume_topic(host.backend());
        self.bus
            .cast(
                &topic,
                ctx,
                &VolumeRequest::CreateVolume {
                    request_spec: Box::new(request_spec),
                    host,
                },
            )
            .await
    }

    /// Right after start no backend may have reported yet: wait a little for one.
    async fn wait_for_stats(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.cfg.init_wait;
        while self.book.lock().await.pools().next().is_none()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.refresh().await?;
        }
        Ok(())
    }

    /// Volumes accepted but never placed (the process stopped before
    /// scheduling them) are scheduled now.
    async fn reschedule_unplaced(&self) -> Result<()> {
        for vol in self
            .db
            .volumes_in_status(volume::CREATE.in_progress(), Some(""))
            .await?
        {
            tracing::info!(volume = %vol.id, "scheduling a volume left unplaced");
            let ctx = RequestContext {
                project_id: vol.project_id.clone(),
                ..RequestContext::internal(RequestContext::new_request_id())
            };
            let extra_specs = self.db.type_extra_specs(&vol).await;
            let spec = RequestSpec::new(&vol, extra_specs, self.db.source_backend(&vol).await?);
            self.schedule_create(&ctx, spec).await?;
        }
        Ok(())
    }
}
