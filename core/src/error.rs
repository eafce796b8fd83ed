//! The one error type that crosses crate boundaries. The api maps each kind to
//! Cinder's fault JSON in one place; every message says what the caller should fix.

/// Errors carried between the layers of Scoria.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// The request is malformed or not allowed in the resource's current state (400).
    #[error("{0}")]
    BadRequest(String),
    /// The caller is not allowed to do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource, or not visible to the caller (404).
    #[error("{0}")]
    NotFound(String),
    /// The requested microversion is not served (406).
    #[error("{0}")]
    NotAcceptable(String),
    /// The request conflicts with another resource or a concurrent change (409).
    #[error("{0}")]
    Conflict(String),
    /// A quota or size limit would be exceeded (413).
    #[error("{0}")]
    OverLimit(String),
    /// A peer service did not answer in time (503 at the edge).
    #[error("{0}")]
    Unavailable(String),
    /// The backend cannot perform this operation.
    #[error("{0}")]
    Unsupported(String),
    /// A storage backend failed an operation; unlike [`Error::Internal`],
    /// the message is shown to the caller (500).
    #[error("{0}")]
    Backend(String),
    /// Something failed inside Scoria (500, with a generic message).
    #[error("{0}")]
    Internal(String),
}

/// Result alias using [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for a 404 naming the resource kind and id.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Error::NotFound(format!("{kind} {id} could not be found."))
    }
}
