//! `GET /volumes/{id}/encryption[/{key}]`: the encryption metadata Nova reads
//! on every attach. Scoria serves no encryption types, so every volume is
//! unencrypted and its key id is `null`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::fault::{ApiError, ApiResult};
use crate::volumes::crud::{visible_volume, IdPath};
use crate::ApiState;

/// The keys of an encrypted volume's metadata; an unencrypted one has only
/// `encryption_key_id`.
const KEYS: &[&str] = &[
    "encryption_key_id",
    "control_location",
    "cipher",
    "key_size",
    "provider",
];

#[derive(Deserialize)]
struct KeyPath {
    id: String,
    key: String,
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/volumes/{id}/encryption", get(show))
        .route("/volumes/{id}/encryption/{key}", get(show_key))
}

async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<Value>> {
    visible_volume(&state, &ctx, &p.id).await?;
    Ok(Json(json!({ "encryption_key_id": null })))
}

async fn show_key(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<KeyPath>,
) -> ApiResult<Json<Value>> {
    visible_volume(&state, &ctx, &p.id).await?;
    if !KEYS.contains(&p.key.as_str()) {
        return Err(ApiError(Error::NotFound(format!(
            "Volume {} has no encryption metadata key {}.",
            p.id, p.key
        ))));
    }
    Ok(Json(Value::Null))
}
