//! Periodic stats: the driver's report, completed with what the database
//! knows, stored with the service's heartbeat and published to the schedulers.

use std::collections::HashMap;

use scoria_core::model::VOLUME_BINARY;
use scoria_core::rpc::STATS_FANOUT;
use scoria_core::stats::StatsReport;
use scoria_core::time::Timestamp;
use scoria_core::{Error, RequestContext, Result};

use crate::VolumeManager;

impl VolumeManager {
    /// The driver's current report, completed with what the database knows.
    pub(crate) async fn current_report(&self) -> Result<StatsReport> {
        let backend = &self.cfg.backend;
        let mut stats = self
            .driver
            .stats()
            .await
            .map_err(|e| Error::Internal(format!("driver stats failed: {e}")))?;
        let allocated: HashMap<String, i64> = self
            .db
            .allocated_by_pool(backend.as_str())
            .await?
            .into_iter()
            .collect();
        for pool in &mut stats.pools {
            let key = backend.in_pool(&pool.pool_name);
            let gb = allocated.get(key.as_str()).copied().unwrap_or(0);
            pool.allocated_capacity_gb = gb as f64;
        }
        Ok(StatsReport {
            backend: backend.clone(),
            availability_zone: self.cfg.availability_zone.clone(),
            timestamp: Timestamp::now(),
            capabilities: self.driver.capabilities(),
            stats,
        })
    }

    /// Collects, stores and publishes one stats report.
    pub async fn report_stats(&self) -> Result<()> {
        let (backend, zone) = (self.cfg.backend.as_str(), &self.cfg.availability_zone);
        let report = match self.current_report().await {
            Ok(r) => r,
            Err(e) => {
                // Stay visible as a live service; the schedulers keep the last good stats.
                self.db
                    .service_heartbeat(VOLUME_BINARY, backend, zone, None)
                    .await?;
                return Err(e);
            }
        };
        let json = serde_json::to_value(&report).map_err(|e| Error::Internal(e.to_string()))?;
        self.db
            .service_heartbeat(VOLUME_BINARY, backend, zone, Some(&json))
            .await?;
        let ctx = RequestContext::internal(RequestContext::new_request_id());
        self.bus.fanout(STATS_FANOUT, &ctx, &report).await
    }
}
