//! `POST /volumes/{id}/action`: one action per request, named by the body's only key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use scoria_core::model::{Volume, VOLUME_BINARY};
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::stats::StatsReport;
use scoria_core::status::{list_quoted, AttachStatus, VolumeStatus};
use scoria_core::Error;
use scoria_db::{VolumeChanges, VolumeGuard};
use serde_json::{Map, Value};

use crate::attach::legacy;
use crate::http::context::Ctx;
use crate::http::extract::JsonBody;
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate;
use crate::volumes::crud::{start_delete, visible_volume, IdPath};
use crate::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/volumes/{id}/action", post(action))
}

/// The single action of a request body and its argument.
pub(crate) fn single_action(body: &Map<String, Value>) -> ApiResult<(&str, &Value)> {
    let mut entries = body.iter();
    match (entries.next(), entries.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => Err(bad_request(
            "Malformed request body: an action body must have exactly one key, the action's name.",
        )),
    }
}

/// The argument object of an action that takes one.
fn args<'a>(name: &str, v: &'a Value) -> ApiResult<&'a Map<String, Value>> {
    v.as_object().ok_or_else(|| {
        bad_request(format!(
            "Invalid input received: the argument of {name} must be an object."
        ))
    })
}

fn required<'a>(name: &str, m: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    m.get(key)
        .ok_or_else(|| bad_request(format!("Invalid input received: {name} needs '{key}'.")))
}

async fn action(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (name, arg) = single_action(&body)?;
    if let Some(done) = legacy::run(&state, &ctx, &p.id, name, arg).await {
        return done;
    }
    let accepted = StatusCode::ACCEPTED.into_response();
    match name {
        "os-extend" => extend(&state, &ctx, &p.id, args(name, arg)?).await.map(|_| accepted),
        "os-reset_status" => reset_status(&state, &ctx, &p.id, args(name, arg)?).await.map(|_| accepted),
        "os-force_delete" => {
            ctx.require_admin("volume_extension:volume_admin_actions:force_delete")?;
            start_delete(&state, &ctx, &p.id, false, true).await.map(|_| accepted)
        }
        "os-set_bootable" => {
            let bootable = validate::boolean("bootable", required(name, args(name, arg)?, "bootable")?)?;
            set_bootable(&state, &ctx, &p.id, bootable).await.map(|_| StatusCode::OK.into_response())
        }
        "revert" => crate::volumes::revert::revert(&state, &ctx, &p.id, arg).await.map(|_| accepted),
        "os-update_readonly_flag" => {
            let readonly = validate::boolean("readonly", required(name, args(name, arg)?, "readonly")?)?;
            set_readonly(&state, &ctx, &p.id, readonly).await.map(|_| accepted)
        }
        other => Err(bad_request(format!(
            "There is no such action: {other}. Verify the request body and Content-Type header and try again."
        ))),
    }
}

async fn extend(state: &ApiState, ctx: &Ctx, id: &str, m: &Map<String, Value>) -> ApiResult<()> {
    let new_size = validate::size("new_size", required("os-extend", m, "new_size")?)?;
    let v = visible_volume(state, ctx, id).await?;
    let mut allowed = vec![VolumeStatus::Available];
    if ctx.version.at_least(42) {
        allowed.push(VolumeStatus::InUse);
    }
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
        status: Some(VolumeStatus::Extending),
        previous_status: Some(Some(v.status)),
        ..Default::default()
    };
    let guard = VolumeGuard::status_in(&allowed);
    if !allowed.contains(&v.status) || !state.db.update_volume(id, &changes, guard).await? {
        let now = state.db.get_volume(id).await?;
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} status must be {} to extend, currently {}.",
            list_quoted(&allowed),
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

async fn reset_status(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    m: &Map<String, Value>,
) -> ApiResult<()> {
    ctx.require_admin("volume_extension:volume_admin_actions:reset_status")?;
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
    visible_volume(state, ctx, id).await?;
    let changes = VolumeChanges {
        status,
        attach_status,
        ..Default::default()
    };
    let not_deleting: Vec<VolumeStatus> = VolumeStatus::ALL
        .iter()
        .copied()
        .filter(|s| *s != VolumeStatus::Deleting)
        .collect();
    if !state
        .db
        .update_volume(id, &changes, VolumeGuard::status_in(&not_deleting))
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
    let not_maintenance: Vec<VolumeStatus> = VolumeStatus::ALL
        .iter()
        .copied()
        .filter(|s| *s != VolumeStatus::Maintenance)
        .collect();
    let changes = VolumeChanges {
        bootable: Some(bootable),
        ..Default::default()
    };
    if !state
        .db
        .update_volume(&v.id, &changes, VolumeGuard::status_in(&not_maintenance))
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
    if !state
        .db
        .update_volume(
            &v.id,
            &changes,
            VolumeGuard::status_in(&[VolumeStatus::Available]),
        )
        .await?
    {
        return Err(bad_request(format!(
            "Invalid volume: Volume {id} status must be 'available' to update its read-only flag, currently {}.",
            v.status
        )));
    }
    Ok(())
}
