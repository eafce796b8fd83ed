//! Attaching volumes to servers: the shared workflow, the attachments API
//! (3.27+) and the legacy volume actions.

pub mod attachments;
pub mod legacy;
pub mod views;
pub mod workflow;
