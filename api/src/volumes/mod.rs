//! The volumes family: create/list/show/update/delete, the volume actions,
//! revert to a snapshot, metadata, encryption metadata and the JSON views.

pub mod actions;
pub mod crud;
pub mod encryption;
pub mod metadata;
pub mod revert;
pub mod views;
