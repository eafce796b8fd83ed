//! The legacy attach actions Nova still sends for older attachments:
//! `os-reserve` → `os-initialize_connection` → `os-attach`, and
//! `os-begin_detaching` → `os-terminate_connection` → `os-detach`, with
//! `os-unreserve` and `os-roll_detaching` to back out; and the
//! administrator's `os-force_detach` for attachments stuck in any state.
//!
//! `POST /volumes/{id}/action` parses these into its `VolumeAction` and
//! calls the handlers here; the export itself is the shared workflow's.
//!
//! `os-initialize_connection` records the export as an attachment in
//! `detached` state (it does not change the volume's status, as in Cinder);
//! `os-attach` turns that record into an `attached` attachment.

use scoria_core::model::{AccessMode, Attachment, Connector, Volume};
use scoria_core::status::{AttachStatus, VolumeStatus};
use scoria_core::transitions::{attachment, volume};
use scoria_core::{time, Error};
use scoria_db::{AttachmentChanges, VolumeChanges, VolumeGuard};
use serde_json::{json, Value};

use crate::attach::views::standard_data;
use crate::attach::workflow::{self, Leftover};
use crate::http::context::Ctx;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate;
use crate::volumes::crud::visible_volume;
use crate::ApiState;

/// The `connector` of `os-initialize_connection` and `os-terminate_connection`.
pub(crate) fn connector_arg(name: &str, arg: &Value) -> ApiResult<Connector> {
    match validate::action_args(name, arg)?.get("connector") {
        Some(Value::Object(c)) => Ok(c.clone()),
        _ => Err(bad_request(format!(
            "Invalid input received: {name} needs a 'connector' object."
        ))),
    }
}

fn not_in_maintenance(v: &Volume, what: &str) -> ApiResult<()> {
    if v.status == VolumeStatus::Maintenance {
        return Err(bad_request(format!(
            "Invalid volume: Volume {} is in maintenance; it cannot be {what} now.",
            v.id
        )));
    }
    Ok(())
}

pub(crate) async fn reserve(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let op = match v.multiattach {
        true => &volume::RESERVE_MULTIATTACH,
        false => &volume::RESERVE,
    };
    let changes = VolumeChanges {
        status: op.to.status(),
        ..Default::default()
    };
    let allowed = op.from.statuses();
    if !state
        .db
        .update_volume(id, &changes, VolumeGuard::status_in(&allowed))
        .await?
    {
        let now = state.db.get_volume(id).await?;
        return Err(bad_request(format!(
            "Invalid volume: Volume status must be {} to reserve, but the status is {}.",
            op.from.or_list(),
            now.status
        )));
    }
    Ok(())
}

/// Ends a reservation: an `attaching` volume goes back to what its
/// attachments say (`in-use` or `available`); anything else is left alone.
pub(crate) async fn unreserve(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    if volume::UNRESERVE.from.contains(v.status) {
        state.db.recompute_attach_status(id).await?;
    }
    Ok(())
}

pub(crate) async fn begin_detaching(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let attached = v.attach_status == AttachStatus::Attached;
    let op = &volume::BEGIN_DETACHING;
    let changes = VolumeChanges {
        status: op.to.status(),
        ..Default::default()
    };
    let allowed = op.from.statuses();
    let guard = VolumeGuard::status_in(&allowed);
    if !attached || !state.db.update_volume(id, &changes, guard).await? {
        return Err(bad_request(format!("Invalid volume: Unable to detach volume. Volume status must be {} and attach_status must be 'attached' to detach.", op.from.quoted())));
    }
    Ok(())
}

pub(crate) async fn roll_detaching(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<()> {
    visible_volume(state, ctx, id).await?;
    let op = &volume::ROLL_DETACHING;
    let changes = VolumeChanges {
        status: op.to.status(),
        ..Default::default()
    };
    let allowed = op.from.statuses();
    state
        .db
        .update_volume(id, &changes, VolumeGuard::status_in(&allowed))
        .await?;
    Ok(())
}

/// Whether an attachment's stored connector names the same host as `c`.
fn same_host(a: &Attachment, c: &Connector) -> bool {
    let Some(stored) = &a.connector else {
        return false;
    };
    ["host", "initiator"]
        .iter()
        .all(|k| stored.get(*k) == c.get(*k))
}

/// `os-initialize_connection`: exports the volume to the connector's host
/// (reusing the record of an earlier connection from that host) and answers
/// with the connection info.
pub(crate) async fn initialize(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    connector: Connector,
) -> ApiResult<Value> {
    let v = visible_volume(state, ctx, id).await?;
    not_in_maintenance(&v, "connected")?;
    let existing = state
        .db
        .attachments_of_volume(id)
        .await?
        .into_iter()
        .find(|a| a.attach_status != AttachStatus::ErrorDetaching && same_host(a, &connector));
    let (att, created) = match existing {
        Some(a) => (a, false),
        None => (connection_record(state, &v).await?, true),
    };
    let leftover = if created {
        Leftover::RemovedIfDetached
    } else {
        Leftover::Kept
    };
    match workflow::export(state, ctx, &v, &att, connector, None, leftover).await {
        Ok(att) => {
            let info = att
                .connection_info
                .clone()
                .unwrap_or_else(|| unreachable!("connect stores the connection info it returns"));
            Ok(json!({
                "connection_info": {
                    "driver_volume_type": info.driver_volume_type,
                    "data": standard_data(&att, &info),
                }
            }))
        }
        Err(e) => Err(match e.0 {
            Error::Backend(detail) | Error::Unsupported(detail) => ApiError(Error::Backend(format!(
                "Bad or unexpected response from the storage volume backend API: Driver initialize connection failed (error: {detail})."
            ))),
            _ => e,
        }),
    }
}

/// A new attachment record for a legacy connection, not yet attached.
async fn connection_record(state: &ApiState, v: &Volume) -> ApiResult<Attachment> {
    let a = Attachment::new(v, AttachStatus::Detached, None);
    state.db.create_attachment(&a, None).await?;
    Ok(a)
}

/// `os-terminate_connection`: removes the exports to the connector's host
/// and forgets the records of connections that were never attached.
pub(crate) async fn terminate(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    connector: Connector,
) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    for a in state.db.attachments_of_volume(id).await? {
        if !same_host(&a, &connector) {
            continue;
        }
        workflow::disconnect(state, ctx, &v, &a).await?;
        let from = attachment::DISCONNECT.from;
        if from.contains(a.attach_status) {
            let from = from.guard();
            state.db.delete_attachment(&a.id, from.as_deref()).await?;
        }
    }
    unreserve(state, ctx, id).await
}

/// The argument of `os-attach`.
pub(crate) struct AttachArgs {
    mountpoint: String,
    instance_uuid: Option<String>,
    host_name: Option<String>,
    mode: AccessMode,
}

impl AttachArgs {
    /// Reads `{"mountpoint", "instance_uuid" or "host_name", "mode"?}`.
    pub(crate) fn parse(arg: &Value) -> ApiResult<Self> {
        let m = validate::action_args("os-attach", arg)?;
        let text = |k: &str| validate::opt_string(m, k, 255);
        let mountpoint = text("mountpoint")?
            .ok_or_else(|| bad_request("Invalid input received: os-attach needs 'mountpoint'."))?;
        let instance_uuid = text("instance_uuid")?;
        let host_name = text("host_name")?;
        if instance_uuid.is_none() && host_name.is_none() {
            return Err(bad_request(
                "Invalid input received: os-attach needs 'instance_uuid' or 'host_name'.",
            ));
        }
        let mode = match text("mode")? {
            None => AccessMode::Rw,
            Some(s) => AccessMode::parse(&s).ok_or_else(|| {
                bad_request(format!(
                    "Invalid input received: Invalid attaching mode '{s}'; use 'rw' or 'ro'."
                ))
            })?,
        };
        Ok(AttachArgs {
            mountpoint,
            instance_uuid,
            host_name,
            mode,
        })
    }
}

/// `os-attach`: turns the volume's unattached connection record (the one
/// from `host_name` first) into an attachment.
pub(crate) async fn attach(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    args: AttachArgs,
) -> ApiResult<()> {
    let AttachArgs {
        mountpoint,
        instance_uuid,
        host_name,
        mode,
    } = args;
    let v = visible_volume(state, ctx, id).await?;
    not_in_maintenance(&v, "attached")?;
    if workflow::readonly(&v) && mode == AccessMode::Rw {
        return Err(bad_request(format!(
            "Invalid input received: Invalid attaching mode 'rw' for volume {id}: the volume is read-only."
        )));
    }
    if v.status == VolumeStatus::InUse && !v.multiattach {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} is already attached and is not multiattach."
        )));
    }
    let record = state
        .db
        .attachments_of_volume(id)
        .await?
        .into_iter()
        .filter(|a| attachment::ATTACH.from.contains(a.attach_status))
        .max_by_key(|a| {
            (
                host_name.is_some() && a.attached_host == host_name,
                a.created_at.clone(),
            )
        });
    let record = match record {
        Some(a) => a,
        None => connection_record(state, &v).await?,
    };
    let op = &attachment::ATTACH;
    let changes = AttachmentChanges {
        attach_status: op.to.status(),
        instance_uuid: Some(instance_uuid),
        attached_host: Some(host_name.or(record.attached_host.clone())),
        mountpoint: Some(Some(mountpoint)),
        attach_mode: Some(Some(mode)),
        attached_at: Some(Some(time::now())),
        ..Default::default()
    };
    let from = op.from.guard();
    state
        .db
        .update_attachment(&record.id, &changes, from.as_deref())
        .await?;
    Ok(())
}

/// The `attachment_id` of `os-detach`, if its argument names one.
pub(crate) fn detach_arg(arg: &Value) -> ApiResult<Option<String>> {
    match arg {
        Value::Object(m) => validate::opt_string(m, "attachment_id", 64),
        _ => Ok(None),
    }
}

/// `os-detach`: removes the export and the attachment named by `wanted`
/// (else the volume's only attached one).
pub(crate) async fn detach(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    wanted: Option<String>,
) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let attachments = state.db.attachments_of_volume(id).await?;
    let att = match &wanted {
        Some(aid) => attachments.iter().find(|a| &a.id == aid).ok_or_else(|| {
            ApiError(Error::NotFound(format!(
                "VolumeAttachment {aid} could not be found."
            )))
        })?,
        None => {
            let mut attached = attachments
                .iter()
                .filter(|a| a.attach_status == AttachStatus::Attached);
            match (attached.next(), attached.next()) {
                (Some(a), None) => a,
                (None, _) => return Ok(()),
                (Some(_), Some(_)) => {
                    return Err(bad_request(format!(
                        "Invalid volume: Volume {id} is attached more than once; os-detach needs an attachment_id."
                    )))
                }
            }
        }
    };
    workflow::disconnect(state, ctx, &v, att).await?;
    let from = attachment::DETACH.from.guard();
    state.db.delete_attachment(&att.id, from.as_deref()).await?;
    Ok(())
}

/// The argument of `os-force_detach`.
pub(crate) struct ForceDetachArgs {
    wanted: Option<String>,
    connector: Option<Connector>,
}

impl ForceDetachArgs {
    /// Reads `{"attachment_id"?, "connector"?}`.
    pub(crate) fn parse(arg: &Value) -> ApiResult<Self> {
        let m = validate::action_args("os-force_detach", arg)?;
        let wanted = validate::opt_string(m, "attachment_id", 64)?;
        let connector =
            match m.get("connector") {
                None | Some(Value::Null) => None,
                Some(Value::Object(c)) => Some(c.clone()),
                Some(_) => return Err(bad_request(
                    "Invalid input received: the 'connector' of os-force_detach must be an object.",
                )),
            };
        Ok(ForceDetachArgs { wanted, connector })
    }
}

/// Administrators' way out of a stuck attachment, whatever its state: the
/// attachment named by `attachment_id` (else the volume's only one, on the
/// `connector`'s host when one is given) loses its export, which the volume
/// service must confirm, and is removed; the volume's status then follows
/// its remaining attachments (a volume left `attaching` by `os-reserve`
/// becomes `available`).
pub(crate) async fn force_detach(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    args: ForceDetachArgs,
) -> ApiResult<()> {
    let ForceDetachArgs { wanted, connector } = args;
    let connector = connector.as_ref();
    let v = visible_volume(state, ctx, id).await?;
    let attachments = state.db.attachments_of_volume(id).await?;
    let chosen: Vec<&Attachment> = match &wanted {
        Some(aid) => vec![attachments.iter().find(|a| &a.id == aid).ok_or_else(|| {
            ApiError(Error::NotFound(format!(
                "VolumeAttachment {aid} could not be found."
            )))
        })?],
        None => attachments
            .iter()
            .filter(|a| connector.is_none_or(|c| same_host(a, c)))
            .collect(),
    };
    if chosen.len() > 1 {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} has {} attachments{}; os-force_detach needs an attachment_id.",
            chosen.len(),
            if connector.is_some() { " on the connector's host" } else { "" }
        )));
    }
    if let Some(att) = chosen.first() {
        workflow::disconnect(state, ctx, &v, att)
            .await
            .map_err(|e| workflow::server_error(e, "Unable to terminate volume connection"))?;
        let from = attachment::DETACH.from.guard();
        state.db.delete_attachment(&att.id, from.as_deref()).await?;
    }
    state.db.recompute_attach_status(id).await?;
    Ok(())
}
