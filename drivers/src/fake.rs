//! The `fake` driver: FOR FAULT INJECTION IN TESTS ONLY. It stores nothing
//! but sizes in memory, and can be told to be slow or to fail, so tests can
//! exercise rescheduling, restarts and timeouts.
//!
//! Options of the backend section:
//! - `fake_capacity_gb` (default `100`): the pool's total size;
//! - `fake_delay_ms` (default `0`): how long every create, delete, snapshot
//!   and extend takes;
//! - `fake_fail` (default empty): comma-separated operations that always fail
//!   with a temporary backend error: `create_volume`, `delete_volume`,
//!   `create_snapshot`, `delete_snapshot`, `extend_volume`,
//!   `initialize_connection`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use scoria_core::config::{BackendConfig, OptionDoc};
use scoria_core::stats::{BackendStats, Capabilities, PoolStats};
use scoria_core::Capacity;
use serde_json::Map;

use crate::{
    ConnectionInfo, DriverError, DriverResult, ExportSpec, LocalDevice, ModelUpdate, SnapshotSpec,
    VolumeDriver, VolumeSpec,
};

/// A fault-injection driver that keeps volume sizes in memory.
#[derive(Debug)]
pub struct FakeDriver {
    backend_name: String,
    capacity_gb: f64,
    delay: Duration,
    failing: HashSet<String>,
    /// Volume id → size in GiB; snapshot id → size in GiB.
    volumes: Mutex<HashMap<String, i64>>,
    snapshots: Mutex<HashMap<String, i64>>,
}

fn option<T: std::str::FromStr>(config: &BackendConfig, key: &str, default: T) -> DriverResult<T> {
    match config.options.get(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            DriverError::InvalidConfig(format!("backend {}: {key} = {v} is not valid", config.name))
        }),
    }
}

impl FakeDriver {
    /// Registry name.
    pub const NAME: &'static str = "fake";

    /// The backend-section options the driver reads.
    pub const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc {
            name: "fake_capacity_gb",
            default: "100.0",
            cinder: None,
            help: "Total capacity the fake backend reports, in GiB.",
        },
        OptionDoc {
            name: "fake_delay_ms",
            default: "0",
            cinder: None,
            help: "Delay added to every driver call, in milliseconds.",
        },
        OptionDoc {
            name: "fake_fail",
            default: "",
            cinder: None,
            help: "Comma-separated driver operations that fail (fault injection for tests).",
        },
    ];

    /// Reads the options of `config`.
    pub fn new(config: &BackendConfig) -> DriverResult<Self> {
        let failing = config
            .options
            .get("fake_fail")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(FakeDriver {
            backend_name: config.volume_backend_name.clone(),
            capacity_gb: option(config, "fake_capacity_gb", 100.0)?,
            delay: Duration::from_millis(option(config, "fake_delay_ms", 0)?),
            failing,
            volumes: Mutex::default(),
            snapshots: Mutex::default(),
        })
    }

    /// Registry constructor.
    pub fn create(config: &BackendConfig) -> DriverResult<Arc<dyn VolumeDriver>> {
        Ok(Arc::new(FakeDriver::new(config)?))
    }

    /// Waits the configured delay, then fails if `op` is set to fail.
    async fn act(&self, op: &str) -> DriverResult<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.failing.contains(op) {
            return Err(DriverError::Backend {
                message: format!("injected failure of {op} (fake driver, fake_fail)"),
                temporary: true,
            });
        }
        Ok(())
    }

    fn size_of(
        map: &Mutex<HashMap<String, i64>>,
        kind: &'static str,
        id: &str,
    ) -> DriverResult<i64> {
        let map = map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id).copied().ok_or_else(|| DriverError::NotFound {
            kind,
            id: id.to_string(),
        })
    }

    fn put(map: &Mutex<HashMap<String, i64>>, id: &str, size: i64) {
        map.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), size);
    }

    fn remove(map: &Mutex<HashMap<String, i64>>, id: &str) {
        map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Creates `volume` from a source of `source_size` GiB.
    fn copy_into(&self, volume: &VolumeSpec, source_size: i64) -> DriverResult<ModelUpdate> {
        if volume.size < source_size {
            return Err(DriverError::Invalid(format!(
                "volume {} of {} GiB cannot hold a source of {source_size} GiB",
                volume.id, volume.size
            )));
        }
        Self::put(&self.volumes, &volume.id, volume.size);
        Ok(ModelUpdate::default())
    }
}

#[async_trait]
impl VolumeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            native_clone: true,
            thin_provisioning: false,
            thick_provisioning: true,
            multiattach: true,
            online_extend: true,
            shared_targets: false,
            snapshot_revert: false,
            local_attach: false,
            min_volume_gb: 1,
            max_volume_gb: None,
        }
    }

    async fn setup(&self) -> DriverResult<()> {
        Ok(())
    }

    async fn stats(&self) -> DriverResult<BackendStats> {
        let (used, count) = {
            let v = self.volumes.lock().unwrap_or_else(|p| p.into_inner());
            (v.values().sum::<i64>() as f64, v.len() as u64)
        };
        Ok(BackendStats {
            volume_backend_name: self.backend_name.clone(),
            vendor_name: "Scoria".into(),
            driver_version: "1.0.0".into(),
            storage_protocol: "fake".into(),
            pools: vec![PoolStats {
                pool_name: self.backend_name.clone(),
                total_capacity_gb: Capacity::Gb(self.capacity_gb),
                free_capacity_gb: Capacity::Gb((self.capacity_gb - used).max(0.0)),
                allocated_capacity_gb: 0.0,
                provisioned_capacity_gb: Some(used),
                reserved_percentage: 0.0,
                max_over_subscription_ratio: "1.0".into(),
                thin_provisioning_support: false,
                thick_provisioning_support: true,
                multiattach: true,
                online_extend_support: true,
                qos_support: false,
                total_volumes: count,
                location_info: None,
                extra: Map::new(),
            }],
        })
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> DriverResult<ModelUpdate> {
        self.act("create_volume").await?;
        Self::put(&self.volumes, &volume.id, volume.size);
        Ok(ModelUpdate::default())
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> DriverResult<()> {
        self.act("delete_volume").await?;
        Self::remove(&self.volumes, &volume.id);
        Ok(())
    }

    async fn create_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        volume: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        self.act("create_snapshot").await?;
        let size = Self::size_of(&self.volumes, "volume", &volume.id)?;
        Self::put(&self.snapshots, &snapshot.id, size);
        Ok(ModelUpdate::default())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> DriverResult<()> {
        self.act("delete_snapshot").await?;
        Self::remove(&self.snapshots, &snapshot.id);
        Ok(())
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<ModelUpdate> {
        self.act("create_volume").await?;
        let size = Self::size_of(&self.snapshots, "snapshot", &snapshot.id)?;
        self.copy_into(volume, size)
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        self.act("create_volume").await?;
        let size = Self::size_of(&self.volumes, "volume", &source.id)?;
        self.copy_into(volume, size)
    }

    async fn extend_volume(&self, volume: &VolumeSpec, new_size: i64) -> DriverResult<()> {
        self.act("extend_volume").await?;
        let size = Self::size_of(&self.volumes, "volume", &volume.id)?;
        if new_size < size {
            return Err(DriverError::Invalid(format!(
                "cannot shrink volume {} from {size} to {new_size} GiB",
                volume.id
            )));
        }
        Self::put(&self.volumes, &volume.id, new_size);
        Ok(())
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        _export: &ExportSpec,
    ) -> DriverResult<ConnectionInfo> {
        self.act("initialize_connection").await?;
        Self::size_of(&self.volumes, "volume", &volume.id)?;
        let mut data = Map::new();
        data.insert("volume_id".into(), volume.id.clone().into());
        Ok(ConnectionInfo {
            driver_volume_type: "fake".into(),
            data,
        })
    }

    async fn terminate_connection(
        &self,
        _volume: &VolumeSpec,
        _attachment_id: Option<&str>,
    ) -> DriverResult<()> {
        Ok(())
    }

    async fn local_attach(&self, _volume: &VolumeSpec) -> DriverResult<LocalDevice> {
        Err(DriverError::Unsupported(
            "the fake driver stores no data".into(),
        ))
    }

    async fn local_detach(&self, _volume: &VolumeSpec) -> DriverResult<()> {
        Ok(())
    }
}
