//! The snapshots family.

pub mod crud;
