//! Reverting a volume to its latest snapshot (microversion 3.40): natively
//! when the driver can, otherwise by copying the data of a temporary volume
//! made from the snapshot, both opened on this host.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use scoria_core::events::{Action, Detail};
use scoria_core::transitions::{snapshot, volume};
use scoria_core::{RequestContext, Result};
use scoria_db::{SnapshotChanges, VolumeChanges, VolumeGuard};
use scoria_drivers::{DriverError, DriverResult, SnapshotSpec, VolumeDriver, VolumeSpec};

use crate::handlers::Failure;
use crate::specs::snapshot_spec;
use crate::{present, VolumeManager};

/// Why a revert failed.
pub(crate) fn failure(detail: Detail, text: &str) -> Failure<'_> {
    Failure {
        action: Action::RevertVolume,
        detail,
        text,
    }
}

impl VolumeManager {
    /// Reverts a volume in `reverting` to its snapshot in `restoring`, then
    /// makes both `available`. A failure that left the data untouched returns
    /// the volume to `available`; any other sets it to `error`. Either way the
    /// snapshot is `available` again and the owner is told why.
    pub(crate) async fn revert_to_snapshot(
        &self,
        ctx: &RequestContext,
        volume_id: &str,
        snapshot_id: &str,
    ) -> Result<()> {
        let Some(vol) = present(self.db.get_volume(volume_id).await)? else {
            return self.release_snapshot(snapshot_id).await;
        };
        let Some(snap) = present(self.db.get_snapshot(snapshot_id).await)? else {
            let text = "the snapshot no longer exists; the volume is unchanged";
            return self
                .fail_revert(ctx, volume_id, true, failure(Detail::UnknownError, text))
                .await;
        };
        if volume::REVERT.interim != Some(vol.status)
            || snapshot::RESTORE.interim != Some(snap.status)
        {
            return Ok(());
        }
        let volume = self.volume_spec(&vol).await?;
        let snapshot = snapshot_spec(&snap);
        let outcome = match self.driver.revert_to_snapshot(&volume, &snapshot).await {
            Err(DriverError::Unsupported(_)) => {
                generic_revert(self.driver.as_ref(), &volume, &snapshot).await
            }
            other => other,
        };
        match outcome {
            Ok(()) => {
                let op = &volume::REVERT;
                let done = VolumeChanges {
                    status: op.to.status(),
                    ..Default::default()
                };
                let guard = VolumeGuard::status_in(op.in_progress());
                self.db.update_volume(volume_id, &done, guard).await?;
                self.release_snapshot(snapshot_id).await?;
                tracing::info!(
                    volume = volume_id,
                    snapshot = snapshot_id,
                    "volume reverted"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(volume = volume_id, error = %e, "revert failed");
                let untouched = matches!(e, DriverError::Unsupported(_));
                let text =
                    format!("the volume could not be reverted to snapshot {snapshot_id}: {e}");
                let why = failure(Detail::DriverFailed, &text);
                self.fail_revert(ctx, volume_id, untouched, why).await?;
                self.release_snapshot(snapshot_id).await
            }
        }
    }

    /// Moves a volume out of `reverting`: back to `available` when its data
    /// is `untouched`, else to `error`; tells the owner why.
    pub(crate) async fn fail_revert(
        &self,
        ctx: &RequestContext,
        volume_id: &str,
        untouched: bool,
        why: Failure<'_>,
    ) -> Result<()> {
        let op = &volume::REVERT;
        let status = match untouched {
            true => op.to.status(),
            false => op.failed,
        };
        let changes = VolumeChanges {
            status,
            ..Default::default()
        };
        let guard = VolumeGuard::status_in(op.in_progress());
        self.fail_volume(ctx, volume_id, &changes, guard, why).await
    }

    /// At start: a volume left `reverting` may hold part of the snapshot's
    /// data, so it goes to `error` and its owner is told (its snapshot, left
    /// `restoring`, is released by the recovery of snapshots).
    pub(crate) async fn recover_revert(
        &self,
        owner: &RequestContext,
        volume_id: &str,
    ) -> Result<()> {
        tracing::info!(volume = %volume_id, "failing interrupted revert");
        let text = "the volume service restarted while reverting the volume, so its data \
                    may be partly reverted; ask an administrator to reset its status, then revert again";
        let why = failure(Detail::InterruptedByRestart, text);
        self.fail_revert(owner, volume_id, false, why).await
    }

    /// Returns a snapshot in `restoring` to `available`.
    pub(crate) async fn release_snapshot(&self, snapshot_id: &str) -> Result<()> {
        let op = &snapshot::RESTORE;
        let back = SnapshotChanges {
            status: op.to.status(),
            ..Default::default()
        };
        self.db
            .update_snapshot(snapshot_id, &back, Some(op.in_progress()))
            .await?;
        Ok(())
    }
}

/// Reverts through the host: makes a temporary volume from the snapshot,
/// copies it over `volume` through local attachments, and deletes it. A driver
/// that cannot open volumes on this host gets [`DriverError::Unsupported`]
/// before anything is touched.
pub(crate) async fn generic_revert(
    driver: &dyn VolumeDriver,
    volume: &VolumeSpec,
    snapshot: &SnapshotSpec,
) -> DriverResult<()> {
    if !driver.capabilities().local_attach {
        return Err(DriverError::Unsupported(
            "the backend can neither revert in place nor open a snapshot's data on this host"
                .into(),
        ));
    }
    let mut temporary = VolumeSpec {
        id: uuid::Uuid::new_v4().to_string(),
        size: snapshot.size,
        provider_location: None,
        ..volume.clone()
    };
    let made = driver
        .create_volume_from_snapshot(&temporary, snapshot)
        .await;
    let copied = match made {
        Ok(update) => {
            update.apply(&mut temporary);
            copy_volume(driver, &temporary, volume).await
        }
        Err(e) => Err(e),
    };
    let removed = driver.delete_volume(&temporary).await;
    copied.and(removed)
}

/// Copies every byte of `source` over `target`, both attached on this host.
async fn copy_volume(
    driver: &dyn VolumeDriver,
    source: &VolumeSpec,
    target: &VolumeSpec,
) -> DriverResult<()> {
    let from = driver.local_attach(source).await?;
    let copied = match driver.local_attach(target).await {
        Ok(to) => {
            let copied = tokio::task::spawn_blocking(move || copy_bytes(&from.path, &to.path))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)))
                .map_err(DriverError::from);
            copied.and(driver.local_detach(target).await)
        }
        Err(e) => Err(e),
    };
    copied.and(driver.local_detach(source).await)
}

/// Size of one read and write of [`copy_bytes`].
const COPY_BLOCK: usize = 4 << 20;

/// Overwrites `target` from its start with the content of `source` and syncs it.
fn copy_bytes(source: &Path, target: &Path) -> io::Result<()> {
    let mut from = File::open(source)?;
    let mut to = OpenOptions::new().write(true).open(target)?;
    let mut buf = vec![0u8; COPY_BLOCK];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
    }
    to.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use scoria_core::config::BackendConfig;
    use scoria_drivers::fake::FakeDriver;
    use scoria_drivers::file::FileDriver;

    use super::*;

    fn volume(id: &str) -> VolumeSpec {
        VolumeSpec {
            id: id.into(),
            size: 1,
            pool: None,
            provider_location: None,
            extra_specs: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn generic_revert_needs_local_attach() {
        let config = BackendConfig {
            name: "fake".into(),
            driver: FakeDriver::NAME.into(),
            volume_backend_name: "fake".into(),
            options: BTreeMap::new(),
        };
        let driver = FakeDriver::new(&config).unwrap();
        let snap = SnapshotSpec {
            id: "s1".into(),
            volume_id: "v1".into(),
            size: 1,
            provider_location: None,
        };
        let outcome = generic_revert(&driver, &volume("v1"), &snap).await;
        assert!(matches!(outcome, Err(DriverError::Unsupported(_))));
    }

    #[tokio::test]
    async fn generic_revert_copies_the_snapshot_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let config = BackendConfig {
            name: "files".into(),
            driver: FileDriver::NAME.into(),
            volume_backend_name: "files".into(),
            options: BTreeMap::from([(
                "file_volumes_dir".to_string(),
                dir.path().display().to_string(),
            )]),
        };
        let driver = FileDriver::new(&config).unwrap();
        driver.setup().await.unwrap();
        let vol = volume("v1");
        driver.create_volume(&vol).await.unwrap();
        let path = dir.path().join("volume-v1");
        let write = |data: &[u8]| {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, data, 4096).unwrap();
        };
        write(b"before");
        let snap = SnapshotSpec {
            id: "s1".into(),
            volume_id: "v1".into(),
            size: 1,
            provider_location: None,
        };
        driver.create_snapshot(&snap, &vol).await.unwrap();
        write(b"AFTER!");

        generic_revert(&driver, &vol, &snap).await.unwrap();

        let mut head = [0u8; 6];
        let file = File::open(&path).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 4096).unwrap();
        assert_eq!(&head, b"before");
        assert_eq!(file.metadata().unwrap().len(), 1 << 30);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["snapshot-s1", "volume-v1"]);
    }
}
