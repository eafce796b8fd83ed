//! Microversions: parsing `OpenStack-API-Version: volume 3.N` and the version documents.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use scoria_core::Error;
use serde_json::json;

use crate::ApiState;

/// A negotiated microversion `3.N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    /// `3.minor`.
    pub const fn v3(minor: u32) -> Self {
        ApiVersion { major: 3, minor }
    }

    /// Whether this version is at least `3.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self >= ApiVersion::v3(minor)
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest microversion served.
pub const MIN_VERSION: ApiVersion = ApiVersion::v3(0);
/// The newest microversion whose behaviour Scoria implements for every resource it serves.
pub const MAX_VERSION: ApiVersion = ApiVersion::v3(54);

/// Header carrying the microversion.
pub const HEADER: &str = "openstack-api-version";

fn parse_number(text: &str) -> Option<ApiVersion> {
    let (major, minor) = text.split_once('.')?;
    let valid = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    if !valid(major) || !valid(minor) || major == "0" {
        return None;
    }
    Some(ApiVersion {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

/// The version a request asks for: 3.0 without the header, the maximum for `latest`.
pub fn negotiate(headers: &HeaderMap) -> Result<ApiVersion, Error> {
    let values: Vec<&str> = headers
        .get_all(HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Ok(MIN_VERSION);
    }
    let wanted = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|item| item.strip_prefix("volume").map(str::trim))
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "The OpenStack-API-Version header '{}' names no 'volume' version; send e.g. 'volume 3.0'.",
                values.join(", ")
            ))
        })?;
    if wanted.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let v = parse_number(wanted).ok_or_else(|| {
        Error::BadRequest(format!(
            "API Version String '{wanted}' is of invalid format. It must be of format 'major.minor', e.g. '3.0'."
        ))
    })?;
    if v < MIN_VERSION || v > MAX_VERSION {
        return Err(Error::NotAcceptable(format!(
            "Version {v} is not supported by the API. Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}."
        )));
    }
    Ok(v)
}

/// The base URL clients should use, from configuration or the request's Host.
pub fn base_url(state: &ApiState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.cfg.public_endpoint {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn versions_body(base: &str) -> serde_json::Value {
    json!({"versions": [{
        "id": "v3.0",
        "status": "CURRENT",
        "version": MAX_VERSION.to_string(),
        "min_version": MIN_VERSION.to_string(),
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": format!("{base}/v3/")}
        ],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}]
    }]})
}

/// `GET /`: 300 Multiple Choices with the versions document.
pub async fn root(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions_body(&base_url(&state, &headers))),
    )
        .into_response()
}

/// `GET /v3/`: the same document with 200.
pub async fn v3(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    Json(versions_body(&base_url(&state, &headers))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, v.parse().unwrap());
        h
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), MIN_VERSION);
        assert_eq!(negotiate(&with("volume 3.3")).unwrap(), ApiVersion::v3(3));
        assert_eq!(
            negotiate(&with("compute 2.1, volume 3.5")).unwrap(),
            ApiVersion::v3(5)
        );
        assert_eq!(negotiate(&with("volume latest")).unwrap(), MAX_VERSION);
        assert!(matches!(
            negotiate(&with("volume 3.999")),
            Err(Error::NotAcceptable(_))
        ));
        assert!(matches!(
            negotiate(&with("volume 2.0")),
            Err(Error::NotAcceptable(_))
        ));
        assert!(matches!(
            negotiate(&with("volume 3.x")),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            negotiate(&with("volume 3.01")),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            negotiate(&with("compute 2.1")),
            Err(Error::BadRequest(_))
        ));
    }
}
