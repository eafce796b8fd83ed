//! Attaching volumes to servers: the shared workflow, the attachments API
//! (3.27+) and the legacy volume actions.

pub mod attachments;
pub mod legacy;
pub mod views;
pub mod workflow;

use axum::Router;

use crate::ApiState;

/// The family's routes.
pub fn routes() -> Router<ApiState> {
    Router::new().merge(attachments::routes())
}
