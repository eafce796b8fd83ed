//! The per-request middleware: request id, authentication (noauth or
//! Keystone), the write policy, the project in the URL, microversion
//! negotiation, the headers every response carries, and Cinder's fault body
//! for every error, whatever produced it.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scoria_core::context::AuthToken;
use scoria_core::{Error, RequestContext};
use tracing::Instrument;

use crate::http::fault::{fault, ApiError};
use crate::http::version::{self, ApiVersion};
use crate::{ApiState, AuthStrategy};

/// What handlers know about the request: who asks, at which microversion,
/// and how links back to the API are built.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub rc: RequestContext,
    pub version: ApiVersion,
    /// Base for links: `http://host:port/v3` plus `/{project}` when the URL had it.
    pub link_base: String,
    /// Base for bookmark links (without `/v3`).
    pub bookmark_base: String,
}

impl Ctx {
    /// A caller in project `p1` (an administrator or not) at microversion 3.`minor`.
    #[cfg(test)]
    pub(crate) fn for_test(is_admin: bool, minor: u32) -> Ctx {
        Ctx {
            rc: RequestContext {
                request_id: "req-1".into(),
                user_id: "u".into(),
                project_id: "p1".into(),
                is_admin,
                roles: Vec::new(),
                auth_token: None,
            },
            version: ApiVersion::v3(minor),
            link_base: "http://h/v3/p1".into(),
            bookmark_base: "http://h/p1".into(),
        }
    }

    /// Fails with 403 unless the caller is an administrator.
    pub fn require_admin(&self, rule: &str) -> Result<(), ApiError> {
        if self.rc.is_admin {
            Ok(())
        } else {
            Err(ApiError(Error::Forbidden(format!(
                "Policy doesn't allow {rule} to be performed."
            ))))
        }
    }

    /// Fails with 403 unless the caller may do what policy `rule` guards: a
    /// change by a member or an administrator (the central write policy,
    /// named for the operation).
    pub fn authorize(&self, rule: &str) -> Result<(), ApiError> {
        if self.rc.is_admin || may_write(&Method::POST, &self.rc.roles) {
            Ok(())
        } else {
            Err(ApiError(Error::Forbidden(format!(
                "Policy doesn't allow {rule} to be performed."
            ))))
        }
    }

    /// Fails with 404 (Cinder's behaviour) unless the caller may see a resource of `project_id`.
    pub fn check_project(&self, project_id: &str, kind: &str, id: &str) -> Result<(), ApiError> {
        if self.rc.is_admin || self.rc.project_id == project_id {
            Ok(())
        } else {
            Err(ApiError(Error::not_found(kind, id)))
        }
    }

    /// Fails with 404 unless the negotiated version is at least `3.minor`.
    pub fn require_version(&self, minor: u32) -> Result<(), ApiError> {
        if self.version.at_least(minor) {
            Ok(())
        } else {
            Err(ApiError(Error::NotFound(
                "The resource could not be found.".into(),
            )))
        }
    }
}

/// Roles of the `X-Service-Token` that came with the request (Keystone mode;
/// empty otherwise). Handlers that treat services specially extract it.
#[derive(Debug, Clone, Default)]
pub struct ServiceRoles(pub Vec<String>);

impl ServiceRoles {
    /// A "service request": a service token carrying the `service` role.
    pub fn is_service(&self) -> bool {
        self.0.iter().any(|r| r == "service")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ServiceRoles {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ServiceRoles>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Top-level resource names, so `/v3/<name>` is not mistaken for a project id.
const RESOURCES: &[&str] = &[
    "volumes",
    "attachments",
    "snapshots",
    "types",
    "os-availability-zone",
    "os-services",
    "scheduler-stats",
    "limits",
    "os-quota-sets",
    "extensions",
    "messages",
    "projects",
    "capabilities",
    "resource_filters",
];

/// The project id in `/v3/{project_id}/…`, if the URL has one.
fn url_project(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v3/")?;
    let (first, _) = rest.split_once('/').unwrap_or((rest, ""));
    (!first.is_empty() && !RESOURCES.contains(&first)).then_some(first)
}

fn incoming_request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            v.strip_prefix("req-")
                .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
        })
        .map(str::to_string)
        .unwrap_or_else(RequestContext::new_request_id)
}

/// noauth as Cinder has it: `X-Auth-Token: user:project` (no colon: both the
/// same); every caller is an administrator.
fn noauth_context(headers: &HeaderMap, request_id: String) -> Option<RequestContext> {
    let token = headers.get("x-auth-token")?.to_str().ok()?.trim();
    let (user, project) = token.split_once(':').unwrap_or((token, token));
    Some(RequestContext {
        request_id,
        user_id: user.to_string(),
        project_id: project.to_string(),
        is_admin: true,
        roles: vec!["admin".into(), "member".into(), "reader".into()],
        auth_token: None,
    })
}

/// Wraps every request under `/v3/…`.
pub async fn middleware(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let request_id = incoming_request_id(req.headers());
    let span = tracing::info_span!("req", request_id = %request_id);
    async move {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let started = std::time::Instant::now();
        let negotiated = version::negotiate(req.headers());
        let shown = *negotiated.as_ref().unwrap_or(&version::MIN_VERSION);
        let mut resp = match prepare(&state, &mut req, request_id.clone(), negotiated).await {
            Ok(()) => next.run(req).await,
            Err(resp) => *resp,
        };
        let resp_status = resp.status();
        normalise_fault(&mut resp).await;
        finish_headers(resp.headers_mut(), &request_id, Some(shown));
        tracing::info!(%method, %path, status = resp_status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
        resp
    }
    .instrument(span)
    .await
}

async fn prepare(
    state: &ApiState,
    req: &mut Request,
    request_id: String,
    negotiated: Result<ApiVersion, Error>,
) -> Result<(), Box<Response>> {
    let version = negotiated.map_err(|e| Box::new(ApiError(e).into_response()))?;
    let path = req.uri().path().to_string();
    let rc = match &state.cfg.auth {
        AuthStrategy::NoAuth => match noauth_context(req.headers(), request_id.clone()) {
            Some(rc) => rc,
            None => return Err(Box::new(noauth_hint(req.headers(), &path))),
        },
        AuthStrategy::Keystone(ks) => {
            let caller = ks
                .authenticate(req.headers())
                .await
                .map_err(|f| Box::new(ks.reject(&f)))?;
            let user = &caller.user;
            let rc = RequestContext {
                request_id: request_id.clone(),
                user_id: user.user_id.clone(),
                project_id: user.project_id.clone(),
                is_admin: user.roles.iter().any(|r| r == "admin"),
                roles: user.roles.clone(),
                auth_token: req
                    .headers()
                    .get("x-auth-token")
                    .and_then(|v| v.to_str().ok())
                    .map(|t| AuthToken(t.to_string())),
            };
            if !may_write(req.method(), &rc.roles) {
                return Err(Box::new(fault(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "Policy doesn't allow {} to be performed.",
                        rule_name(req.method(), &path)
                    ),
                )));
            }
            req.extensions_mut()
                .insert(ServiceRoles(caller.service_roles));
            rc
        }
    };
    let base = version::base_url(state, req.headers());
    let project = url_project(&path);
    if let Some(p) = project {
        let valid = p.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if !valid {
            return Err(Box::new(fault(
                StatusCode::NOT_FOUND,
                "The resource could not be found.",
            )));
        }
        if p != rc.project_id {
            return Err(Box::new(fault(
                StatusCode::BAD_REQUEST,
                &format!("Malformed request url: the project {p} in the URL is not the project {} of the token.", rc.project_id),
            )));
        }
    }
    let scope = project.map(|p| format!("/{p}")).unwrap_or_default();
    req.extensions_mut().insert(Ctx {
        rc,
        version,
        link_base: format!("{base}/v3{scope}"),
        bookmark_base: format!("{base}{scope}"),
    });
    Ok(())
}

/// The central policy: reading needs any valid token; changing anything
/// needs the `member` or `admin` role (a `reader` only reads).
fn may_write(method: &Method, roles: &[String]) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || roles.iter().any(|r| r == "admin" || r == "member")
}

/// A Cinder-like rule name for a refused request, e.g. `volume:create`.
fn rule_name(method: &Method, path: &str) -> String {
    let rest = path.strip_prefix("/v3/").unwrap_or(path);
    let rest = match url_project(path) {
        Some(p) => rest.strip_prefix(p).unwrap_or(rest).trim_start_matches('/'),
        None => rest,
    };
    let collection = rest.split('/').next().unwrap_or_default();
    let resource = collection.trim_start_matches("os-");
    let resource = resource.strip_suffix('s').unwrap_or(resource);
    let action = match *method {
        Method::POST if rest.ends_with("/action") => "action",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "access",
    };
    format!("{resource}:{action}")
}

/// Without a token, noauth answers 204 and tells the client which token to send.
fn noauth_hint(headers: &HeaderMap, path: &str) -> Response {
    let header_or = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("admin")
            .to_string()
    };
    let token = format!(
        "{}:{}",
        header_or("x-auth-user"),
        header_or("x-auth-project-id")
    );
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-auth-token", v);
    }
    if let Ok(v) = HeaderValue::from_str(path) {
        resp.headers_mut().insert("x-server-management-url", v);
    }
    resp
}

/// Headers on every response: request ids, and the microversion with `Vary`.
pub fn finish_headers(headers: &mut HeaderMap, request_id: &str, version: Option<ApiVersion>) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-openstack-request-id", v.clone());
        headers.insert("x-compute-request-id", v);
    }
    if let Some(version) = version {
        if let Ok(v) = HeaderValue::from_str(&format!("volume {version}")) {
            headers.insert("openstack-api-version", v);
        }
        headers.insert(
            header::VARY,
            HeaderValue::from_static("OpenStack-API-Version"),
        );
    }
}

/// Turns an error response that is not yet in Cinder's format (an axum
/// rejection, a panic, a missing route) into one, keeping its text.
async fn normalise_fault(resp: &mut Response) {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return;
    }
    let body = std::mem::replace(resp.body_mut(), Body::empty());
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let msg = match status {
        StatusCode::NOT_FOUND => "The resource could not be found.".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "The method is not allowed for this resource.".to_string()
        }
        s if s.is_server_error() => {
            "The server has either erred or is incapable of performing the requested operation."
                .to_string()
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("Bad request")
            .to_string(),
        _ => text,
    };
    *resp = fault(status, &msg);
}

/// Headers for the version documents, which sit outside `/v3` authentication.
pub async fn plain_headers(req: Request, next: Next) -> Response {
    let request_id = incoming_request_id(req.headers());
    let mut resp = next.run(req).await;
    normalise_fault(&mut resp).await;
    finish_headers(resp.headers_mut(), &request_id, None);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_policy() {
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(may_write(&Method::GET, &roles(&["reader"])));
        assert!(!may_write(&Method::POST, &roles(&["reader"])));
        assert!(!may_write(&Method::DELETE, &[]));
        assert!(may_write(&Method::PUT, &roles(&["member", "reader"])));
        assert!(may_write(&Method::POST, &roles(&["admin"])));
        assert_eq!(rule_name(&Method::POST, "/v3/abc/volumes"), "volume:create");
        assert_eq!(
            rule_name(&Method::POST, "/v3/volumes/x/action"),
            "volume:action"
        );
        assert_eq!(
            rule_name(&Method::DELETE, "/v3/abc/snapshots/x"),
            "snapshot:delete"
        );
        assert_eq!(
            rule_name(&Method::PUT, "/v3/os-quota-sets/p"),
            "quota-set:update"
        );
    }

    #[test]
    fn project_in_url() {
        assert_eq!(url_project("/v3/abc123/volumes"), Some("abc123"));
        assert_eq!(url_project("/v3/volumes/detail"), None);
        assert_eq!(url_project("/v3/volumes"), None);
        assert_eq!(url_project("/v3/"), None);
    }
}
