//! One handler per operation. Each checks that the resource is still in the
//! state the operation expects (so a redelivered message is harmless), runs
//! the driver, and records the outcome with a compare-and-set.

use scoria_core::events::{self, Action, Detail, Resource};
use scoria_core::host::Host;
use scoria_core::model::{Volume, VOLUME_BINARY};
use scoria_core::rpc::{RequestSpec, SchedulerRequest, VolumeRequest, SCHEDULER_TOPIC};
use scoria_core::status::{SnapshotStatus, VolumeStatus};
use scoria_core::transitions::{snapshot, volume};
use scoria_core::{Error, RequestContext, Result};
use scoria_db::{SnapshotChanges, VolumeChanges, VolumeGuard};
use scoria_drivers::{DriverError, ExportSpec};

use crate::specs::snapshot_spec;
use crate::{present, VolumeManager};

/// Why an operation failed, as its owner is told.
pub(crate) struct Failure<'a> {
    pub action: Action,
    pub detail: Detail,
    pub text: &'a str,
}

impl VolumeManager {
    pub(crate) async fn dispatch(&self, ctx: &RequestContext, req: VolumeRequest) -> Result<()> {
        match req {
            VolumeRequest::CreateVolume { request_spec, host } => {
                self.create_volume(ctx, *request_spec, &host).await
            }
            VolumeRequest::DeleteVolume { volume_id } => self.delete_volume(ctx, &volume_id).await,
            VolumeRequest::CreateSnapshot { snapshot_id } => {
                self.create_snapshot(ctx, &snapshot_id).await
            }
            VolumeRequest::DeleteSnapshot { snapshot_id } => {
                self.delete_snapshot(ctx, &snapshot_id).await
            }
            VolumeRequest::ExtendVolume {
                volume_id,
                new_size,
            } => self.extend_volume(ctx, &volume_id, new_size).await,
            VolumeRequest::RevertToSnapshot {
                volume_id,
                snapshot_id,
            } => self.revert_to_snapshot(ctx, &volume_id, &snapshot_id).await,
            VolumeRequest::UploadImage { volume_id, image } => {
                self.upload_image(ctx, &volume_id, &image).await
            }
            // A call sent as a cast has nobody waiting for the answer.
            VolumeRequest::GetCapabilities
            | VolumeRequest::InitializeConnection { .. }
            | VolumeRequest::TerminateConnection { .. } => Ok(()),
        }
    }

    /// Answers a `call`.
    pub(crate) async fn answer(&self, req: &VolumeRequest) -> Result<serde_json::Value> {
        match req {
            VolumeRequest::GetCapabilities => {
                let report = self.current_report().await?;
                serde_json::to_value(report).map_err(|e| Error::Internal(e.to_string()))
            }
            VolumeRequest::InitializeConnection {
                volume_id,
                attachment_id,
                connector,
                access_mode,
                auth,
            } => {
                let export = ExportSpec {
                    attachment_id: attachment_id.clone(),
                    connector: connector.clone(),
                    access_mode: *access_mode,
                    auth: auth.clone(),
                };
                let info = self.initialize_connection(volume_id, &export).await?;
                serde_json::to_value(info).map_err(|e| Error::Internal(e.to_string()))
            }
            VolumeRequest::TerminateConnection {
                volume_id,
                attachment_id,
            } => {
                self.terminate_connection(volume_id, attachment_id.as_deref())
                    .await?;
                Ok(serde_json::Value::Null)
            }
            other => Err(Error::Internal(format!("{other:?} is not a call"))),
        }
    }

    /// The id of this volume service's record, once it has reported.
    async fn service_uuid(&self) -> Result<Option<String>> {
        if let Some(id) = self.service_uuid.get() {
            return Ok(Some(id.clone()));
        }
        let found = self
            .db
            .list_services(Some(self.cfg.backend.as_str()), Some(VOLUME_BINARY))
            .await?;
        let id = found.into_iter().next().map(|s| s.id);
        if let Some(id) = &id {
            let _ = self.service_uuid.set(id.clone());
        }
        Ok(id)
    }

    /// Moves a volume out of an operation with `changes` if it still meets
    /// `guard`, and only then (once, whoever wins) tells its owner why.
    pub(crate) async fn fail_volume(
        &self,
        ctx: &RequestContext,
        id: &str,
        changes: &VolumeChanges,
        guard: VolumeGuard<'_>,
        why: Failure<'_>,
    ) -> Result<()> {
        if self.db.update_volume(id, changes, guard).await? {
            self.tell_user(ctx, Resource::Volume, id, why).await;
        }
        Ok(())
    }

    /// The same for a snapshot whose status is one of `from`.
    pub(crate) async fn fail_snapshot(
        &self,
        ctx: &RequestContext,
        id: &str,
        changes: &SnapshotChanges,
        from: Option<&[SnapshotStatus]>,
        why: Failure<'_>,
    ) -> Result<()> {
        if self.db.update_snapshot(id, changes, from).await? {
            self.tell_user(ctx, Resource::Snapshot, id, why).await;
        }
        Ok(())
    }

    /// Records a user message; a failure to record is logged, not fatal.
    async fn tell_user(
        &self,
        ctx: &RequestContext,
        resource: Resource,
        id: &str,
        why: Failure<'_>,
    ) {
        let msg = events::user_message(ctx, resource, id, why.action, why.detail, why.text);
        if let Err(e) = self.db.insert_message(&msg).await {
            tracing::error!(error = %e, "could not record user message");
        }
    }

    /// Runs the driver's create for `vol`; the outer error is a database
    /// failure, the inner one the backend's.
    async fn run_create(&self, vol: &Volume) -> Result<Result<Option<String>, DriverError>> {
        let spec = self.volume_spec(vol).await?;
        let outcome = if let Some(snap_id) = &vol.snapshot_id {
            let Some(snap) = present(self.db.get_snapshot(snap_id).await)? else {
                return Ok(Err(DriverError::NotFound {
                    kind: "snapshot",
                    id: snap_id.clone(),
                }));
            };
            self.driver
                .create_volume_from_snapshot(&spec, &snapshot_spec(&snap))
                .await
        } else if let Some(src_id) = &vol.source_volid {
            let Some(src) = present(self.db.get_volume(src_id).await)? else {
                return Ok(Err(DriverError::NotFound {
                    kind: "volume",
                    id: src_id.clone(),
                }));
            };
            let src_spec = self.volume_spec(&src).await?;
            self.driver.create_cloned_volume(&spec, &src_spec).await
        } else {
            self.driver.create_volume(&spec).await
        };
        Ok(outcome.map(|update| update.applied(spec).provider_location))
    }

    /// Creates a volume the scheduler placed on `host` (`host@backend#pool`).
    pub(crate) async fn create_volume(
        &self,
        ctx: &RequestContext,
        mut request: RequestSpec,
        host: &Host,
    ) -> Result<()> {
        let id = request.volume_id.clone();
        let Some(mut vol) = present(self.db.get_volume(&id).await)? else {
            return Ok(());
        };
        let op = &volume::CREATE;
        if op.interim != Some(vol.status) || vol.host.as_ref() != Some(host) {
            return Ok(());
        }
        vol.host = Some(host.clone());
        let creating = VolumeGuard::status_in(op.in_progress());
        let made = |location| async move {
            Ok::<_, Error>(VolumeChanges {
                provider_location: Some(location),
                shared_targets: Some(self.driver.capabilities().shared_targets),
                service_uuid: Some(self.service_uuid().await?),
                ..Default::default()
            })
        };
        let image = match &request.image_id {
            None => None,
            Some(image_id) => match self.source_image(ctx, image_id).await {
                Err(why) => {
                    return self
                        .fail_image_create(ctx, &vol, image_id, op.in_progress(), why)
                        .await
                }
                Ok(image) => match self.clone_for_image(ctx, &vol, host, &image).await? {
                    None => Some(image),
                    Some(Ok(location)) => {
                        let made = made(location).await?;
                        return self
                            .finish_image_create(&vol, &image, op.in_progress(), made)
                            .await;
                    }
                    Some(Err(why)) => {
                        return self
                            .fail_image_create(ctx, &vol, image_id, op.in_progress(), why)
                            .await
                    }
                },
            },
        };
        let why = match self.run_create(&vol).await? {
            Ok(location) => {
                if let Some(image) = &image {
                    return self
                        .download_into(ctx, &vol, image, made(location).await?)
                        .await;
                }
                let done = VolumeChanges {
                    status: op.to.status(),
                    ..made(location).await?
                };
                if self.db.update_volume(&id, &done, creating).await? {
                    tracing::info!(volume = %id, "volume created");
                }
                return Ok(());
            }
            Err(e) => e,
        };
        tracing::error!(volume = %id, error = %why, "volume create failed");
        if why.is_temporary() {
            request
                .attempt_errors
                .push(format!("{}: {why}", self.cfg.backend));
            return self.reschedule(ctx, request, host).await;
        }
        let text = format!(
            "the backend {} could not create the volume: {why}",
            self.cfg.backend
        );
        let failed = VolumeChanges {
            status: op.failed,
            ..Default::default()
        };
        self.fail_volume(
            ctx,
            &id,
            &failed,
            creating,
            Failure {
                action: Action::CreateVolumeFromBackend,
                detail: Detail::DriverFailed,
                text: &text,
            },
        )
        .await?;
        Ok(())
    }

    /// Hands a failed create back to the scheduler, which tries another
    /// backend or gives up after `scheduler_max_attempts`.
    async fn reschedule(
        &self,
        ctx: &RequestContext,
        request: RequestSpec,
        host: &Host,
    ) -> Result<()> {
        let unplace = VolumeChanges {
            host: Some(None),
            ..Default::default()
        };
        let guard = VolumeGuard {
            statuses: Some(volume::CREATE.in_progress()),
            host: Some(Some(host)),
            ..Default::default()
        };
        if !self
            .db
            .update_volume(&request.volume_id, &unplace, guard)
            .await?
        {
            return Ok(());
        }
        tracing::info!(volume = %request.volume_id, attempts = request.attempts.len(), "rescheduling");
        self.bus
            .cast(
                SCHEDULER_TOPIC,
                ctx,
                &SchedulerRequest::CreateVolume {
                    request_spec: request,
                },
            )
            .await
    }

    /// Deletes a volume in `deleting` from the backend, then its row.
    pub(crate) async fn delete_volume(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let Some(vol) = present(self.db.get_volume(id).await)? else {
            return Ok(());
        };
        let op = &volume::DELETE;
        if op.interim != Some(vol.status) {
            return Ok(());
        }
        // With cascade, the api moved the volume's snapshots to `deleting` too.
        let q = scoria_db::SnapshotQuery {
            volume_id: Some(id.to_string()),
            ..Default::default()
        };
        for snap in self.db.list_snapshots(&q).await? {
            if snapshot::CASCADE_DELETE.interim == Some(snap.status) {
                self.delete_snapshot(ctx, &snap.id).await?;
            }
        }
        let guard = VolumeGuard::status_in(op.in_progress());
        let failed = VolumeChanges {
            status: op.failed,
            ..Default::default()
        };
        if !self.db.list_snapshots(&q).await?.is_empty() {
            let text =
                "the volume still has snapshots that could not be deleted; delete them first";
            self.fail_volume(
                ctx,
                id,
                &failed,
                guard,
                Failure {
                    action: Action::DeleteVolume,
                    detail: Detail::DriverFailed,
                    text,
                },
            )
            .await?;
            return Ok(());
        }
        let spec = self.volume_spec(&vol).await?;
        // A forced delete may find exports still in place: remove them first.
        let deleted = match self.driver.terminate_connection(&spec, None).await {
            Ok(()) => self.driver.delete_volume(&spec).await,
            Err(e) => Err(e),
        };
        match deleted {
            Ok(()) => {
                self.db.delete_volume(id).await?;
                tracing::info!(volume = id, "volume deleted");
            }
            Err(e) => {
                tracing::error!(volume = id, error = %e, "volume delete failed");
                let text = format!("the backend could not delete the volume: {e}");
                self.fail_volume(
                    ctx,
                    id,
                    &failed,
                    guard,
                    Failure {
                        action: Action::DeleteVolume,
                        detail: Detail::DriverFailed,
                        text: &text,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Takes a snapshot in `creating`.
    pub(crate) async fn create_snapshot(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let Some(snap) = present(self.db.get_snapshot(id).await)? else {
            return Ok(());
        };
        let op = &snapshot::CREATE;
        if op.interim != Some(snap.status) {
            return Ok(());
        }
        let creating = op.in_progress();
        let outcome = match present(self.db.get_volume(&snap.volume_id).await)? {
            Some(vol) => {
                let spec = self.volume_spec(&vol).await?;
                self.driver
                    .create_snapshot(&snapshot_spec(&snap), &spec)
                    .await
                    .map_err(|e| e.to_string())
            }
            None => Err(format!("volume {} no longer exists", snap.volume_id)),
        };
        match outcome {
            Ok(update) => {
                let made = update.applied(snapshot_spec(&snap));
                let done = SnapshotChanges {
                    status: op.to.status(),
                    progress: Some("100%".into()),
                    provider_location: Some(made.provider_location),
                    ..Default::default()
                };
                self.db.update_snapshot(id, &done, Some(creating)).await?;
            }
            Err(why) => {
                tracing::error!(snapshot = id, error = %why, "snapshot create failed");
                let text = format!("the backend could not take the snapshot: {why}");
                let failed = SnapshotChanges {
                    status: op.failed,
                    ..Default::default()
                };
                self.fail_snapshot(
                    ctx,
                    id,
                    &failed,
                    Some(creating),
                    Failure {
                        action: Action::SnapshotCreate,
                        detail: Detail::DriverFailed,
                        text: &text,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes a snapshot in `deleting` from the backend, then its row.
    pub(crate) async fn delete_snapshot(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let Some(snap) = present(self.db.get_snapshot(id).await)? else {
            return Ok(());
        };
        let op = &snapshot::DELETE;
        if op.interim != Some(snap.status) {
            return Ok(());
        }
        match self.driver.delete_snapshot(&snapshot_spec(&snap)).await {
            Ok(()) => self.db.delete_snapshot(id).await?,
            Err(e) => {
                tracing::error!(snapshot = id, error = %e, "snapshot delete failed");
                let text = format!("the backend could not delete the snapshot: {e}");
                let failed = SnapshotChanges {
                    status: op.failed,
                    ..Default::default()
                };
                self.fail_snapshot(
                    ctx,
                    id,
                    &failed,
                    Some(op.in_progress()),
                    Failure {
                        action: Action::SnapshotDelete,
                        detail: Detail::DriverFailed,
                        text: &text,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Grows a volume in `extending` to `new_size` GiB.
    pub(crate) async fn extend_volume(
        &self,
        ctx: &RequestContext,
        id: &str,
        new_size: i64,
    ) -> Result<()> {
        let Some(vol) = present(self.db.get_volume(id).await)? else {
            return Ok(());
        };
        let op = &volume::EXTEND;
        if op.interim != Some(vol.status) {
            return Ok(());
        }
        let spec = self.volume_spec(&vol).await?;
        let guard = VolumeGuard::status_in(op.in_progress());
        match self.driver.extend_volume(&spec, new_size).await {
            Ok(()) => {
                let previous = vol.previous_status.unwrap_or(VolumeStatus::Available);
                let done = VolumeChanges {
                    status: Some(previous),
                    previous_status: Some(None),
                    size: Some(new_size),
                    ..Default::default()
                };
                if self.db.update_volume(id, &done, guard).await? {
                    tracing::info!(volume = id, new_size, "volume extended");
                    if previous == VolumeStatus::InUse {
                        // Attachments may have come or gone while it grew.
                        if let Err(e) = self.db.recompute_attach_status(id).await {
                            tracing::error!(
                                volume = id,
                                error = %e,
                                "could not recompute the attach status"
                            );
                        }
                        self.tell_nova_extended(ctx, id).await;
                    }
                }
            }
            Err(e) => {
                tracing::error!(volume = id, error = %e, "extend failed");
                let failed = VolumeChanges {
                    status: op.failed,
                    previous_status: Some(None),
                    ..Default::default()
                };
                let text =
                    format!("the backend could not extend the volume to {new_size} GiB: {e}");
                self.fail_volume(
                    ctx,
                    id,
                    &failed,
                    guard,
                    Failure {
                        action: Action::ExtendVolume,
                        detail: Detail::DriverFailed,
                        text: &text,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
}
