//! The Cinder v3 REST API on axum, one folder per API family:
//!
//! - `http`: what every resource shares: the request context and policy,
//!   extraction, Cinder's fault bodies, microversions, paging, list filters,
//!   links and body validation;
//! - `auth`: Keystone token validation, and the project lookup of noauth mode;
//! - `volumes`: create/list/show/update/delete, the volume actions (parsed
//!   into one `VolumeAction`), revert, metadata, encryption, images (create
//!   from an image, image metadata, upload to an image), the views;
//! - `attach`: the attach workflow with its rollback, and its two front-ends:
//!   the attachments API and the legacy volume actions;
//! - `snapshots`;
//! - `admin`: services and pools, capabilities, limits, extensions, volume
//!   types and user messages.
//!
//! The api validates, records the request in the database, and casts the
//! work to the scheduler or a volume manager; it never touches storage.

mod admin;
mod attach;
mod auth;
mod http;
mod snapshots;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::Router;
use scoria_bus::Bus;
use scoria_db::Db;
use scoria_glance::Glance;

pub use auth::keystone::{KeystoneAuth, KeystoneConfig, KeystoneOptions};
pub use http::context::{Ctx, ServiceRoles};
pub use http::version;

/// How callers are authenticated.
#[derive(Debug, Clone)]
pub enum AuthStrategy {
    /// `X-Auth-Token: user:project`; every caller is an administrator.
    NoAuth,
    /// Tokens validated by Keystone (`auth_strategy = keystone`).
    Keystone(Arc<KeystoneAuth>),
}

impl AuthStrategy {
    /// Keystone authentication configured by `[keystone_authtoken]`.
    pub fn keystone(cfg: KeystoneConfig) -> Result<Self, String> {
        Ok(AuthStrategy::Keystone(Arc::new(KeystoneAuth::new(cfg)?)))
    }
}

/// Default quota limits (Cinder's defaults unless configured).
#[derive(Debug, Clone)]
pub struct QuotaDefaults {
    pub volumes: i64,
    pub snapshots: i64,
    pub gigabytes: i64,
    pub backups: i64,
    pub backup_gigabytes: i64,
    pub groups: i64,
    pub per_volume_gigabytes: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        QuotaDefaults {
            volumes: 10,
            snapshots: 10,
            gigabytes: 1000,
            backups: 10,
            backup_gigabytes: 1000,
            groups: 10,
            per_volume_gigabytes: -1,
        }
    }
}

/// Settings of the api service.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth: AuthStrategy,
    /// Zone given to volumes created without one.
    pub default_availability_zone: String,
    /// Base URL for links, instead of the request's Host.
    pub public_endpoint: Option<String>,
    pub quotas: QuotaDefaults,
    /// A service silent for longer is shown as down.
    pub service_down_time: Duration,
    /// How long a `call` to another service may take (`rpc_response_timeout`).
    pub rpc_timeout: Duration,
    /// Glance, for volumes made from images and uploaded into them (a client
    /// that is not configured refuses image requests).
    pub glance: Arc<Glance>,
    /// Whether `os-volume_upload_image` may upload an attached volume when
    /// asked with `force` (`[DEFAULT] enable_force_upload`).
    pub enable_force_upload: bool,
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    pub bus: Bus,
    pub cfg: Arc<ApiConfig>,
}

/// Every resource route, relative to `/v3` or `/v3/{project_id}`.
fn resources() -> Router<ApiState> {
    Router::new()
        .merge(volumes::routes())
        .merge(attach::routes())
        .merge(snapshots::routes())
        .merge(admin::routes())
        .merge(auth::routes())
        .merge(http::list_filters::routes())
}

/// The whole application.
pub fn router(state: ApiState) -> Router {
    let api = Router::new()
        .nest("/v3/{project_id}", resources())
        .nest("/v3", resources())
        .layer(from_fn_with_state(state.clone(), http::context::middleware));
    let docs = Router::new()
        .route("/", get(version::root))
        .route("/v3/", get(version::v3))
        .route("/v3", get(version::v3))
        .fallback(|| async {
            http::fault::fault(
                axum::http::StatusCode::NOT_FOUND,
                "The resource could not be found.",
            )
        })
        .layer(from_fn(http::context::plain_headers));
    docs.merge(api)
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}
