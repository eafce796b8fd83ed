//! Extractors whose failures come back in Cinder's fault format.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use scoria_core::Error;
use serde_json::{Map, Value};

use crate::http::context::Ctx;
use crate::http::fault::{bad_request, ApiError};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Ctx>()
            .cloned()
            .ok_or_else(|| ApiError(Error::Internal("request context missing".into())))
    }
}

/// A JSON request body that must be an object.
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let ok = ct.starts_with("application/json")
                || ct.starts_with("application/vnd.openstack.volume+json");
            if !ok {
                return Err(ApiError(Error::BadRequest(format!(
                    "Unsupported Content-Type '{ct}'; send application/json."
                ))));
            }
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError(Error::OverLimit(format!(
                    "Request body is larger than {MAX_BODY_BYTES} bytes."
                )))
            })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad_request(format!("Malformed request body: {e}")))?;
        match value {
            Value::Object(map) => Ok(JsonBody(map)),
            _ => Err(bad_request(
                "Malformed request body: the body must be a JSON object.",
            )),
        }
    }
}

/// Query string parameters in order, repeated keys kept.
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(Params)
            .map_err(|e| bad_request(format!("Malformed query string: {e}")))
    }
}

impl Params {
    /// Parameters from `(key, value)` pairs, in order.
    #[cfg(test)]
    pub(crate) fn for_test(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
