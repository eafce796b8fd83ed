//! Operator and discovery resources: services, pools and capabilities,
//! limits and quotas, extensions, volume types and user messages.

pub mod capabilities;
pub mod extensions;
pub mod limits;
pub mod messages;
pub mod services;
pub mod volume_types;

use axum::Router;

use crate::ApiState;

/// The family's routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(volume_types::routes())
        .merge(services::routes())
        .merge(limits::routes())
        .merge(messages::routes())
        .merge(extensions::routes())
        .merge(capabilities::routes())
}
