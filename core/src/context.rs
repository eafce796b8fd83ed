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
    /// The caller's Keystone token, passed on to Glance for image work
    /// (none in `noauth` mode and for Scoria's own work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<AuthToken>,
}

/// A Keystone token; its `Debug` hides the value so that logs never show it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(pub String);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(***)")
    }
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
            auth_token: None,
        }
    }

    /// A fresh request id in OpenStack's `req-<uuid>` form.
    pub fn new_request_id() -> String {
        format!("req-{}", uuid::Uuid::new_v4())
    }
}
