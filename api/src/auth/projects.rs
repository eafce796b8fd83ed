//! A minimal stand-in for Keystone's project lookup, served only in noauth
//! mode. With `--os-auth-type none` every service resolves to Scoria's
//! endpoint, so `openstack quota show PROJECT` asks Scoria to find the
//! project; with no identity service, any project id names itself.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::extract::Params;
use crate::{ApiState, AuthStrategy};

#[derive(Deserialize)]
struct ProjectPath {
    project: String,
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/projects", get(list))
        .route("/projects/{project}", get(show))
}

fn project(id: &str) -> Value {
    json!({"id": id, "name": id, "domain_id": "default", "enabled": true})
}

fn not_served(state: &ApiState) -> Option<crate::http::fault::ApiError> {
    (!matches!(state.cfg.auth, AuthStrategy::NoAuth)).then(|| {
        crate::http::fault::ApiError(scoria_core::Error::NotFound(
            "The resource could not be found.".into(),
        ))
    })
}

async fn show(
    State(state): State<ApiState>,
    Path(p): Path<ProjectPath>,
) -> crate::http::fault::ApiResult<Json<Value>> {
    if let Some(e) = not_served(&state) {
        return Err(e);
    }
    Ok(Json(json!({ "project": project(&p.project) })))
}

async fn list(
    State(state): State<ApiState>,
    params: Params,
) -> crate::http::fault::ApiResult<Json<Value>> {
    if let Some(e) = not_served(&state) {
        return Err(e);
    }
    let found: Vec<Value> = params.get("name").map(project).into_iter().collect();
    Ok(Json(json!({ "projects": found })))
}
