//! `/volumes/{id}/metadata` and `/snapshots/{id}/metadata`: one implementation
//! for both owners.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::Metadata;
use scoria_core::status::VolumeStatus;
use scoria_core::Error;
use scoria_db::MetaKind;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::extract::JsonBody;
use crate::http::fault::{bad_request, fault, ApiError, ApiResult};
use crate::http::validate;
use crate::snapshots::crud::visible_snapshot;
use crate::volumes::crud::visible_volume;
use crate::ApiState;

#[derive(Deserialize)]
struct OwnerPath {
    id: String,
}

#[derive(Deserialize)]
struct KeyPath {
    id: String,
    key: String,
}

pub fn routes() -> Router<ApiState> {
    owner_routes("/volumes", MetaKind::Volume).merge(owner_routes("/snapshots", MetaKind::Snapshot))
}

/// The metadata routes of one owner collection.
fn owner_routes(collection: &str, kind: MetaKind) -> Router<ApiState> {
    type Owner = Path<OwnerPath>;
    type Key = Path<KeyPath>;
    Router::new()
        .route(
            &format!("{collection}/{{id}}/metadata"),
            get(move |State(s), ctx, Path(p): Owner| list(s, ctx, kind, p.id))
                .post(move |State(s), ctx, Path(p): Owner, h, b| {
                    write(s, ctx, kind, p.id, h, b, false)
                })
                .put(move |State(s), ctx, Path(p): Owner, h, b| {
                    write(s, ctx, kind, p.id, h, b, true)
                }),
        )
        .route(
            &format!("{collection}/{{id}}/metadata/{{key}}"),
            get(move |State(s), ctx, Path(p): Key| get_key(s, ctx, kind, p))
                .put(move |State(s), ctx, Path(p): Key, b| put_key(s, ctx, kind, p, b))
                .delete(move |State(s), ctx, Path(p): Key| delete_key(s, ctx, kind, p)),
        )
}

/// Checks the caller may see (and, when `writing`, change) the owner's metadata.
async fn check_owner(
    state: &ApiState,
    ctx: &Ctx,
    kind: MetaKind,
    id: &str,
    writing: bool,
) -> ApiResult<()> {
    match kind {
        MetaKind::Volume => {
            let v = visible_volume(state, ctx, id).await?;
            if writing
                && matches!(
                    v.status,
                    VolumeStatus::Maintenance | VolumeStatus::Uploading
                )
            {
                return Err(bad_request(format!(
                    "Invalid volume: Volume {id} is '{}'; its metadata cannot change now.",
                    v.status
                )));
            }
        }
        _ => {
            visible_snapshot(state, ctx, id).await?;
        }
    }
    Ok(())
}

/// An opaque tag of a metadata map (3.15).
fn etag(meta: &Metadata) -> String {
    let mut h = DefaultHasher::new();
    meta.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

fn with_etag(ctx: &Ctx, kind: MetaKind, meta: &Metadata, body: Value) -> Response {
    let mut resp = Json(body).into_response();
    if kind == MetaKind::Volume && ctx.version.at_least(15) {
        if let Ok(v) = HeaderValue::from_str(&etag(meta)) {
            resp.headers_mut().insert("etag", v);
        }
    }
    resp
}

async fn list(state: ApiState, ctx: Ctx, kind: MetaKind, id: String) -> ApiResult<Response> {
    check_owner(&state, &ctx, kind, &id, false).await?;
    let meta = state.db.get_metadata(kind, &id).await?;
    Ok(with_etag(&ctx, kind, &meta, json!({ "metadata": meta })))
}

async fn write(
    state: ApiState,
    ctx: Ctx,
    kind: MetaKind,
    id: String,
    headers: HeaderMap,
    body: JsonBody,
    replace: bool,
) -> ApiResult<Response> {
    let meta = validate::metadata("metadata", body.0.get("metadata").unwrap_or(&Value::Null))?;
    check_owner(&state, &ctx, kind, &id, true).await?;
    if replace && kind == MetaKind::Volume && ctx.version.at_least(15) {
        if let Some(expected) = headers.get("if-match").and_then(|v| v.to_str().ok()) {
            let current = state.db.get_metadata(kind, &id).await?;
            if expected != etag(&current) {
                return Ok(fault(StatusCode::PRECONDITION_FAILED, "The volume metadata changed since it was read (If-Match does not match its ETag)."));
            }
        }
    }
    let full = state.db.set_metadata(kind, &id, &meta, replace).await?;
    Ok(with_etag(&ctx, kind, &full, json!({ "metadata": full })))
}

async fn get_key(state: ApiState, ctx: Ctx, kind: MetaKind, p: KeyPath) -> ApiResult<Json<Value>> {
    check_owner(&state, &ctx, kind, &p.id, false).await?;
    let meta = state.db.get_metadata(kind, &p.id).await?;
    let value = meta.get(&p.key).ok_or_else(|| {
        ApiError(Error::NotFound(format!(
            "Metadata key {} could not be found.",
            p.key
        )))
    })?;
    Ok(Json(json!({ "meta": { &p.key: value } })))
}

async fn put_key(
    state: ApiState,
    ctx: Ctx,
    kind: MetaKind,
    p: KeyPath,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let meta = validate::metadata("meta", body.0.get("meta").unwrap_or(&Value::Null))?;
    if meta.len() != 1 || !meta.contains_key(&p.key) {
        return Err(bad_request(format!("Invalid input received: the body must hold exactly one item, and its key must be '{}' as in the URL.", p.key)));
    }
    check_owner(&state, &ctx, kind, &p.id, true).await?;
    state.db.set_metadata(kind, &p.id, &meta, false).await?;
    Ok(Json(json!({ "meta": meta })))
}

async fn delete_key(state: ApiState, ctx: Ctx, kind: MetaKind, p: KeyPath) -> ApiResult<Response> {
    check_owner(&state, &ctx, kind, &p.id, true).await?;
    if !state.db.delete_metadata_key(kind, &p.id, &p.key).await? {
        return Err(ApiError(Error::NotFound(format!(
            "Metadata key {} could not be found.",
            p.key
        ))));
    }
    Ok(StatusCode::OK.into_response())
}
