//! At start, finish or fail what a previous run of this backend left unfinished.

use scoria_core::events::{Action, Detail};
use scoria_core::rpc::RequestSpec;
use scoria_core::status::{SnapshotStatus, VolumeStatus};
use scoria_core::{RequestContext, Result};
use scoria_db::{SnapshotChanges, VolumeChanges, VolumeGuard};

use crate::handlers::Failure;
use crate::VolumeManager;

impl VolumeManager {
    /// Re-runs interrupted creates and deletes (both are idempotent) and fails
    /// what cannot be redone faithfully, telling the user why.
    pub(crate) async fn recover(&self) -> Result<()> {
        let ctx = RequestContext::internal(RequestContext::new_request_id());
        let backend = self.cfg.backend.as_str();
        let stuck = [
            VolumeStatus::Creating,
            VolumeStatus::Deleting,
            VolumeStatus::Extending,
        ];
        for vol in self.db.volumes_in_status(&stuck, Some(backend)).await? {
            let owner = RequestContext {
                project_id: vol.project_id.clone(),
                ..ctx.clone()
            };
            tracing::info!(volume = %vol.id, status = %vol.status, "recovering interrupted operation");
            match vol.status {
                VolumeStatus::Creating => {
                    let extra_specs = self.db.type_extra_specs(&vol).await;
                    let source_backend = self.db.source_backend(&vol).await?;
                    let mut request = RequestSpec::new(&vol, extra_specs, source_backend);
                    request.attempts.push(backend.to_string());
                    let host = vol.host.clone().unwrap_or_default();
                    self.create_volume(&owner, request, &host).await?
                }
                VolumeStatus::Deleting => self.delete_volume(&owner, &vol.id).await?,
                _ => {
                    let failed = VolumeChanges {
                        status: Some(VolumeStatus::ErrorExtending),
                        previous_status: Some(None),
                        ..Default::default()
                    };
                    let guard = VolumeGuard::status_in(&[VolumeStatus::Extending]);
                    let text = "the volume service restarted while extending the volume; \
                                    the size is unchanged, ask an administrator to reset its status and retry";
                    self.fail_volume(
                        &owner,
                        &vol.id,
                        &failed,
                        guard,
                        Failure {
                            action: Action::ExtendVolume,
                            detail: Detail::InterruptedByRestart,
                            text,
                        },
                    )
                    .await?;
                }
            }
        }
        let stuck = [SnapshotStatus::Creating, SnapshotStatus::Deleting];
        for snap in self.db.snapshots_in_status(&stuck, backend).await? {
            let owner = RequestContext {
                project_id: snap.project_id.clone(),
                ..ctx.clone()
            };
            tracing::info!(snapshot = %snap.id, status = %snap.status, "recovering interrupted operation");
            if snap.status == SnapshotStatus::Deleting {
                self.delete_snapshot(&owner, &snap.id).await?;
                continue;
            }
            // A snapshot retaken now would not hold the data of the moment it was asked for.
            let creating = [SnapshotStatus::Creating];
            let text = "the volume service restarted while taking the snapshot; delete it and take a new one";
            self.fail_snapshot(
                &owner,
                &snap.id,
                &SnapshotChanges::status(SnapshotStatus::Error),
                Some(&creating),
                Failure {
                    action: Action::SnapshotCreate,
                    detail: Detail::InterruptedByRestart,
                    text,
                },
            )
            .await?;
        }
        self.recover_reverts(&ctx).await?;
        Ok(())
    }
}
