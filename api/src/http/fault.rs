//! Cinder's fault format, produced in one place for every error.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scoria_core::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A 400 with `msg`.
pub fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(Error::BadRequest(msg.into()))
}

/// The fault name Cinder uses for a status code.
pub fn fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// A complete fault response.
pub fn fault(status: StatusCode, message: &str) -> Response {
    let mut inner = serde_json::json!({ "code": status.as_u16(), "message": message });
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        inner["retryAfter"] = "0".into();
    }
    let body = serde_json::json!({ fault_name(status): inner });
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("0"));
    }
    resp
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::OverLimit(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        Error::Backend(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let msg = match &self.0 {
            Error::Internal(_) => "The server has either erred or is incapable of performing \
                                   the requested operation."
                .to_string(),
            other => other.to_string(),
        };
        fault(status, &msg)
    }
}
