//! At start, finish or fail what a previous run of this backend left unfinished.

use scoria_core::events::{Action, Detail};
use scoria_core::model::admin_keys;
use scoria_core::rpc::RequestSpec;
use scoria_core::status::{SnapshotStatus, VolumeStatus};
use scoria_core::transitions::{snapshot, volume};
use scoria_core::{RequestContext, Result};
use scoria_db::{SnapshotChanges, VolumeChanges, VolumeGuard};

use crate::handlers::Failure;
use crate::images::ImageFailure;
use crate::VolumeManager;

impl VolumeManager {
    /// Finds the volumes and snapshots of this backend left in an interim
    /// status of the transition table (an operation a worker owned), re-runs
    /// interrupted creates and deletes (both are idempotent) and fails what
    /// cannot be redone faithfully, telling the user why.
    pub(crate) async fn recover(&self) -> Result<()> {
        let ctx = RequestContext::internal(RequestContext::new_request_id());
        let backend = self.cfg.backend.as_str();
        match self.cfg.images.scratch.clean().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed temporary image files of an earlier run"),
            Err(e) => tracing::error!(error = %e, "could not empty the image conversion folder"),
        }
        let stuck = volume::in_progress();
        for vol in self.db.volumes_in_status(&stuck, Some(backend)).await? {
            let owner = RequestContext {
                project_id: vol.project_id.clone(),
                ..ctx.clone()
            };
            tracing::info!(volume = %vol.id, status = %vol.status, "recovering interrupted operation");
            if vol.admin_metadata.contains_key(admin_keys::IMAGE_CACHE)
                && matches!(
                    vol.status,
                    VolumeStatus::Creating | VolumeStatus::Downloading
                )
            {
                // A cache volume half made: nobody waits for it.
                self.remove_volume(&vol).await?;
                continue;
            }
            match vol.status {
                VolumeStatus::Downloading => {
                    let image = vol.admin_metadata.get(admin_keys::IMAGE_SOURCE).cloned();
                    let why = ImageFailure {
                        detail: Detail::InterruptedByRestart,
                        text: "the volume service restarted during the copy; delete the volume and create it again".into(),
                    };
                    self.fail_image_create(
                        &owner,
                        &vol,
                        image.as_deref().unwrap_or("?"),
                        &[VolumeStatus::Downloading],
                        why,
                    )
                    .await?
                }
                VolumeStatus::Uploading => {
                    let image = vol.admin_metadata.get(admin_keys::IMAGE_UPLOAD).cloned();
                    let why = "the volume service restarted during the upload; the image was deleted, upload the volume again";
                    self.finish_upload(&owner, &vol, image.as_deref().unwrap_or(""), Some(why))
                        .await?
                }
                VolumeStatus::Creating => {
                    // Listed by backend, so placed: the host is always there.
                    if let Some(host) = &vol.host {
                        let extra_specs = self.db.type_extra_specs(&vol).await;
                        let source_backend = self.db.source_backend(&vol).await?;
                        let mut request = RequestSpec::new(&vol, extra_specs, source_backend);
                        request.attempts.push(backend.to_string());
                        self.create_volume(&owner, request, host).await?
                    }
                }
                VolumeStatus::Deleting => self.delete_volume(&owner, &vol.id).await?,
                VolumeStatus::Extending => self.recover_extend(&owner, &vol.id).await?,
                VolumeStatus::Reverting => self.recover_revert(&owner, &vol.id).await?,
                other => {
                    tracing::warn!(volume = %vol.id, status = %other, "no recovery for this status")
                }
            }
        }
        let stuck = snapshot::in_progress();
        for snap in self.db.snapshots_in_status(&stuck, backend).await? {
            let owner = RequestContext {
                project_id: snap.project_id.clone(),
                ..ctx.clone()
            };
            tracing::info!(snapshot = %snap.id, status = %snap.status, "recovering interrupted operation");
            match snap.status {
                SnapshotStatus::Deleting => self.delete_snapshot(&owner, &snap.id).await?,
                SnapshotStatus::Creating => self.recover_snapshot_create(&owner, &snap.id).await?,
                SnapshotStatus::Restoring => self.release_snapshot(&snap.id).await?,
                other => {
                    tracing::warn!(snapshot = %snap.id, status = %other, "no recovery for this status")
                }
            }
        }
        Ok(())
    }

    /// An interrupted extend: the size is unchanged, the volume goes to
    /// `error_extending`.
    async fn recover_extend(&self, owner: &RequestContext, volume_id: &str) -> Result<()> {
        let op = &volume::EXTEND;
        let failed = VolumeChanges {
            status: op.failed,
            previous_status: Some(None),
            ..Default::default()
        };
        let guard = VolumeGuard::status_in(op.in_progress());
        let text = "the volume service restarted while extending the volume; \
                    the size is unchanged, ask an administrator to reset its status and retry";
        let why = Failure {
            action: Action::ExtendVolume,
            detail: Detail::InterruptedByRestart,
            text,
        };
        self.fail_volume(owner, volume_id, &failed, guard, why)
            .await
    }

    /// An interrupted snapshot: one retaken now would not hold the data of
    /// the moment it was asked for, so it goes to `error`.
    async fn recover_snapshot_create(
        &self,
        owner: &RequestContext,
        snapshot_id: &str,
    ) -> Result<()> {
        let op = &snapshot::CREATE;
        let failed = SnapshotChanges {
            status: op.failed,
            ..Default::default()
        };
        let text =
            "the volume service restarted while taking the snapshot; delete it and take a new one";
        let why = Failure {
            action: Action::SnapshotCreate,
            detail: Detail::InterruptedByRestart,
            text,
        };
        self.fail_snapshot(owner, snapshot_id, &failed, Some(op.in_progress()), why)
            .await
    }
}
