//! The snapshots family.

pub mod crud;
pub mod views;

use axum::Router;

use crate::ApiState;

/// The family's routes.
pub fn routes() -> Router<ApiState> {
    Router::new().merge(crud::routes())
}
