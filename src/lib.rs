//! The `scoria` binary's library: configuration and the wiring of api,
//! scheduler and volume services, shared by `scoria serve`, the deployment
//! commands and the integration tests.

pub mod config;
pub mod deploy;
pub mod serve;
pub mod services;
