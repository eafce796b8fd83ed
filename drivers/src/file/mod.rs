//! The `file` driver: every volume is a sparse raw file in one directory.
//!
//! Volumes live at `<file_volumes_dir>/volume-<id>` and snapshots at
//! `<file_volumes_dir>/snapshot-<id>`. Snapshots and copies are reflinks where
//! the filesystem supports them (XFS, btrfs) and sparse copies elsewhere. New
//! content is always written under a hidden temporary name and renamed into
//! place, so a crash never leaves a half-written file under a final name.
//!
//! Its options are the typed [`FileConfig`] (module `config`). `target_helper`
//! says how hosts reach a volume: `local` (default) hands out the file's path
//! (`driver_volume_type` `local`); `tgtadm` exports the file over iSCSI
//! through tgtd, configured by the options of [`crate::iscsi`]. The driver's
//! [`VolumeData`] reads and writes the files directly.

mod config;
mod fsops;

pub use config::{FileConfig, TargetHelper};

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::os::unix::fs::FileExt;

use async_trait::async_trait;
use scoria_core::config::{BackendConfig, OptionDoc};
use scoria_core::stats::{BackendStats, Capabilities, PoolStats};
use scoria_core::Capacity;
use serde_json::{Map, Value};

use crate::iscsi::TgtTarget;
use crate::{
    ConnectionInfo, DataAccess, DriverError, DriverResult, ExportSpec, LocalDevice, ModelUpdate,
    SnapshotSpec, VolumeData, VolumeDriver, VolumeSpec,
};

const GIB: u64 = 1 << 30;
/// Longest id accepted; keeps file names well under the usual 255-byte limit.
const MAX_ID_LEN: usize = 128;

/// A driver keeping volumes as sparse files in a local directory.
#[derive(Debug)]
pub struct FileDriver {
    dir: PathBuf,
    backend_name: String,
    pool_name: String,
    reserved_percentage: f64,
    max_over_subscription_ratio: String,
    /// Whether the directory's filesystem can reflink; found by [`VolumeDriver::setup`].
    reflink: AtomicBool,
    /// The iSCSI target exporting volumes (`target_helper = tgtadm`), or
    /// `None` to hand out local paths.
    iscsi: Option<TgtTarget>,
}

/// A volume or snapshot file, with what to call it when it is missing.
struct Resource {
    kind: &'static str,
    id: String,
    path: PathBuf,
}

impl Resource {
    /// Maps "no such file" to [`DriverError::NotFound`] for this resource.
    fn missing(&self, e: io::Error) -> DriverError {
        if e.kind() == io::ErrorKind::NotFound {
            DriverError::NotFound {
                kind: self.kind,
                id: self.id.clone(),
            }
        } else {
            e.into()
        }
    }

    fn open(&self, write: bool) -> DriverResult<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(&self.path)
            .map_err(|e| self.missing(e))
    }

    async fn ensure_exists(&self) -> DriverResult<()> {
        tokio::fs::metadata(&self.path)
            .await
            .map(drop)
            .map_err(|e| self.missing(e))
    }
}

impl FileDriver {
    /// The driver's registry name.
    pub const NAME: &'static str = "file";

    /// The backend-section options the driver reads.
    pub const OPTIONS: &'static [OptionDoc] = config::OPTIONS;

    /// Reads the driver's options from a backend section; touches no files.
    pub fn new(config: &BackendConfig) -> DriverResult<Self> {
        let file = FileConfig::from_config(config)?;
        Ok(Self {
            iscsi: file.iscsi_target(config)?,
            dir: file.file_volumes_dir,
            backend_name: config.volume_backend_name.clone(),
            pool_name: file
                .file_pool_name
                .unwrap_or_else(|| config.volume_backend_name.clone()),
            reserved_percentage: file.reserved_percentage,
            max_over_subscription_ratio: file.max_over_subscription_ratio,
            reflink: AtomicBool::new(false),
        })
    }

    /// Registry constructor: [`FileDriver::new`] behind the trait object.
    pub fn create(config: &BackendConfig) -> DriverResult<Arc<dyn VolumeDriver>> {
        Ok(Arc::new(Self::new(config)?))
    }

    fn volume_file(&self, id: &str) -> DriverResult<Resource> {
        self.resource("volume", id)
    }

    fn snapshot_file(&self, id: &str) -> DriverResult<Resource> {
        self.resource("snapshot", id)
    }

    fn resource(&self, kind: &'static str, id: &str) -> DriverResult<Resource> {
        validate_id(id)?;
        Ok(Resource {
            kind,
            id: id.to_string(),
            path: self.dir.join(format!("{kind}-{id}")),
        })
    }

    /// tgtd keeps the size a LUN had when it was exported, so an exported
    /// volume cannot grow where its host sees it.
    fn online_extend(&self) -> bool {
        self.iscsi.is_none()
    }

    /// Copies `source` to `target` (reflink if possible), growing the copy to
    /// `size` GiB when given. A target smaller than the source is refused.
    async fn copy(
        &self,
        source: Resource,
        target: Resource,
        size: Option<i64>,
    ) -> DriverResult<()> {
        let wanted = size.map(size_bytes).transpose()?;
        let reflink = self.reflink.load(Ordering::Relaxed);
        blocking(move || {
            let src = source.open(false)?;
            let src_len = src.metadata()?.len();
            if wanted.is_some_and(|w| w < src_len) {
                return Err(DriverError::Invalid(format!(
                    "{} {} cannot be smaller than its source {} {}",
                    target.kind, target.id, source.kind, source.id
                )));
            }
            fsops::replace_atomically(&target.path, |file| {
                if !(reflink && fsops::reflink(&src, file).is_ok()) {
                    fsops::sparse_copy(&src, file)?;
                }
                match wanted {
                    Some(len) if len > src_len => file.set_len(len),
                    _ => Ok(()),
                }
            })?;
            Ok(())
        })
        .await
    }

    /// Removes a file and any temporary file left by an interrupted write.
    async fn remove(&self, resource: Resource) -> DriverResult<()> {
        blocking(move || {
            fsops::remove_if_exists(&resource.path)?;
            fsops::remove_if_exists(&fsops::part_path(&resource.path))?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl VolumeDriver for FileDriver {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            native_clone: self.reflink.load(Ordering::Relaxed),
            thin_provisioning: true,
            thick_provisioning: false,
            multiattach: true,
            online_extend: self.online_extend(),
            shared_targets: false,
            snapshot_revert: true,
            local_attach: true,
            min_volume_gb: 1,
            max_volume_gb: None,
        }
    }

    async fn setup(&self) -> DriverResult<()> {
        let dir = self.dir.clone();
        let reflink = blocking(move || {
            std::fs::create_dir_all(&dir)?;
            Ok(fsops::probe_reflink(&dir)?)
        })
        .await?;
        self.reflink.store(reflink, Ordering::Relaxed);
        if let Some(iscsi) = &self.iscsi {
            iscsi.check().await?;
        }
        let iscsi = self.iscsi.is_some();
        tracing::info!(dir = %self.dir.display(), reflink, iscsi, "file driver ready");
        Ok(())
    }

    async fn stats(&self) -> DriverResult<BackendStats> {
        let dir = self.dir.clone();
        let ((total, free), (provisioned, volumes)) =
            blocking(move || Ok((fsops::space(&dir)?, volume_usage(&dir)?))).await?;
        let mut extra = Map::new();
        extra.insert(
            "reflink".into(),
            Value::Bool(self.reflink.load(Ordering::Relaxed)),
        );
        let pool = PoolStats {
            pool_name: self.pool_name.clone(),
            total_capacity_gb: Capacity::Gb(gib(total)),
            free_capacity_gb: Capacity::Gb(gib(free)),
            allocated_capacity_gb: 0.0,
            provisioned_capacity_gb: Some(gib(provisioned)),
            reserved_percentage: self.reserved_percentage,
            max_over_subscription_ratio: self.max_over_subscription_ratio.clone(),
            thin_provisioning_support: true,
            thick_provisioning_support: false,
            multiattach: true,
            online_extend_support: self.online_extend(),
            qos_support: false,
            total_volumes: volumes,
            location_info: None,
            extra,
        };
        Ok(BackendStats {
            volume_backend_name: self.backend_name.clone(),
            vendor_name: "Scoria".into(),
            driver_version: "1.0.0".into(),
            storage_protocol: match self.iscsi {
                Some(_) => TgtTarget::STORAGE_PROTOCOL.into(),
                None => "local".into(),
            },
            pools: vec![pool],
        })
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> DriverResult<ModelUpdate> {
        let path = self.volume_file(&volume.id)?.path;
        let len = size_bytes(volume.size)?;
        blocking(move || {
            // A re-run after a crash finds the file complete (it is renamed into
            // place only when done); anything else is created afresh.
            if !std::fs::metadata(&path).is_ok_and(|m| m.len() == len) {
                fsops::replace_atomically(&path, |file| file.set_len(len))?;
            }
            Ok(())
        })
        .await?;
        Ok(ModelUpdate::default())
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> DriverResult<()> {
        let file = self.volume_file(&volume.id)?;
        if let Some(iscsi) = &self.iscsi {
            iscsi.terminate_connection(volume, None).await?;
        }
        self.remove(file).await
    }

    async fn create_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        volume: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let source = self.volume_file(&volume.id)?;
        let target = self.snapshot_file(&snapshot.id)?;
        self.copy(source, target, None).await?;
        Ok(ModelUpdate::default())
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> DriverResult<()> {
        self.remove(self.snapshot_file(&snapshot.id)?).await
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<ModelUpdate> {
        let source = self.snapshot_file(&snapshot.id)?;
        let target = self.volume_file(&volume.id)?;
        self.copy(source, target, Some(volume.size)).await?;
        Ok(ModelUpdate::default())
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let source = self.volume_file(&source.id)?;
        let target = self.volume_file(&volume.id)?;
        self.copy(source, target, Some(volume.size)).await?;
        Ok(ModelUpdate::default())
    }

    async fn extend_volume(&self, volume: &VolumeSpec, new_size: i64) -> DriverResult<()> {
        let file = self.volume_file(&volume.id)?;
        let len = size_bytes(new_size)?;
        blocking(move || {
            let handle = file.open(true)?;
            if len < handle.metadata()?.len() {
                return Err(DriverError::Invalid(format!(
                    "volume {} cannot shrink to {new_size} GiB",
                    file.id
                )));
            }
            handle.set_len(len)?;
            Ok(())
        })
        .await
    }

    async fn revert_to_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<()> {
        let source = self.snapshot_file(&snapshot.id)?;
        let target = self.volume_file(&volume.id)?;
        target.ensure_exists().await?;
        self.copy(source, target, Some(volume.size)).await
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        export: &ExportSpec,
    ) -> DriverResult<ConnectionInfo> {
        let file = self.volume_file(&volume.id)?;
        file.ensure_exists().await?;
        if let Some(iscsi) = &self.iscsi {
            return iscsi
                .initialize_connection(volume, &file.path, export)
                .await;
        }
        restore_length(&file.path, volume.size).await?;
        let data = [
            ("device_path", file.path.display().to_string()),
            ("volume_id", file.id),
            ("access_mode", export.access_mode.as_str().to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), Value::String(value)))
        .collect();
        Ok(ConnectionInfo {
            driver_volume_type: "local".into(),
            data,
        })
    }

    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        attachment_id: Option<&str>,
    ) -> DriverResult<()> {
        validate_id(&volume.id)?;
        match &self.iscsi {
            Some(iscsi) => iscsi.terminate_connection(volume, attachment_id).await,
            None => {
                let file = self.volume_file(&volume.id)?;
                match restore_length(&file.path, volume.size).await {
                    Err(DriverError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other,
                }
            }
        }
    }

    async fn local_attach(&self, volume: &VolumeSpec) -> DriverResult<LocalDevice> {
        let file = self.volume_file(&volume.id)?;
        file.ensure_exists().await?;
        Ok(LocalDevice { path: file.path })
    }

    async fn local_detach(&self, volume: &VolumeSpec) -> DriverResult<()> {
        validate_id(&volume.id)
    }

    fn data_access(&self) -> DataAccess<'_> {
        DataAccess::Bytes(self)
    }
}

/// Gives a volume file that a host truncated its full length again: a host
/// writing through a `local` connection opens the file as it would a block
/// device, and some (glance_store's `cinder` store) open it with truncation.
async fn restore_length(path: &Path, size_gib: i64) -> DriverResult<()> {
    let len = size_bytes(size_gib)?;
    let path = path.to_path_buf();
    blocking(move || {
        let f = OpenOptions::new().write(true).open(&path)?;
        if f.metadata()?.len() < len {
            tracing::warn!(path = %path.display(), "volume file was truncated through a local connection; restoring its length");
            f.set_len(len)?;
        }
        Ok(())
    })
    .await
}

/// The volume files' bytes, read and written in place.
#[async_trait]
impl VolumeData for FileDriver {
    async fn byte_size(&self, volume: &VolumeSpec) -> DriverResult<u64> {
        let file = self.volume_file(&volume.id)?;
        blocking(move || Ok(file.open(false)?.metadata()?.len())).await
    }

    async fn read_at(&self, volume: &VolumeSpec, offset: u64, len: usize) -> DriverResult<Vec<u8>> {
        let file = self.volume_file(&volume.id)?;
        blocking(move || {
            let mut buf = vec![0; len];
            file.open(false)?.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
        .await
    }

    async fn write_at(&self, volume: &VolumeSpec, offset: u64, data: &[u8]) -> DriverResult<()> {
        let file = self.volume_file(&volume.id)?;
        let data = data.to_vec();
        blocking(move || {
            let handle = file.open(true)?;
            handle.write_all_at(&data, offset)?;
            Ok(handle.sync_data()?)
        })
        .await
    }
}

/// Accepts only ids made of ASCII letters, digits and `-`, so every path the
/// driver builds stays inside its directory.
fn validate_id(id: &str) -> DriverResult<()> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "id {id:?} must be 1 to {MAX_ID_LEN} ASCII letters, digits or '-'"
        )))
    }
}

/// A size in GiB as bytes; sizes below 1 GiB are refused.
fn size_bytes(size_gb: i64) -> DriverResult<u64> {
    u64::try_from(size_gb)
        .ok()
        .filter(|&gb| gb >= 1)
        .and_then(|gb| gb.checked_mul(GIB))
        .ok_or_else(|| DriverError::Invalid(format!("size {size_gb} GiB is out of range")))
}

/// Bytes as GiB, rounded to two decimals.
fn gib(bytes: u64) -> f64 {
    (bytes as f64 / GIB as f64 * 100.0).round() / 100.0
}

/// Sum of the apparent sizes of the volume files in `dir`, and their number.
fn volume_usage(dir: &Path) -> io::Result<(u64, u64)> {
    let mut bytes = 0;
    let mut count = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("volume-") {
            bytes += entry.metadata()?.len();
            count += 1;
        }
    }
    Ok((bytes, count))
}

/// Runs blocking file I/O off the async runtime.
async fn blocking<T, F>(work: F) -> DriverResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> DriverResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DriverError::Backend {
            message: format!("file I/O task failed: {e}"),
            temporary: false,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(options: &[(&str, &str)]) -> BackendConfig {
        BackendConfig {
            name: "files".into(),
            driver: FileDriver::NAME.into(),
            volume_backend_name: "files-backend".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn volume(id: &str, size: i64) -> VolumeSpec {
        VolumeSpec {
            id: id.into(),
            size,
            pool: None,
            provider_location: None,
            extra_specs: BTreeMap::new(),
        }
    }

    #[test]
    fn ids_are_restricted_to_safe_characters() {
        for good in ["0d3f5c8e-1b2a-4c5d-9e8f-0a1b2c3d4e5f", "abc", "A-1"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(MAX_ID_LEN + 1);
        for bad in [
            "", "..", "a/b", "../etc", "a b", "a.b", "a_b", "é", "a\0b", &too_long,
        ] {
            assert!(
                matches!(validate_id(bad), Err(DriverError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn invalid_ids_never_reach_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FileDriver::new(&config(&[(
            "file_volumes_dir",
            dir.path().to_str().unwrap(),
        )]))
        .unwrap();
        let err = driver.create_volume(&volume("../escape", 1)).await;
        assert!(matches!(err, Err(DriverError::Invalid(_))));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn options_are_validated() {
        assert!(matches!(
            FileDriver::new(&config(&[])),
            Err(DriverError::InvalidConfig(_))
        ));
        for (key, value) in [
            ("reserved_percentage", "101"),
            ("reserved_percentage", "x"),
            ("max_over_subscription_ratio", "0.5"),
            ("max_over_subscription_ratio", "lots"),
            ("target_helper", "lioadm"),
        ] {
            let cfg = config(&[("file_volumes_dir", "/tmp/v"), (key, value)]);
            assert!(
                matches!(FileDriver::new(&cfg), Err(DriverError::InvalidConfig(_))),
                "{key}={value}"
            );
        }
        let driver = FileDriver::new(&config(&[
            ("file_volumes_dir", "/tmp/v"),
            ("max_over_subscription_ratio", "auto"),
        ]))
        .unwrap();
        assert_eq!(driver.pool_name, "files-backend");
        assert_eq!(driver.reserved_percentage, 0.0);
        assert_eq!(driver.max_over_subscription_ratio, "auto");
        assert!(driver.iscsi.is_none());
        let tgt = FileDriver::new(&config(&[
            ("file_volumes_dir", "/tmp/v"),
            ("target_helper", "tgtadm"),
        ]))
        .unwrap();
        assert!(tgt.iscsi.is_some());
        assert!(!tgt.capabilities().online_extend);
    }

    #[tokio::test]
    async fn create_rerun_keeps_a_complete_volume_and_replaces_a_wrong_one() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FileDriver::new(&config(&[(
            "file_volumes_dir",
            dir.path().to_str().unwrap(),
        )]))
        .unwrap();
        driver.setup().await.unwrap();
        let vol = volume("v1", 1);
        driver.create_volume(&vol).await.unwrap();
        let path = dir.path().join("volume-v1");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        file.write_all_at(b"data", 0).unwrap();

        driver.create_volume(&vol).await.unwrap();
        let mut head = [0u8; 4];
        file.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"data");

        std::fs::File::create(&path).unwrap(); // truncated, as if by a stray writer
        driver.create_volume(&vol).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), GIB);
    }

    #[tokio::test]
    async fn volume_from_snapshot_may_not_be_smaller() {
        let dir = tempfile::tempdir().unwrap();
        let driver = FileDriver::new(&config(&[(
            "file_volumes_dir",
            dir.path().to_str().unwrap(),
        )]))
        .unwrap();
        driver.setup().await.unwrap();
        driver.create_volume(&volume("big", 2)).await.unwrap();
        let snap = SnapshotSpec {
            id: "s1".into(),
            volume_id: "big".into(),
            size: 2,
            provider_location: None,
        };
        driver
            .create_snapshot(&snap, &volume("big", 2))
            .await
            .unwrap();
        let err = driver
            .create_volume_from_snapshot(&volume("small", 1), &snap)
            .await;
        assert!(matches!(err, Err(DriverError::Invalid(_))));
        assert!(!dir.path().join("volume-small").exists());
    }
}
