//! Who is asking, carried from the api through the bus to the workers.

use serde::{Deserialize, Serialize};

/// The caller of a request and the id that ties its log lines together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestContext {
    /// `req-<uuid>`, echoed as `x-openstack-request-id`.
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
}

impl RequestContext {
    /// A context for work Scoria starts itself (recovery, periodic tasks).
    pub fn internal(request_id: String) -> Self {
        RequestContext {
            request_id,
            user_id: "scoria".into(),
            project_id: "scoria".into(),
            is_admin: true,
            roles: vec!["admin".into()],
        }
    }

    /// A fresh request id in OpenStack's `req-<uuid>` form.
    pub fn new_request_id() -> String {
        format!("req-{}", uuid::Uuid::new_v4())
    }
}
