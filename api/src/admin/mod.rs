//! Operator and discovery resources: services, pools and capabilities,
//! limits and quotas, extensions, volume types and user messages.

pub mod capabilities;
pub mod extensions;
pub mod limits;
pub mod messages;
pub mod services;
pub mod types;
