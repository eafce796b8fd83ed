//! The attachments API (3.27 and later): how Nova and glance_store attach
//! volumes. Create reserves the volume (and exports it when a connector
//! comes along), update exports it to a host, `os-complete` (3.44) marks it
//! attached, delete removes the export and the attachment.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use scoria_core::model::{AccessMode, Attachment, Connector, Volume};
use scoria_core::status::AttachStatus;
use scoria_core::transitions::attachment;
use scoria_core::{time, Error};
use scoria_db::{AttachmentChanges, AttachmentQuery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::attach::views::{detail, summary};
use crate::attach::workflow::{self, Leftover};
use crate::http::context::Ctx;
use crate::http::extract::{JsonBody, Params};
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::paging::View;
use crate::http::{list_filters, paging, validate};
use crate::volumes::crud::visible_volume;
use crate::ApiState;

/// The microversion that introduced attachments.
const ATTACHMENTS: u32 = 27;

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/attachments", get(list).post(create))
        .route("/attachments/detail", get(list))
        .route("/attachments/{id}", get(show).put(update).delete(remove))
        .route("/attachments/{id}/action", post(action))
}

/// An attachment the caller may see, or 404.
async fn visible(state: &ApiState, ctx: &Ctx, id: &str) -> ApiResult<Attachment> {
    let a = state.db.get_attachment(id).await?;
    if ctx.rc.is_admin || a.project_id == ctx.rc.project_id {
        Ok(a)
    } else {
        Err(ApiError(Error::NotFound(format!(
            "VolumeAttachment {id} could not be found."
        ))))
    }
}

/// The `attachment` object of a request body.
fn body_object(body: &Map<String, Value>) -> ApiResult<&Map<String, Value>> {
    body.get("attachment")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad_request("Invalid input received: the body must be {\"attachment\": {…}}.")
        })
}

/// A connector object: `None` when absent, null or empty (the CLI sends `{}`
/// when it only reserves).
fn connector(m: &Map<String, Value>) -> ApiResult<Option<Connector>> {
    match m.get("connector") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) => Ok((!c.is_empty()).then(|| c.clone())),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute connector. Value: {other}. {other} is not of type 'object', 'null'"
        ))),
    }
}

fn uuid_field(m: &Map<String, Value>, key: &str, required: bool) -> ApiResult<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(Some(s.clone())),
        None | Some(Value::Null) => Err(bad_request(format!(
            "Invalid input received: '{key}' is a required property."
        ))),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. {other} is not a 'uuid'"
        ))),
    }
}

fn mode_field(m: &Map<String, Value>) -> ApiResult<Option<AccessMode>> {
    match m.get("mode") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => AccessMode::parse(s).map(Some).ok_or_else(|| {
            bad_request(format!(
                "Invalid input received: Invalid attachment mode '{s}'; use 'rw' or 'ro'."
            ))
        }),
        Some(other) => Err(bad_request(format!(
            "Invalid input for field/attribute mode. Value: {other}. {other} is not one of ['rw', 'ro']"
        ))),
    }
}

async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_version(ATTACHMENTS)?;
    let m = body_object(&body)?;
    let keys: &[&str] = if ctx.version.at_least(54) {
        &["volume_uuid", "instance_uuid", "connector", "mode"]
    } else {
        &["volume_uuid", "instance_uuid", "connector"]
    };
    validate::only_keys(m, keys)?;
    let volume_id = uuid_field(m, "volume_uuid", true)?.unwrap_or_default();
    let instance_uuid = uuid_field(m, "instance_uuid", false)?;
    let connector = connector(m)?;
    let mode = mode_field(m)?;
    let vol = visible_volume(&state, &ctx, &volume_id).await?;
    let att = workflow::reserve(&state, &ctx, &vol, instance_uuid, mode).await?;
    let Some(connector) = connector else {
        return Ok(Json(json!({ "attachment": detail(&att) })));
    };
    let failed = format!("Unable to create attachment for volume ({})", vol.id);
    export(
        &state,
        &ctx,
        &vol,
        &att,
        connector,
        Leftover::Removed,
        &failed,
    )
    .await
}

/// Exports the volume for `att` and answers with the attachment, or with a
/// 500 that starts with `failed` once the workflow has left `leftover`.
async fn export(
    state: &ApiState,
    ctx: &Ctx,
    vol: &Volume,
    att: &Attachment,
    connector: Connector,
    leftover: Leftover,
    failed: &str,
) -> ApiResult<Json<Value>> {
    let attaching = attachment::EXPORT.to.status();
    match workflow::export(state, ctx, vol, att, connector, attaching, leftover).await {
        Ok(att) => Ok(Json(json!({ "attachment": detail(&att) }))),
        Err(e) => Err(workflow::server_error(e, failed)),
    }
}

async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_version(ATTACHMENTS)?;
    let m = body_object(&body)?;
    validate::only_keys(m, &["connector"])?;
    let connector = match connector(m)? {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(bad_request(
                "Invalid input received: an attachment update needs a non-empty 'connector'.",
            ))
        }
    };
    let att = visible(&state, &ctx, &p.id).await?;
    let vol = state.db.get_volume(&att.volume_id).await?;
    if vol.status.is_error() {
        return Err(ApiError(Error::Conflict(format!(
            "Invalid volume: Volume {} is in {} status; it cannot be attached.",
            vol.id, vol.status
        ))));
    }
    check_single_host(&state, &vol, &att, &connector).await?;
    let failed = "Unable to update attachment";
    export(
        &state,
        &ctx,
        &vol,
        &att,
        connector,
        Leftover::Failed,
        failed,
    )
    .await
}

/// A volume that is not multiattach may be attached to one host only.
async fn check_single_host(
    state: &ApiState,
    vol: &Volume,
    att: &Attachment,
    connector: &Connector,
) -> ApiResult<()> {
    if vol.multiattach {
        return Ok(());
    }
    let host = connector.get("host").and_then(Value::as_str);
    let others = state.db.attachments_of_volume(&vol.id).await?;
    let elsewhere = others.iter().any(|o| {
        o.id != att.id
            && o.attach_status == AttachStatus::Attached
            && o.attached_host.as_deref() != host
    });
    if elsewhere {
        return Err(ApiError(Error::Conflict(format!(
            "Invalid volume: Volume {} is already attached to another host and is not multiattach.",
            vol.id
        ))));
    }
    Ok(())
}

async fn action(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    ctx.require_version(ATTACHMENTS)?;
    let (name, _) = validate::single_action(&body)?;
    if name != "os-complete" {
        return Err(validate::no_such_action(name));
    }
    ctx.require_version(44)?;
    let att = visible(&state, &ctx, &p.id).await?;
    let op = &attachment::COMPLETE;
    let done = AttachmentChanges {
        attach_status: op.to.status(),
        attached_at: Some(Some(att.attached_at.clone().unwrap_or_else(time::now))),
        ..Default::default()
    };
    let from = op.from.guard();
    if !state
        .db
        .update_attachment(&att.id, &done, from.as_deref())
        .await?
    {
        return Err(bad_request(format!(
            "Invalid volume: Attachment {} is {}; only a reserved or attaching attachment can be completed.",
            att.id, att.attach_status
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<Value>> {
    ctx.require_version(ATTACHMENTS)?;
    let att = visible(&state, &ctx, &p.id).await?;
    let vol = state.db.get_volume(&att.volume_id).await?;
    workflow::detach(&state, &ctx, &vol, &att)
        .await
        .map_err(|e| workflow::server_error(e, "Unable to delete attachment"))?;
    let left = state.db.attachments_of_volume(&vol.id).await?;
    Ok(Json(json!({
        "attachments": left.iter().map(summary).collect::<Vec<_>>()
    })))
}

async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<Value>> {
    ctx.require_version(ATTACHMENTS)?;
    let att = visible(&state, &ctx, &p.id).await?;
    Ok(Json(json!({ "attachment": detail(&att) })))
}

fn query(ctx: &Ctx, params: &Params) -> ApiResult<AttachmentQuery> {
    list_filters::check(ctx, "attachment", params)?;
    let all = list_filters::all_tenants(ctx, params);
    let text = |k: &str| params.get(k).map(str::to_string);
    Ok(AttachmentQuery {
        project_id: (!all).then(|| ctx.rc.project_id.clone()),
        volume_id: text("volume_id"),
        instance_id: text("instance_id"),
        attach_status: text("attach_status").or(text("status")),
        page: paging::page(params, AttachmentQuery::SORT_KEYS)?,
    })
}

async fn list(
    State(state): State<ApiState>,
    ctx: Ctx,
    params: Params,
    view: View,
) -> ApiResult<Response> {
    ctx.require_version(ATTACHMENTS)?;
    let q = query(&ctx, &params)?;
    let found = state.db.list_attachments(&q).await?;
    let items: Vec<Value> = match view.detail {
        true => found.iter().map(detail).collect(),
        false => found.iter().map(summary).collect(),
    };
    let last = found.last().map(|a| a.id.as_str());
    Ok(paging::listing(&ctx, "attachments", view, &params, &q.page, items, last).into_response())
}
