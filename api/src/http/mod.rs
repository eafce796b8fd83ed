//! What every resource shares: the request context, body and query
//! extraction, Cinder's fault bodies, microversions, paging, listing
//! filters and body validation.

pub mod context;
pub mod extract;
pub mod fault;
pub mod links;
pub mod list_filters;
pub mod paging;
pub mod validate;
pub mod version;
