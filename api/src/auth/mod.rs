//! Who the caller is: Keystone token validation, and the project lookup
//! served in noauth mode.

pub mod keystone;
pub mod projects;
