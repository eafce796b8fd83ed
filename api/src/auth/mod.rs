//! Who the caller is: Keystone token validation, and the project lookup
//! served in noauth mode.

pub mod keystone;
pub mod projects;

use axum::Router;

use crate::ApiState;

/// The family's routes.
pub fn routes() -> Router<ApiState> {
    Router::new().merge(projects::routes())
}
