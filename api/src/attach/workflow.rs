//! The steps both attach front-ends share (the attachments API and the legacy
//! volume actions): reserve a volume for a server, export it to a host
//! through its volume service and roll a failed export back, and remove an
//! export. The front-ends call in here; nothing here calls them.
//!
//! The api owns attachment records. Before it asks the volume service for an
//! export, it stores everything the export needs (connector, access mode,
//! CHAP credentials), so a restarted volume service can recreate it.

use scoria_core::model::{AccessMode, Attachment, Chap, ConnectionInfo, Connector, Volume};
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::status::AttachStatus;
use scoria_core::transitions::{attachment, volume};
use scoria_core::{Error, RequestContext};
use scoria_db::{AttachGate, AttachmentChanges};
use serde_json::Value;

use crate::http::context::Ctx;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::ApiState;

/// Creates an attachment in `reserved` for `instance_uuid`, if the volume
/// can take one; of concurrent requests for a single-attach volume exactly
/// one wins.
pub(crate) async fn reserve(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    instance_uuid: Option<String>,
    mode: Option<AccessMode>,
) -> ApiResult<Attachment> {
    // Cinder's words, which leave out some statuses the multiattach gate takes.
    let expected = if vol.multiattach {
        "available or in-use or downloading"
    } else {
        "available or downloading"
    };
    let refuse = |status: &str| {
        bad_request(format!(
            "Invalid volume: Volume {} status must be {expected} to reserve, but the current status is {status}.",
            vol.id
        ))
    };
    if vol.status.is_error() {
        return Err(refuse(vol.status.as_str()));
    }
    let attachment = Attachment {
        attach_mode: mode,
        ..Attachment::new(vol, AttachStatus::Reserved, instance_uuid)
    };
    let reservable = match vol.multiattach {
        true => volume::ATTACH_MULTIATTACH.from.statuses(),
        false => volume::ATTACH.from.statuses(),
    };
    let gate = AttachGate {
        statuses: &reservable,
        same_instance_statuses: &volume::ATTACH_SAME_SERVER.from.statuses(),
    };
    if state.db.create_attachment(&attachment, Some(gate)).await? {
        tracing::info!(volume = %vol.id, attachment = %attachment.id, request_id = %ctx.rc.request_id, "reserved");
        return Ok(attachment);
    }
    let now = state.db.get_volume(&vol.id).await?;
    Err(refuse(now.status.as_str()))
}

/// Fresh CHAP credentials for one attachment: the user name carries the
/// attachment id, so it is unique per attachment.
pub(crate) fn new_credentials(attachment_id: &str) -> Chap {
    let secret = uuid::Uuid::new_v4().simple().to_string();
    Chap {
        username: format!("scoria-{}", attachment_id.replace('-', "")),
        password: secret[..16].to_string(),
    }
}

/// Whether the volume carries the admin `readonly` flag (parsed as a boolean).
pub(crate) fn readonly(vol: &Volume) -> bool {
    vol.admin_metadata
        .get("readonly")
        .and_then(|v| crate::http::validate::parse_bool(v))
        .unwrap_or(false)
}

/// The access mode an export gets: `ro` for a volume flagged read-only,
/// else the mode asked for at create (3.54), else the connector's `mode`,
/// else `rw`.
fn access_mode(vol: &Volume, att: &Attachment, connector: &Connector) -> AccessMode {
    if readonly(vol) {
        return AccessMode::Ro;
    }
    att.attach_mode
        .or_else(|| {
            connector
                .get("mode")
                .and_then(Value::as_str)
                .and_then(AccessMode::parse)
        })
        .unwrap_or(AccessMode::Rw)
}

fn connector_text(connector: &Connector, key: &str) -> Option<String> {
    connector
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The volume service that holds `vol`.
fn backend_of(vol: &Volume) -> ApiResult<String> {
    vol.backend().map(str::to_string).ok_or_else(|| {
        bad_request(format!(
            "Invalid volume: Volume {} is not placed on a backend yet.",
            vol.id
        ))
    })
}

/// Exports `vol` for `att` to the host described by `connector` and stores
/// the result; `next` is the attachment's status afterwards (`None` keeps
/// it). On failure the attachment keeps its connector and credentials and
/// the error is returned for [`export`] to roll back.
async fn connect(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    att: &Attachment,
    connector: Connector,
    next: Option<AttachStatus>,
) -> ApiResult<Attachment> {
    let backend = backend_of(vol)?;
    let mode = access_mode(vol, att, &connector);
    let auth = att.auth.clone().unwrap_or_else(|| new_credentials(&att.id));
    let prepared = AttachmentChanges {
        connector: Some(Some(connector.clone())),
        auth: Some(Some(auth.clone())),
        attach_mode: Some(Some(mode)),
        attached_host: Some(connector_text(&connector, "host")),
        mountpoint: Some(connector_text(&connector, "mountpoint").or(att.mountpoint.clone())),
        ..Default::default()
    };
    if !state.db.update_attachment(&att.id, &prepared, None).await? {
        return Err(ApiError(Error::not_found("VolumeAttachment", &att.id)));
    }
    let req = VolumeRequest::InitializeConnection {
        volume_id: vol.id.clone(),
        attachment_id: att.id.clone(),
        connector,
        access_mode: mode,
        auth,
    };
    let info: ConnectionInfo = state
        .bus
        .call(
            &volume_topic(&backend),
            &ctx.rc,
            &req,
            state.cfg.rpc_timeout,
        )
        .await?;
    let done = AttachmentChanges {
        connection_info: Some(Some(info)),
        attach_status: next,
        ..Default::default()
    };
    state.db.update_attachment(&att.id, &done, None).await?;
    Ok(state.db.get_attachment(&att.id).await?)
}

/// What stays of an attachment whose export failed.
pub(crate) enum Leftover {
    /// The attachment stays as it was (a legacy connection of an existing record).
    Kept,
    /// The attachment is removed (an attachments API create).
    Removed,
    /// The attachment is removed unless something attached it meanwhile (a
    /// legacy connection record made for this export).
    RemovedIfDetached,
    /// The attachment stays, `error_attaching` (an attachments API update).
    Failed,
}

/// Exports the volume for `att` ([`connect`]); when that fails, undoes any
/// partial export, leaves `leftover` and returns the export's error.
pub(crate) async fn export(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    att: &Attachment,
    connector: Connector,
    next: Option<AttachStatus>,
    leftover: Leftover,
) -> ApiResult<Attachment> {
    let e = match connect(state, ctx, vol, att, connector, next).await {
        Ok(att) => return Ok(att),
        Err(e) => e,
    };
    undo_export(state, ctx, vol, &att.id);
    match leftover {
        Leftover::Kept => {}
        Leftover::Removed => {
            let from = attachment::DELETE.from.guard();
            state.db.delete_attachment(&att.id, from.as_deref()).await?;
        }
        Leftover::RemovedIfDetached => {
            let from = attachment::DISCONNECT.from.guard();
            state.db.delete_attachment(&att.id, from.as_deref()).await?;
        }
        Leftover::Failed => {
            let op = &attachment::EXPORT;
            let changes = AttachmentChanges {
                attach_status: op.failed,
                ..Default::default()
            };
            let from = op.from.guard();
            state
                .db
                .update_attachment(&att.id, &changes, from.as_deref())
                .await?;
        }
    }
    Err(e)
}

/// Removes the export of `att`, if it has one, and forgets its connection
/// info. The volume service is asked and must answer: an export is never
/// forgotten while it may still exist.
pub(crate) async fn disconnect(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    att: &Attachment,
) -> ApiResult<()> {
    if att.connection_info.is_none() {
        return Ok(());
    }
    unexport(state, &ctx.rc, &backend_of(vol)?, &vol.id, &att.id).await?;
    let cleared = AttachmentChanges {
        connection_info: Some(None),
        ..Default::default()
    };
    state.db.update_attachment(&att.id, &cleared, None).await?;
    Ok(())
}

/// Removes the export of `att` and then `att`; when the volume service
/// fails, `att` stays, `error_detaching`, and the error is returned.
pub(crate) async fn detach(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    att: &Attachment,
) -> ApiResult<()> {
    let op = &attachment::DELETE;
    let from = op.from.guard();
    if let Err(e) = disconnect(state, ctx, vol, att).await {
        let failed = AttachmentChanges {
            attach_status: op.failed,
            ..Default::default()
        };
        state
            .db
            .update_attachment(&att.id, &failed, from.as_deref())
            .await?;
        return Err(e);
    }
    state.db.delete_attachment(&att.id, from.as_deref()).await?;
    Ok(())
}

/// A backend failure as Cinder words it (500, "`what`: detail."), keeping
/// other errors as they are.
pub(crate) fn server_error(e: ApiError, what: &str) -> ApiError {
    match e.0 {
        Error::Backend(detail) | Error::Unsupported(detail) => {
            ApiError(Error::Backend(format!("{what}: {detail}.")))
        }
        _ => e,
    }
}

/// Undoes whatever part of an export a failed [`connect`] may have made,
/// in the background (the volume service may be the thing that failed).
fn undo_export(state: &ApiState, ctx: &Ctx, vol: &Volume, attachment_id: &str) {
    let Some(backend) = vol.backend().map(str::to_string) else {
        return;
    };
    let (state, rc) = (state.clone(), ctx.rc.clone());
    let (volume_id, attachment_id) = (vol.id.clone(), attachment_id.to_string());
    tokio::spawn(async move {
        if let Err(e) = unexport(&state, &rc, &backend, &volume_id, &attachment_id).await {
            tracing::warn!(error = %e, request_id = %rc.request_id, "could not undo a failed export");
        }
    });
}

/// Asks the volume service of `backend` to remove the export of one
/// attachment, and waits for its answer.
async fn unexport(
    state: &ApiState,
    rc: &RequestContext,
    backend: &str,
    volume_id: &str,
    attachment_id: &str,
) -> Result<(), Error> {
    let req = VolumeRequest::TerminateConnection {
        volume_id: volume_id.to_string(),
        attachment_id: Some(attachment_id.to_string()),
    };
    let _: Value = state
        .bus
        .call(&volume_topic(backend), rc, &req, state.cfg.rpc_timeout)
        .await?;
    Ok(())
}
