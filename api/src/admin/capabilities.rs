//! `GET /capabilities/{host}`: asks a volume service, over a bus `call`, what
//! its backend can do. A backend that does not answer within the RPC timeout
//! gives a 503 that says so, never a hung request.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::VOLUME_BINARY;
use scoria_core::rpc::{volume_topic, VolumeRequest};
use scoria_core::stats::StatsReport;
use scoria_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::context::Ctx;
use crate::http::fault::{ApiError, ApiResult};
use crate::ApiState;

#[derive(Deserialize)]
struct HostPath {
    host: String,
}

pub fn routes() -> Router<ApiState> {
    Router::new().route("/capabilities/{host}", get(show))
}

async fn show(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<HostPath>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:capabilities")?;
    let known = state
        .db
        .list_services(Some(&p.host), Some(VOLUME_BINARY))
        .await?;
    if known.is_empty() {
        return Err(ApiError(Error::NotFound(format!(
            "Volume service {} could not be found.",
            p.host
        ))));
    }
    let report: StatsReport = state
        .bus
        .call(
            &volume_topic(&p.host),
            &ctx.rc,
            &VolumeRequest::GetCapabilities,
            state.cfg.rpc_timeout,
        )
        .await?;
    let pool = report.stats.pools.first();
    Ok(Json(json!({
        "namespace": format!("OS::Storage::Capabilities::{}", p.host),
        "vendor_name": report.stats.vendor_name,
        "volume_backend_name": report.stats.volume_backend_name,
        "pool_name": pool.map(|p| p.pool_name.clone()),
        "driver_version": report.stats.driver_version,
        "storage_protocol": report.stats.storage_protocol,
        "display_name": null,
        "description": null,
        "visibility": null,
        "replication_targets": [],
        "properties": {},
    })))
}
