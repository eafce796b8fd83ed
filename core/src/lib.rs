//! Scoria's domain model: resources, statuses, pool statistics, capacity math,
//! bus message bodies, the request context and the error type. No I/O here.

pub mod capacity;
pub mod config;
pub mod context;
pub mod error;
pub mod events;
pub mod extra_specs;
pub mod host;
pub mod model;
pub mod rpc;
pub mod stats;
pub mod status;
pub mod time;
pub mod transitions;

pub use capacity::Capacity;
pub use context::RequestContext;
pub use error::{Error, Result};
