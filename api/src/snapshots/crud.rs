//! `/snapshots`: create, list, show, update, delete, and admin actions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scoria_core::model::Snapshot;
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::status::SnapshotStatus;
use scoria_core::transitions::{snapshot, volume, Transition};
use scoria_core::{time, Error};
use scoria_db::{SnapshotChanges, SnapshotQuery, SortKey};
use serde_json::{json, Map, Value};

use crate::http::context::Ctx;
use crate::http::extract::{JsonBody, Params};
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::paging::View;
use crate::http::validate::{self, MAX_TEXT};
use crate::http::{list_filters, paging};
use crate::snapshots::views;
use crate::volumes::crud::{visible_volume, IdPath};
use crate::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/snapshots", get(list).post(create))
        .route("/snapshots/detail", get(list))
        .route("/snapshots/{id}", get(show).put(update).delete(delete))
        .route("/snapshots/{id}/action", post(action))
}

/// A snapshot the caller may see, or 404.
pub(crate) async fn visible_snapshot(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Snapshot> {
    let s = state.db.get_snapshot(id).await?;
    ctx.check_project(&s.project_id, "Snapshot", id)?;
    Ok(s)
}

fn text(m: &Map<String, Value>, keys: [&str; 2]) -> ApiResult<Option<Option<String>>> {
    for key in keys {
        if m.contains_key(key) {
            return Ok(Some(validate::opt_string(m, key, MAX_TEXT)?));
        }
    }
    Ok(None)
}

async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let m = validate::object(&body, "snapshot")?;
    let volume_id = validate::opt_id(m, "volume_id")?
        .ok_or_else(|| bad_request("Invalid input received: a snapshot needs 'volume_id'."))?;
    let force = match m.get("force").filter(|v| !v.is_null()) {
        Some(v) => validate::boolean("force", v)?,
        None => false,
    };
    let metadata = match m.get("metadata").filter(|v| !v.is_null()) {
        Some(v) => validate::metadata("metadata", v)?,
        None => Default::default(),
    };
    let vol = visible_volume(&state, &ctx, &volume_id).await?;
    let gate = match force {
        true => &volume::SNAPSHOT_FORCED,
        false => &volume::SNAPSHOT,
    };
    let snap = Snapshot {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.rc.project_id.clone(),
        user_id: ctx.rc.user_id.clone(),
        volume_id: volume_id.clone(),
        name: text(m, ["name", "display_name"])?.flatten(),
        description: text(m, ["description", "display_description"])?.flatten(),
        size: vol.size,
        status: SnapshotStatus::Creating,
        progress: "0%".into(),
        provider_location: None,
        metadata,
        created_at: time::now(),
        updated_at: None,
    };
    if !state
        .db
        .insert_snapshot(&snap, &gate.from.statuses())
        .await?
    {
        let now = state.db.get_volume(&volume_id).await?;
        return Err(bad_request(format!(
            "Invalid volume: Volume {volume_id} status must be {} to take a snapshot, but current status is: {}.",
            gate.from.quoted(),
            now.status
        )));
    }
    let backend = vol
        .backend()
        .ok_or_else(|| ApiError(Error::Internal(format!("volume {volume_id} has no host"))))?;
    state
        .bus
        .cast(
            &volume_topic(backend),
            &ctx.rc,
            &VolumeRequest::CreateSnapshot {
                snapshot_id: snap.id.clone(),
            },
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "snapshot": views::snapshot(&ctx, &snap, false) })),
    )
        .into_response())
}

/// Sort keys of a listing: `name` only from 3.30 (`display_name` always).
fn sort_keys(ctx: &Ctx) -> Vec<SortKey> {
    SnapshotQuery::SORT_KEYS
        .iter()
        .filter(|k| k.name != "name" || ctx.version.at_least(30))
        .copied()
        .collect()
}

fn query(ctx: &Ctx, params: &Params) -> ApiResult<SnapshotQuery> {
    list_filters::check(ctx, "snapshot", params)?;
    let all = list_filters::all_tenants(ctx, params);
    let mut q = SnapshotQuery {
        project_id: (!all).then(|| ctx.rc.project_id.clone()),
        name: params
            .get("name")
            .or(params.get("display_name"))
            .map(str::to_string),
        status: params.get("status").map(str::to_string),
        volume_id: params.get("volume_id").map(str::to_string),
        availability_zone: params.get("availability_zone").map(str::to_string),
        like: list_filters::likes(ctx, params, SnapshotQuery::LIKE_KEYS)?,
        page: paging::page(params, &sort_keys(ctx))?,
        ..Default::default()
    };
    if let (Some(meta), true) = (params.get("metadata"), ctx.version.at_least(22)) {
        q.metadata = validate::metadata_filter(meta)?;
    }
    Ok(q)
}

async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
    view: View,
) -> ApiResult<Response> {
    let q = query(&ctx, &params)?;
    let snaps = state.db.list_snapshots(&q).await?;
    let count = match paging::with_count(&ctx, &params)? {
        true => Some(state.db.count_snapshots(&q).await?),
        false => None,
    };
    let items: Vec<Value> = snaps
        .iter()
        .map(|s| views::snapshot(&ctx, s, view.detail))
        .collect();
    let last = snaps.last().map(|s| s.id.as_str());
    let out = paging::listing(&ctx, "snapshots", view, &params, &q.page, items, last);
    Ok(out.counted(count).into_response())
}

async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<Value>> {
    let s = visible_snapshot(&state, &ctx, &p.id).await?;
    Ok(Json(json!({ "snapshot": views::snapshot(&ctx, &s, true) })))
}

async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let m = validate::object(&body, "snapshot")?;
    let s = visible_snapshot(&state, &ctx, &p.id).await?;
    let changes = SnapshotChanges {
        name: text(m, ["name", "display_name"])?,
        description: text(m, ["description", "display_description"])?,
        ..Default::default()
    };
    if changes.name.is_none() && changes.description.is_none() {
        return Err(bad_request(
            "Invalid input received: give at least one of name or description to update.",
        ));
    }
    state.db.update_snapshot(&s.id, &changes, None).await?;
    let s = state.db.get_snapshot(&s.id).await?;
    Ok(Json(
        json!({ "snapshot": views::snapshot(&ctx, &s, false) }),
    ))
}

/// Moves a snapshot into `op`'s interim status (`deleting`) and casts the
/// delete to its backend.
async fn start_delete(
    state: &ApiState,
    ctx: &Ctx,
    id: &str,
    op: &Transition<SnapshotStatus>,
) -> ApiResult<()> {
    let s = visible_snapshot(state, ctx, id).await?;
    let deleting = SnapshotChanges {
        status: op.interim,
        ..Default::default()
    };
    let from = op.from.guard();
    if !state
        .db
        .update_snapshot(id, &deleting, from.as_deref())
        .await?
    {
        return Err(bad_request(format!(
            "Invalid snapshot: Snapshot {id} status must be {} to be deleted, currently {}.",
            op.from.quoted(),
            s.status
        )));
    }
    let vol = state.db.get_volume(&s.volume_id).await?;
    match vol.backend() {
        Some(backend) => {
            let req = VolumeRequest::DeleteSnapshot {
                snapshot_id: id.into(),
            };
            state
                .bus
                .cast(&volume_topic(backend), &ctx.rc, &req)
                .await?
        }
        None => state.db.delete_snapshot(id).await?,
    }
    Ok(())
}

async fn delete(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Response> {
    start_delete(&state, &ctx, &p.id, &snapshot::DELETE).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn action(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (name, arg) = validate::single_action(&body)?;
    match name {
        "os-reset_status" => {
            ctx.require_admin("volume_extension:snapshot_admin_actions:reset_status")?;
            let m = arg.as_object().ok_or_else(|| {
                bad_request("Invalid input received: os-reset_status needs {\"status\": …}.")
            })?;
            let status = validate::opt_string(m, "status", 64)?
                .ok_or_else(|| {
                    bad_request("Invalid input received: os-reset_status needs 'status'.")
                })?
                .parse::<SnapshotStatus>()
                .map_err(|e| bad_request(format!("Invalid input received: status {e}")))?;
            visible_snapshot(&state, &ctx, &p.id).await?;
            let from = snapshot::RESET_STATUS.from.guard();
            state
                .db
                .update_snapshot(&p.id, &SnapshotChanges::status(status), from.as_deref())
                .await?;
        }
        "os-force_delete" => {
            ctx.require_admin("volume_extension:snapshot_admin_actions:force_delete")?;
            start_delete(&state, &ctx, &p.id, &snapshot::FORCE_DELETE).await?;
        }
        other => return Err(validate::no_such_action(other)),
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
