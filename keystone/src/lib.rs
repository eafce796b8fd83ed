//! Keystone v3 password sign-in, shared by the api (its service token) and
//! the volume manager (its token for Nova): `POST /v3/auth/tokens` with a
//! project-scoped password body, the token kept until shortly before it
//! expires, and the service catalog that came with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use scoria_core::config::{OptionDoc, Options};
use serde::Deserialize;
use serde_json::json;

/// A token is renewed this long before it expires (at half-life when it lives shorter).
const RENEW_MARGIN: Duration = Duration::from_secs(120);
/// The wait before the first retry of a request Keystone did not answer; it
/// doubles with every further retry.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// keystonemiddleware's default for `http_request_max_retries`.
pub const DEFAULT_RETRIES: u32 = 3;

/// Sends `request`, and again up to `retries` times (after 0.5 s, 1 s, 2 s, …)
/// while Keystone cannot be reached or does not answer in time, as
/// keystonemiddleware does with `http_request_max_retries`. Any HTTP answer,
/// whatever its status, is returned as it is.
pub async fn send_with_retries(
    request: reqwest::RequestBuilder,
    retries: u32,
) -> reqwest::Result<reqwest::Response> {
    let mut delay = FIRST_RETRY_DELAY;
    for _ in 0..retries {
        // A request with a streamed body cannot be repeated; send it once.
        let Some(attempt) = request.try_clone() else {
            break;
        };
        match attempt.send().await {
            Err(e) if e.is_connect() || e.is_timeout() => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Keystone did not answer; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            done => return done,
        }
    }
    request.send().await
}

/// Keystone v3 password credentials (keystoneauth's option names).
#[derive(Clone)]
pub struct Credentials {
    /// Keystone's address, with or without the `/v3` suffix.
    pub auth_url: String,
    pub username: String,
    pub password: String,
    /// The project the token is scoped to.
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("project_name", &self.project_name)
            .field("user_domain_name", &self.user_domain_name)
            .field("project_domain_name", &self.project_domain_name)
            .finish_non_exhaustive()
    }
}

/// The Keystone password credentials of an INI section (`[nova]`,
/// `[keystone_authtoken]`) as written; [`CredentialOptions::credentials`]
/// checks them.
#[derive(Clone, Deserialize)]
pub struct CredentialOptions {
    pub auth_url: Option<String>,
    pub auth_type: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
}

impl Options for CredentialOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::same_as_cinder(
            "auth_url",
            "",
            "Keystone's address; Keystone is used once it is set.",
        ),
        OptionDoc::same_as_cinder("auth_type", "password", "How to sign in; only `password`."),
        OptionDoc::same_as_cinder(
            "username",
            "",
            "The service user (required with `auth_url`).",
        ),
        OptionDoc::same_as_cinder(
            "password",
            "",
            "The service user's password (required with `auth_url`).",
        ),
        OptionDoc::same_as_cinder(
            "project_name",
            "service",
            "The project the token is scoped to.",
        ),
        OptionDoc::same_as_cinder("user_domain_name", "Default", "The user's domain."),
        OptionDoc::same_as_cinder("project_domain_name", "Default", "The project's domain."),
    ];
}

impl CredentialOptions {
    /// The credentials of `[section]`; `None` when `auth_url` is not set.
    /// `username` and `password` are required, `auth_type` must be `password`.
    pub fn credentials(&self, section: &str) -> Result<Option<Credentials>, String> {
        let Some(auth_url) = self.auth_url.clone() else {
            return Ok(None);
        };
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            return Err(format!(
                "[{section}] auth_url = {auth_url} is not an http(s) URL"
            ));
        }
        if self.auth_type != "password" {
            return Err(format!(
                "[{section}] auth_type = {} is not supported (use password)",
                self.auth_type
            ));
        }
        let required = |value: &Option<String>, name: &str| {
            value
                .clone()
                .ok_or_else(|| format!("[{section}] {name} is not set"))
        };
        Ok(Some(Credentials {
            username: required(&self.username, "username")?,
            password: required(&self.password, "password")?,
            project_name: self.project_name.clone(),
            user_domain_name: self.user_domain_name.clone(),
            project_domain_name: self.project_domain_name.clone(),
            auth_url,
        }))
    }
}

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// No answer from `url`: too slow (`timeout`) or not reachable.
    Unreachable {
        url: String,
        timeout: bool,
        detail: String,
    },
    /// Keystone refused the credentials with this HTTP status.
    Refused(u16),
    /// Keystone's answer carried no token or was not a token document.
    Malformed(String),
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::Unreachable {
                url, timeout: true, ..
            } => write!(f, "{url} did not answer in time"),
            SignInError::Unreachable { url, detail, .. } => {
                write!(f, "{url} is unreachable: {detail}")
            }
            SignInError::Refused(status) => {
                write!(f, "Keystone refused the credentials: HTTP {status}")
            }
            SignInError::Malformed(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for SignInError {}

/// Keystone's `expires_at` (RFC 3339) as a time, if it is one.
pub fn expiry(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The services a token may be used with, from Keystone's token document.
#[derive(Default, Deserialize)]
#[serde(transparent)]
pub struct Catalog(Vec<CatalogEntry>);

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

impl Catalog {
    /// The URL of the first `service_type` endpoint on `interface` (`public`,
    /// `internal` or `admin`), in `region` when one is given.
    pub fn endpoint(
        &self,
        service_type: &str,
        interface: &str,
        region: Option<&str>,
    ) -> Option<&str> {
        self.0
            .iter()
            .filter(|s| s.kind == service_type)
            .flat_map(|s| &s.endpoints)
            .find(|e| {
                e.interface == interface
                    && region.is_none_or(|r| {
                        e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r)
                    })
            })
            .map(|e| e.url.as_str())
    }
}

/// A token from a sign-in, with its catalog.
pub struct Token {
    value: String,
    catalog: Catalog,
    renew_at: Instant,
}

impl Token {
    /// What goes into `X-Auth-Token`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The services the token may be used with.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// Signs in with `Credentials` and keeps the token until shortly before it
/// expires; shared by every request.
pub struct PasswordSession {
    credentials: Credentials,
    /// Keystone's `/v3` root, without a trailing slash.
    v3: String,
    http: reqwest::Client,
    retries: u32,
    held: tokio::sync::Mutex<Option<Arc<Token>>>,
}

impl PasswordSession {
    /// Signs in over `http` (its timeouts and TLS settings apply), retrying
    /// unanswered sign-ins [`DEFAULT_RETRIES`] times (see [`with_retries`](Self::with_retries));
    /// no request is made until the first [`token`](Self::token).
    pub fn new(credentials: Credentials, http: reqwest::Client) -> Self {
        let root = credentials.auth_url.trim_end_matches('/');
        let v3 = format!("{}/v3", root.strip_suffix("/v3").unwrap_or(root));
        PasswordSession {
            credentials,
            v3,
            http,
            retries: DEFAULT_RETRIES,
            held: tokio::sync::Mutex::new(None),
        }
    }

    /// Retries an unanswered sign-in `retries` times (see [`send_with_retries`]).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Whose token this is.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Keystone's `/v3` root, e.g. `http://keystone:5000/v3`.
    pub fn v3_url(&self) -> &str {
        &self.v3
    }

    /// The current token, signing in when there is none, it is about to
    /// expire, or `renew` asks for a fresh one (after a 401).
    pub async fn token(&self, renew: bool) -> Result<Arc<Token>, SignInError> {
        let mut held = self.held.lock().await;
        if let Some(t) = held
            .as_ref()
            .filter(|t| !renew && Instant::now() < t.renew_at)
        {
            return Ok(t.clone());
        }
        *held = None;
        let fresh = Arc::new(self.sign_in().await?);
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// `POST /v3/auth/tokens` with the password, scoped to the project.
    async fn sign_in(&self) -> Result<Token, SignInError> {
        let c = &self.credentials;
        let url = format!("{}/auth/tokens", self.v3);
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username,
                "domain": {"name": c.user_domain_name},
                "password": c.password,
            }}},
            "scope": {"project": {
                "name": c.project_name,
                "domain": {"name": c.project_domain_name},
            }},
        }});
        let resp = send_with_retries(self.http.post(&url).json(&body), self.retries)
            .await
            .map_err(|e| SignInError::Unreachable {
                timeout: e.is_timeout(),
                detail: e.to_string(),
                url,
            })?;
        if !resp.status().is_success() {
            return Err(SignInError::Refused(resp.status().as_u16()));
        }
        let value = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| SignInError::Malformed("Keystone issued no X-Subject-Token".into()))?;
        let doc: TokenDocument = resp.json().await.map_err(|e| {
            SignInError::Malformed(format!("Keystone's token answer is not understood: {e}"))
        })?;
        let lifetime = expiry(&doc.token.expires_at)
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or_default();
        Ok(Token {
            value,
            catalog: doc.token.catalog,
            renew_at: Instant::now() + renew_after(lifetime),
        })
    }
}

/// How long a token that lives `lifetime` is used before it is renewed.
fn renew_after(lifetime: Duration) -> Duration {
    lifetime - RENEW_MARGIN.min(lifetime / 2)
}

/// Keystone's token document, the answer to a sign-in (`POST
/// /v3/auth/tokens`) and to a validation (`GET /v3/auth/tokens`): the one
/// parser of it, for the parts Scoria reads.
#[derive(Deserialize)]
pub struct TokenDocument {
    pub token: TokenData,
}

/// What Keystone says about one token.
#[derive(Deserialize)]
pub struct TokenData {
    /// When the token stops working (RFC 3339; see [`expiry`]).
    pub expires_at: String,
    /// Whose token it is.
    #[serde(default)]
    pub user: Option<Reference>,
    /// The project it is scoped to; `None` for an unscoped token.
    #[serde(default)]
    pub project: Option<Reference>,
    /// The roles it carries in that project.
    #[serde(default)]
    pub roles: Vec<Reference>,
    /// The services it may be used with.
    #[serde(default)]
    pub catalog: Catalog,
}

/// A user, project or role as a token document names it.
#[derive(Deserialize)]
pub struct Reference {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use serde_json::Value;

    use super::*;

    /// The credentials of section `section` with these options.
    fn credentials(section: &str, pairs: &[(&str, &str)]) -> Result<Option<Credentials>, String> {
        let options = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        scoria_core::config::read_options::<CredentialOptions>(section, &options)
            .map_err(|e| e.to_string())?
            .credentials(section)
    }

    #[test]
    fn options_and_defaults() {
        assert!(credentials("s", &[("username", "u")]).unwrap().is_none());
        let c = credentials(
            "s",
            &[
                ("auth_url", " http://ks:5000/v3 "),
                ("auth_type", "password"),
                ("username", "scoria"),
                ("password", "secret"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.auth_url, "http://ks:5000/v3");
        assert_eq!(c.project_name, "service");
        assert_eq!(c.user_domain_name, "Default");
        assert_eq!(c.project_domain_name, "Default");
        assert!(!format!("{c:?}").contains("secret"), "password not logged");
    }

    #[test]
    fn errors_name_the_section_and_option() {
        let err = |pairs: &[(&str, &str)]| credentials("nova", pairs).unwrap_err();
        assert_eq!(
            err(&[("auth_url", "ks:5000")]),
            "[nova] auth_url = ks:5000 is not an http(s) URL"
        );
        assert_eq!(
            err(&[("auth_url", "http://ks"), ("auth_type", "token")]),
            "[nova] auth_type = token is not supported (use password)"
        );
        assert_eq!(
            err(&[("auth_url", "http://ks"), ("username", "u")]),
            "[nova] password is not set"
        );
    }

    #[test]
    fn v3_root() {
        let creds = |url: &str| Credentials {
            auth_url: url.into(),
            username: "u".into(),
            password: "p".into(),
            project_name: "service".into(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
        };
        for url in ["http://ks:5000", "http://ks:5000/", "http://ks:5000/v3/"] {
            let session = PasswordSession::new(creds(url), reqwest::Client::new());
            assert_eq!(session.v3_url(), "http://ks:5000/v3", "{url}");
        }
    }

    #[test]
    fn renewed_ahead_of_expiry() {
        let hour = Duration::from_secs(3600);
        assert_eq!(renew_after(hour), hour - RENEW_MARGIN);
        assert_eq!(
            renew_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn catalog_lookup() {
        let catalog: Catalog = serde_json::from_value(json!([
            {"type": "volumev3", "endpoints": [
                {"interface": "public", "url": "http://cinder/v3", "region_id": "r1"}]},
            {"type": "compute", "endpoints": [
                {"interface": "internal", "url": "http://nova-int/v2.1", "region_id": "r1"},
                {"interface": "public", "url": "http://nova-r1/v2.1", "region_id": "r1"},
                {"interface": "public", "url": "http://nova-r2/v2.1", "region": "r2"}]},
        ]))
        .unwrap();
        let find = |interface, region| catalog.endpoint("compute", interface, region);
        assert_eq!(find("public", None), Some("http://nova-r1/v2.1"));
        assert_eq!(find("public", Some("r2")), Some("http://nova-r2/v2.1"));
        assert_eq!(find("internal", None), Some("http://nova-int/v2.1"));
        assert_eq!(find("admin", None), None);
        assert_eq!(find("public", Some("r3")), None);
    }

    /// A stand-in for Keystone's sign-in: token `tok-N` for the N-th, valid
    /// for an hour; user `wrong` is refused, user `tokenless` gets no token.
    #[derive(Default)]
    struct FakeKeystone {
        sign_ins: AtomicUsize,
        last_body: Mutex<Value>,
    }

    async fn issue(State(ks): State<Arc<FakeKeystone>>, Json(body): Json<Value>) -> Response {
        let n = ks.sign_ins.fetch_add(1, Ordering::SeqCst) + 1;
        *ks.last_body.lock().unwrap() = body.clone();
        let user = &body["auth"]["identity"]["password"]["user"]["name"];
        if user == "wrong" {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let doc = json!({"token": {"expires_at": expires, "catalog": [
            {"type": "compute", "endpoints": [{"interface": "public", "url": "http://nova"}]},
        ]}});
        let mut resp = (StatusCode::CREATED, Json(doc)).into_response();
        if user != "tokenless" {
            resp.headers_mut()
                .insert("x-subject-token", format!("tok-{n}").parse().unwrap());
        }
        resp
    }

    async fn fake_keystone() -> (String, Arc<FakeKeystone>) {
        let ks = Arc::new(FakeKeystone::default());
        let app = axum::Router::new()
            .route("/v3/auth/tokens", axum::routing::post(issue))
            .with_state(ks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, ks)
    }

    fn session(auth_url: &str, username: &str) -> PasswordSession {
        let creds = credentials(
            "s",
            &[
                ("auth_url", auth_url),
                ("username", username),
                ("password", "pw"),
                ("project_name", "demo"),
                ("user_domain_name", "Users"),
            ],
        );
        PasswordSession::new(creds.unwrap().unwrap(), reqwest::Client::new())
    }

    #[tokio::test]
    async fn signs_in_keeps_the_token_and_renews_on_demand() {
        let (url, ks) = fake_keystone().await;
        let s = session(&format!("{url}/v3/"), "cinder");
        let token = s.token(false).await.unwrap();
        assert_eq!(token.value(), "tok-1");
        assert_eq!(
            token.catalog().endpoint("compute", "public", None),
            Some("http://nova")
        );
        assert_eq!(
            *ks.last_body.lock().unwrap(),
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "cinder", "domain": {"name": "Users"}, "password": "pw",
                }}},
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}},
            }})
        );
        assert_eq!(s.token(false).await.unwrap().value(), "tok-1", "kept");
        assert_eq!(s.token(true).await.unwrap().value(), "tok-2", "renewed");
        assert_eq!(s.token(false).await.unwrap().value(), "tok-2");
        assert_eq!(ks.sign_ins.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn sign_in_failures() {
        let (url, _ks) = fake_keystone().await;
        let failure = |user: &'static str| {
            let s = session(&url, user);
            async move { s.token(false).await.err().unwrap() }
        };
        assert_eq!(failure("wrong").await, SignInError::Refused(401));
        assert_eq!(
            failure("tokenless").await.to_string(),
            "Keystone issued no X-Subject-Token"
        );

        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let gone = session(&format!("http://127.0.0.1:{port}"), "cinder");
        match gone.token(false).await.err().unwrap() {
            SignInError::Unreachable { url, timeout, .. } => {
                assert_eq!(url, format!("http://127.0.0.1:{port}/v3/auth/tokens"));
                assert!(!timeout);
            }
            other => panic!("{other:?}"),
        }
    }
}
