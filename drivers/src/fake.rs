//! The `fake` driver (cargo feature `fake`): FOR TESTS ONLY. It keeps volume
//! and snapshot sizes in memory and no data, declaring so
//! ([`DataAccess::None`]); the fault-injection layer
//! ([`crate::layers`], `fault_inject`, `fault_delay_ms`) makes it fail or slow.
//!
//! It hands out a `provider_location` for every volume and snapshot it makes
//! and refuses a call that does not bring it back, so the tests running on it
//! check that the volume manager and the compliance kit pass model updates on.
//!
//! Option of the backend section: `fake_capacity_gb` (default `100`), the
//! pool's total size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use scoria_core::config::{BackendConfig, OptionDoc};
use scoria_core::stats::{BackendStats, Capabilities, PoolStats};
use scoria_core::Capacity;
use serde::Deserialize;
use serde_json::Map;

use crate::options::from_options;
use crate::{
    ConnectionInfo, DataAccess, DriverError, DriverResult, ExportSpec, LocalDevice, ModelUpdate,
    SnapshotSpec, VolumeDriver, VolumeSpec,
};

/// A test driver that keeps volume and snapshot sizes in memory.
#[derive(Debug)]
pub struct FakeDriver {
    backend_name: String,
    capacity_gb: f64,
    /// Volume id → size in GiB; snapshot id → size in GiB.
    volumes: Mutex<HashMap<String, i64>>,
    snapshots: Mutex<HashMap<String, i64>>,
}

/// The fake driver's options.
#[derive(Debug, Deserialize)]
pub struct FakeConfig {
    /// Total capacity the pool reports, in GiB.
    #[serde(default = "default_capacity")]
    pub fake_capacity_gb: f64,
}

fn default_capacity() -> f64 {
    100.0
}

/// The `provider_location` the fake gives resource `id`.
fn location(kind: &str, id: &str) -> String {
    format!("fake://{kind}/{id}")
}

impl FakeDriver {
    /// Registry name.
    pub const NAME: &'static str = "fake";

    /// The backend-section options the driver reads.
    pub const OPTIONS: &'static [OptionDoc] = &[OptionDoc {
        name: "fake_capacity_gb",
        default: "100.0",
        cinder: None,
        help: "Total capacity the fake backend reports, in GiB.",
    }];

    /// Reads the options of `config`.
    pub fn new(config: &BackendConfig) -> DriverResult<Self> {
        let options: FakeConfig = from_options(config)?;
        Ok(FakeDriver {
            backend_name: config.volume_backend_name.clone(),
            capacity_gb: options.fake_capacity_gb,
            volumes: Mutex::default(),
            snapshots: Mutex::default(),
        })
    }

    /// Registry constructor.
    pub fn create(config: &BackendConfig) -> DriverResult<Arc<dyn VolumeDriver>> {
        Ok(Arc::new(FakeDriver::new(config)?))
    }

    /// Refuses a known resource handed over without the location the fake gave it.
    fn expect_location(kind: &str, id: &str, given: &Option<String>) -> DriverResult<()> {
        if given.as_deref() == Some(location(kind, id).as_str()) {
            return Ok(());
        }
        Err(DriverError::Invalid(format!(
            "{kind} {id} came back with provider_location {given:?}, not the model update {:?} \
             the fake driver returned",
            location(kind, id)
        )))
    }

    /// The size of volume `volume`, checking it came back with its location.
    fn volume_size(&self, volume: &VolumeSpec) -> DriverResult<i64> {
        let size = Self::size_of(&self.volumes, "volume", &volume.id)?;
        Self::expect_location("volume", &volume.id, &volume.provider_location)?;
        Ok(size)
    }

    /// The size of `snapshot`, checking it came back with its location.
    fn snapshot_size(&self, snapshot: &SnapshotSpec) -> DriverResult<i64> {
        let size = Self::size_of(&self.snapshots, "snapshot", &snapshot.id)?;
        Self::expect_location("snapshot", &snapshot.id, &snapshot.provider_location)?;
        Ok(size)
    }

    /// Records volume `volume` and returns its location.
    fn keep_volume(&self, volume: &VolumeSpec, size: i64) -> ModelUpdate {
        Self::put(&self.volumes, &volume.id, size);
        ModelUpdate {
            provider_location: Some(location("volume", &volume.id)),
        }
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
        Ok(self.keep_volume(volume, volume.size))
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
            thick_provisioning: true,
            multiattach: true,
            online_extend: true,
            min_volume_gb: 1,
            ..Capabilities::default()
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
        Ok(self.keep_volume(volume, volume.size))
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> DriverResult<()> {
        match self.volume_size(volume) {
            Ok(_) => Self::remove(&self.volumes, &volume.id),
            Err(DriverError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn create_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        volume: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let size = self.volume_size(volume)?;
        Self::put(&self.snapshots, &snapshot.id, size);
        Ok(ModelUpdate {
            provider_location: Some(location("snapshot", &snapshot.id)),
        })
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> DriverResult<()> {
        match self.snapshot_size(snapshot) {
            Ok(_) => Self::remove(&self.snapshots, &snapshot.id),
            Err(DriverError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<ModelUpdate> {
        let size = self.snapshot_size(snapshot)?;
        self.copy_into(volume, size)
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let size = self.volume_size(source)?;
        self.copy_into(volume, size)
    }

    async fn extend_volume(&self, volume: &VolumeSpec, new_size: i64) -> DriverResult<()> {
        let size = self.volume_size(volume)?;
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
        self.volume_size(volume)?;
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

    fn data_access(&self) -> DataAccess<'_> {
        DataAccess::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(provider_location: Option<String>) -> VolumeSpec {
        VolumeSpec {
            id: "v1".into(),
            size: 1,
            pool: None,
            provider_location,
            extra_specs: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_volume_must_come_back_with_its_location() {
        let config = BackendConfig {
            name: "fake".into(),
            driver: FakeDriver::NAME.into(),
            volume_backend_name: "fake".into(),
            options: Default::default(),
        };
        let driver = FakeDriver::new(&config).unwrap();
        let mut vol = volume(None);
        let update = driver.create_volume(&vol).await.unwrap();
        let forgotten = driver.extend_volume(&vol, 2).await;
        assert!(
            matches!(forgotten, Err(DriverError::Invalid(_))),
            "{forgotten:?}"
        );
        update.apply(&mut vol);
        assert_eq!(vol.provider_location.as_deref(), Some("fake://volume/v1"));
        driver.extend_volume(&vol, 2).await.unwrap();
        driver.delete_volume(&vol).await.unwrap();
        driver.delete_volume(&volume(None)).await.unwrap();
    }
}
