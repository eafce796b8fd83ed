//! The volumes family: create/list/show/update/delete, the volume actions,
//! revert to a snapshot, metadata, encryption metadata, images (create from
//! an image, image metadata, upload to an image) and the JSON views.

pub mod actions;
pub mod crud;
pub mod encryption;
pub mod images;
pub mod metadata;
pub mod revert;
pub mod views;

use axum::Router;

use crate::ApiState;

/// The family's routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(crud::routes())
        .merge(actions::routes())
        .merge(encryption::routes())
        .merge(metadata::routes())
}
