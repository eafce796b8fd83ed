//! `POST /volumes/{id}/action`: one action per request, named by the body's only key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use scoria_core::model::{Connector, Metadata, Volume, VOLUME_BINARY};
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::stats::StatsReport;
use scoria_core::status::{AttachStatus, VolumeStatus};
use scoria_core::transitions::volume;
use scoria_core::Error;
use scoria_db::{VolumeChanges, VolumeGuard};
use serde_json::{Map, Value};

use crate::attach::legacy::{self, AttachArgs, ForceDetachArgs};
use crate::http::context::Ctx;
use crate::http::extract::JsonBody;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate;
use crate::volumes::crud::{start_delete, visible_volume, IdPath};
use crate::volumes::images::{self, UploadArgs};
use crate::volumes::revert;
use crate::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/volumes/{id}/action", post(action))
}

/// One volume action, its argument read and checked: the body of
/// `POST /volumes/{id}/action` is parsed once into this and run by one `match`.
pub(crate) enum VolumeAction {
    /// `os-extend`: grow the volume to `new_size` GiB.
    Extend {
        new_size: i64,
    },
    /// `os-reset_status` (administrators).
    ResetStatus(StatusReset),
    /// `os-force_delete` (administrators).
    ForceDelete,
    /// `os-set_bootable`.
    SetBootable(bool),
    /// `revert` (3.40): back to the volume's latest snapshot.
    Revert {
        snapshot_id: String,
    },
    /// `os-update_readonly_flag`.
    UpdateReadonlyFlag(bool),
    /// The legacy attach actions, run by [`legacy`].
    Reserve,
    Unreserve,
    BeginDetaching,
    RollDetaching,
    InitializeConnection(Connector),
    TerminateConnection(Connector),
    Attach(AttachArgs),
    Detach {
        attachment_id: Option<String>,
    },
    /// `os-force_detach` (administrators).
    ForceDetach(ForceDetachArgs),
    /// `os-set_image_metadata`: merge into the volume's image metadata.
    SetImageMetadata(Metadata),
    /// `os-unset_image_metadata`: remove one key of it.
    UnsetImageMetadata {
        key: String,
    },
    /// `os-show_image_metadata` (its argument is ignored).
    ShowImageMetadata,
    /// `os-volume_upload_image`: upload the volume into a new Glance image.
    UploadImage(UploadArgs),
}

/// The statuses `os-reset_status` sets.
pub(crate) struct StatusReset {
    status: Option<VolumeStatus>,
    attach_status: Option<AttachStatus>,
}

impl VolumeAction {
    /// Reads action `name` with argument `arg`, or says why it cannot be
    /// run: administrator-only actions and the microversion that introduced
    /// one are checked here too, in the order the caller sees them.
    pub(crate) fn parse(ctx: &Ctx, name: &str, arg: &Value) -> ApiResult<Self> {
        let flag = |key: &str| {
            let m = validate::action_args(name, arg)?;
            validate::boolean(key, validate::required(name, m, key)?)
        };
        Ok(match name {
            "os-extend" => {
                let m = validate::action_args(name, arg)?;
                let new_size =
                    validate::size("new_size", validate::required(name, m, "new_size")?)?;
                VolumeAction::Extend { new_size }
            }
            "os-reset_status" => {
                let m = validate::action_args(name, arg)?;
                ctx.require_admin("volume_extension:volume_admin_actions:reset_status")?;
                VolumeAction::ResetStatus(StatusReset::parse(m)?)
            }
            "os-force_delete" => {
                ctx.require_admin("volume_extension:volume_admin_actions:force_delete")?;
                VolumeAction::ForceDelete
            }
            "os-set_bootable" => VolumeAction::SetBootable(flag("bootable")?),
            "revert" => {
                ctx.require_version(revert::REVERT_VERSION)?;
                let snapshot_id = revert::snapshot_id(arg)?;
                VolumeAction::Revert { snapshot_id }
            }
            "os-update_readonly_flag" => VolumeAction::UpdateReadonlyFlag(flag("readonly")?),
            "os-reserve" => VolumeAction::Reserve,
            "os-unreserve" => VolumeAction::Unreserve,
            "os-begin_detaching" => VolumeAction::BeginDetaching,
            "os-roll_detaching" => VolumeAction::RollDetaching,
            "os-initialize_connection" => {
                VolumeAction::InitializeConnection(legacy::connector_arg(name, arg)?)
            }
            "os-terminate_connection" => {
                VolumeAction::TerminateConnection(legacy::connector_arg(name, arg)?)
            }
            "os-attach" => VolumeAction::Attach(AttachArgs::parse(arg)?),
            "os-detach" => VolumeAction::Detach {
                attachment_id: legacy::detach_arg(arg)?,
            },
            "os-force_detach" => {
                ctx.require_admin("volume_extension:volume_admin_actions:force_detach")?;
                VolumeAction::ForceDetach(ForceDetachArgs::parse(arg)?)
            }
            "os-set_image_metadata" => VolumeAction::SetImageMetadata(images::parse_set(arg)?),
            "os-unset_image_metadata" => VolumeAction::UnsetImageMetadata {
                key: images::parse_unset(arg)?,
            },
            "os-show_image_metadata" => VolumeAction::ShowImageMetadata,
            "os-volume_upload_image" => VolumeAction::UploadImage(UploadArgs::parse(ctx, arg)?),
            other => return Err(validate::no_such_action(other)),
        })
    }
}

async fn action(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (name, arg) = validate::single_action(&body)?;
    let (state, ctx, id) = (&state, &ctx, p.id.as_str());
    let status = match VolumeAction::parse(ctx, name, arg)? {
        VolumeAction::Extend { new_size } => extend(state, ctx, id, new_size).await,
        VolumeAction::ResetStatus(reset) => reset_status(state, ctx, id, reset).await,
        VolumeAction::ForceDelete => start_delete(state, ctx, id, false, true).await,
        VolumeAction::SetBootable(bootable) => {
            set_bootable(state, ctx, id, bootable).await?;
            return Ok(StatusCode::OK.into_response());
        }
        VolumeAction::Revert { snapshot_id } => revert::revert(state, ctx, id, snapshot_id).await,
        VolumeAction::UpdateReadonlyFlag(readonly) => set_readonly(state, ctx, id, readonly).await,
        VolumeAction::Reserve => legacy::reserve(state, ctx, id).await,
        VolumeAction::Unreserve => legacy::unreserve(state, ctx, id).await,
        VolumeAction::BeginDetaching => legacy::begin_detaching(state, ctx, id).await,
        VolumeAction::RollDetaching => legacy::roll_detaching(state, ctx, id).await,
        VolumeAction::InitializeConnection(connector) => {
            let info = legacy::initialize(state, ctx, id, connector).await?;
            return Ok(Json(info).into_response());
        }
        VolumeAction::TerminateConnection(connector) => {
            legacy::terminate(state, ctx, id, connector).await
        }
        VolumeAction::Attach(args) => legacy::attach(state, ctx, id, args).await,
        VolumeAction::Detach { attachment_id } => {
            legacy::detach(state, ctx, id, attachment_id).await
        }
        VolumeAction::ForceDetach(args) => legacy::force_detach(state, ctx, id, args).await,
        VolumeAction::SetImageMetadata(meta) => {
            return images::set_image_metadata(state, ctx, id, meta).await
        }
        VolumeAction::UnsetImageMetadata { key } => {
            return images::unset_image_metadata(state, ctx, id, key).await
        }
        VolumeAction::ShowImageMetadata => {
            return images::show_image_metadata(state, ctx, id).await
        }
        VolumeAction::UploadImage(args) => return images::upload(state, ctx, id, args).await,
    };
    status.map(|_| StatusCode::ACCEPTED.into_response())
}

async fn extend(state: &ApiState, ctx: &Ctx, id: &str, new_size: i64) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let op = match ctx.version.at_least(42) {
        true => &volume::EXTEND_ATTACHED,
        false => &volume::EXTEND,
    };
    if new_size <= v.size {
        return Err(bad_request(format!(
            "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new_size})",
            v.size
        )));
    }
    if v.status == VolumeStatus::InUse && !extends_online(state, &v).await? {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} is in-use and its backend cannot extend attached volumes; detach it first."
        )));
    }
    let changes = VolumeChanges {
        status: op.interim,
        previous_status: Some(Some(v.status)),
        ..Default::default()
    };
    let allowed = op.from.statuses();
    let guard = VolumeGuard::status_in(&allowed);
    if !op.from.contains(v.status) || !state.db.update_volume(id, &changes, guard).await? {
        let now = state.db.get_volume(id).await?;
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} status must be {} to extend, currently {}.",
            op.from.quoted(),
            now.status
        )));
    }
    let backend = v
        .backend()
        .ok_or_else(|| ApiError(Error::Internal(format!("volume {id} has no host"))))?;
    let req = VolumeRequest::ExtendVolume {
        volume_id: id.into(),
        new_size,
    };
    state
        .bus
        .cast(&volume_topic(backend), &ctx.rc, &req)
        .await?;
    Ok(())
}

/// Whether the volume's backend says it can extend attached volumes (a
/// backend that has not reported yet gets the benefit of the doubt).
async fn extends_online(state: &ApiState, v: &Volume) -> ApiResult<bool> {
    let Some(backend) = v.backend() else {
        return Ok(false);
    };
    let services = state
        .db
        .list_services(Some(backend), Some(VOLUME_BINARY))
        .await?;
    let report = services
        .into_iter()
        .find_map(|s| s.stats)
        .and_then(|stats| serde_json::from_value::<StatsReport>(stats).ok());
    Ok(report.is_none_or(|r| r.capabilities.online_extend))
}

impl StatusReset {
    /// Reads `{"status"?, "attach_status"?, "migration_status"?}`, at least one given.
    fn parse(m: &Map<String, Value>) -> ApiResult<Self> {
        validate::only_keys(m, &["status", "attach_status", "migration_status"])?;
        let parse = |key: &str| -> ApiResult<Option<String>> { validate::opt_string(m, key, 64) };
        let status = parse("status")?
            .map(|s| {
                s.parse::<VolumeStatus>()
                    .map_err(|e| bad_request(format!("Invalid input received: status {e}")))
            })
            .transpose()?;
        let attach_status = parse("attach_status")?
            .map(|s| {
                s.parse::<AttachStatus>()
                    .map_err(|e| bad_request(format!("Invalid input received: attach_status {e}")))
            })
            .transpose()?;
        if status.is_none() && attach_status.is_none() && parse("migration_status")?.is_none() {
            return Err(bad_request("Invalid input received: os-reset_status needs at least one of status, attach_status or migration_status."));
        }
        Ok(StatusReset {
            status,
            attach_status,
        })
    }
}

async fn reset_status(state: &ApiState, ctx: &Ctx, id: &str, reset: StatusReset) -> ApiResult<()> {
    let StatusReset {
        status,
        attach_status,
    } = reset;
    visible_volume(state, ctx, id).await?;
    let changes = VolumeChanges {
        status,
        attach_status,
        ..Default::default()
    };
    let allowed = volume::RESET_STATUS.from.statuses();
    if !state
        .db
        .update_volume(id, &changes, VolumeGuard::status_in(&allowed))
        .await?
    {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} is being deleted; its status cannot be reset."
        )));
    }
    Ok(())
}

async fn set_bootable(state: &ApiState, ctx: &Ctx, id: &str, bootable: bool) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let allowed = volume::SET_BOOTABLE.from.statuses();
    let changes = VolumeChanges {
        bootable: Some(bootable),
        ..Default::default()
    };
    if !state
        .db
        .update_volume(&v.id, &changes, VolumeGuard::status_in(&allowed))
        .await?
    {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} is in maintenance; try again later."
        )));
    }
    Ok(())
}

async fn set_readonly(state: &ApiState, ctx: &Ctx, id: &str, readonly: bool) -> ApiResult<()> {
    let v = visible_volume(state, ctx, id).await?;
    let mut admin = v.admin_metadata.clone();
    admin.insert(
        "readonly".into(),
        if readonly { "True" } else { "False" }.into(),
    );
    let changes = VolumeChanges {
        admin_metadata: Some(admin),
        ..Default::default()
    };
    let op = &volume::UPDATE_READONLY_FLAG;
    let allowed = op.from.statuses();
    if !state
        .db
        .update_volume(&v.id, &changes, VolumeGuard::status_in(&allowed))
        .await?
    {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} status must be {} to update its read-only flag, currently {}.",
            op.from.quoted(),
            v.status
        )));
    }
    Ok(())
}
