//! Keystone v3 token validation, in the manner of keystonemiddleware's
//! `auth_token`: Scoria signs in with its own service credentials, asks
//! Keystone about each caller's `X-Auth-Token` (and `X-Service-Token`), and
//! remembers the answers until the token expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use scoria_core::config::{OptionDoc, Options};
use scoria_keystone::{
    expiry, send_with_retries, CredentialOptions, Credentials, PasswordSession, SignInError, Token,
    TokenData, TokenDocument,
};
use serde::Deserialize;

use crate::http::fault::fault;

/// How long one request to Keystone may take, unless `http_connect_timeout` says otherwise.
const KEYSTONE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many validated tokens are remembered.
const CACHE_CAPACITY: usize = 10_000;

/// The `[keystone_authtoken]` options Scoria reads (keystonemiddleware's names).
#[derive(Debug, Clone)]
pub struct KeystoneConfig {
    /// Scoria's service user, for its own (service) token.
    pub credentials: Credentials,
    /// Sent to unauthenticated callers in `WWW-Authenticate`; `auth_url` when unset.
    pub www_authenticate_uri: Option<String>,
    /// Upper bound on how long a validation is trusted (`token_cache_time`,
    /// 300 s by default): a revoked token stops working after at most this.
    pub token_cache_time: Duration,
    /// How long one request to Keystone may take (`http_connect_timeout`, 10 s by default).
    pub http_timeout: Duration,
    /// How often a request Keystone did not answer is sent again before the
    /// caller gets a 503 (`http_request_max_retries`, 3 by default).
    pub http_retries: u32,
}

/// The `[keystone_authtoken]` options besides the credentials, as written.
#[derive(Debug, Clone, Deserialize)]
pub struct KeystoneOptions {
    pub www_authenticate_uri: Option<String>,
    pub auth_uri: Option<String>,
    pub token_cache_time: u64,
    pub http_connect_timeout: u64,
    pub http_request_max_retries: u64,
}

impl Options for KeystoneOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        OptionDoc::same_as_cinder("www_authenticate_uri", "", "Keystone address sent to unauthenticated callers; `auth_uri`, else `auth_url`, when unset."),
        OptionDoc::same_as_cinder("auth_uri", "", "Older name of `www_authenticate_uri`."),
        OptionDoc::same_as_cinder("token_cache_time", "300", "Seconds a validated token is trusted before Keystone is asked again."),
        OptionDoc::same_as_cinder("http_connect_timeout", "10", "Seconds one request to Keystone may take (0: the default)."),
        OptionDoc::same_as_cinder("http_request_max_retries", "3", "Times a request Keystone did not answer is sent again (at most 10)."),
    ];
}

impl KeystoneConfig {
    /// The `[keystone_authtoken]` section: its `credentials` (`auth_url` is
    /// required) and the options above.
    pub fn from_section(
        options: &KeystoneOptions,
        credentials: &CredentialOptions,
    ) -> Result<Self, String> {
        let credentials = credentials
            .credentials("keystone_authtoken")?
            .ok_or("[keystone_authtoken] auth_url is not set")?;
        Ok(KeystoneConfig {
            credentials,
            www_authenticate_uri: options
                .www_authenticate_uri
                .clone()
                .or_else(|| options.auth_uri.clone()),
            token_cache_time: Duration::from_secs(options.token_cache_time),
            http_timeout: Some(options.http_connect_timeout)
                .filter(|s| *s > 0)
                .map_or(KEYSTONE_TIMEOUT, Duration::from_secs),
            http_retries: options.http_request_max_retries.min(10) as u32,
        })
    }
}

/// Who a validated token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub user_id: String,
    pub project_id: String,
    pub roles: Vec<String>,
}

/// The authenticated caller of one request.
#[derive(Debug)]
pub(crate) struct Caller {
    pub user: Arc<Identity>,
    /// Roles of a valid `X-Service-Token`, if one was sent.
    pub service_roles: Vec<String>,
}

/// Why a request could not be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// The caller's fault: 401 with `WWW-Authenticate`.
    Unauthorized(String),
    /// Keystone is unreachable or refuses Scoria itself: 503.
    Unavailable(String),
}

/// Validates tokens against Keystone; shared by every request.
pub struct KeystoneAuth {
    cfg: KeystoneConfig,
    challenge: HeaderValue,
    http: reqwest::Client,
    /// Scoria's own sign-in, for its service token.
    service: PasswordSession,
    cache: Mutex<TokenCache>,
}

impl std::fmt::Debug for KeystoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneAuth")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl KeystoneAuth {
    /// Checks the configuration; no request is made until the first caller arrives.
    pub fn new(cfg: KeystoneConfig) -> Result<Self, String> {
        let uri = cfg
            .www_authenticate_uri
            .as_deref()
            .unwrap_or(&cfg.credentials.auth_url);
        let challenge =
            HeaderValue::from_str(&format!("Keystone uri=\"{uri}\"")).map_err(|_| {
                format!("[keystone_authtoken] www_authenticate_uri = {uri} is not valid")
            })?;
        let http = reqwest::Client::builder()
            .timeout(cfg.http_timeout)
            .connect_timeout(cfg.http_timeout / 2)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Keystone: {e}"))?;
        Ok(KeystoneAuth {
            service: PasswordSession::new(cfg.credentials.clone(), http.clone())
                .with_retries(cfg.http_retries),
            cfg,
            challenge,
            http,
            cache: Mutex::new(TokenCache::default()),
        })
    }

    /// Authenticates the request from its `X-Auth-Token` and optional `X-Service-Token`.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
        let token = token_header(headers, "x-auth-token")
            .ok_or_else(|| AuthFailure::Unauthorized("Authentication required".into()))?;
        let user = self.identify(token).await?;
        let service_roles = match token_header(headers, "x-service-token") {
            Some(service) => self.identify(service).await?.roles.clone(),
            None => Vec::new(),
        };
        Ok(Caller {
            user,
            service_roles,
        })
    }

    /// The response for a failed authentication, in Cinder's fault format.
    pub(crate) fn reject(&self, failure: &AuthFailure) -> Response {
        match failure {
            AuthFailure::Unauthorized(msg) => {
                let mut resp = fault(StatusCode::UNAUTHORIZED, msg);
                resp.headers_mut()
                    .insert("www-authenticate", self.challenge.clone());
                resp
            }
            AuthFailure::Unavailable(msg) => {
                tracing::error!(error = %msg, "token validation failed");
                fault(StatusCode::SERVICE_UNAVAILABLE, msg)
            }
        }
    }

    /// The identity behind `token`, from the cache or from Keystone.
    async fn identify(&self, token: &str) -> Result<Arc<Identity>, AuthFailure> {
        if let Some(found) = self.cache().get(token, Instant::now()) {
            return Ok(found);
        }
        let mut answer = self.validate(token, false).await;
        if matches!(answer, Err(Validation::ServiceTokenRejected)) {
            // Our own token was revoked or expired early: sign in again once.
            answer = self.validate(token, true).await;
        }
        let (identity, expires_at) =
            match answer {
                Ok(found) => found,
                Err(Validation::Failed(f)) => return Err(f),
                Err(Validation::ServiceTokenRejected) => return Err(AuthFailure::Unavailable(
                    "Keystone does not accept Scoria's service token; check [keystone_authtoken]."
                        .into(),
                )),
            };
        let remaining = (expires_at - Utc::now()).to_std().unwrap_or_default();
        if remaining.is_zero() {
            return Err(AuthFailure::Unauthorized("The token has expired.".into()));
        }
        let identity = Arc::new(identity);
        let now = Instant::now();
        let until = now + remaining.min(self.cfg.token_cache_time);
        self.cache()
            .insert(token.to_string(), identity.clone(), until, now);
        Ok(identity)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TokenCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GET /v3/auth/tokens` for `token`, authenticated by the service token.
    async fn validate(
        &self,
        token: &str,
        renew: bool,
    ) -> Result<(Identity, DateTime<Utc>), Validation> {
        let service = self
            .service_token(renew)
            .await
            .map_err(Validation::Failed)?;
        let request = self
            .http
            .get(format!("{}/auth/tokens", self.service.v3_url()))
            .header("x-auth-token", service.value())
            .header("x-subject-token", token);
        let resp = send_with_retries(request, self.cfg.http_retries)
            .await
            .map_err(|e| Validation::Failed(self.unreachable(e.is_timeout())))?;
        match resp.status().as_u16() {
            200 => {
                let body: TokenDocument = resp.json().await.map_err(|e| {
                    Validation::Failed(AuthFailure::Unavailable(format!(
                        "Keystone's token validation answer is not understood: {e}"
                    )))
                })?;
                identity_of(body.token).map_err(Validation::Failed)
            }
            401 => Err(Validation::ServiceTokenRejected),
            400 | 404 => Err(Validation::Failed(AuthFailure::Unauthorized(
                "The request you have made requires authentication: the token is invalid, \
                 expired or revoked."
                    .into(),
            ))),
            403 => Err(Validation::Failed(AuthFailure::Unavailable(format!(
                "Keystone does not let the service user {} validate tokens; give it the \
                 admin or service role.",
                self.cfg.credentials.username
            )))),
            s => Err(Validation::Failed(AuthFailure::Unavailable(format!(
                "Keystone answered token validation with HTTP {s}."
            )))),
        }
    }

    /// Scoria's own token (see [`PasswordSession::token`]).
    async fn service_token(&self, renew: bool) -> Result<Arc<Token>, AuthFailure> {
        self.service.token(renew).await.map_err(|e| match e {
            SignInError::Unreachable { timeout, .. } => self.unreachable(timeout),
            SignInError::Refused(status) => {
                let c = &self.cfg.credentials;
                AuthFailure::Unavailable(format!(
                    "Keystone refused Scoria's service credentials (user {} in project {}): \
                     HTTP {status}.",
                    c.username, c.project_name
                ))
            }
            SignInError::Malformed(msg) => AuthFailure::Unavailable(format!("{msg}.")),
        })
    }

    fn unreachable(&self, timeout: bool) -> AuthFailure {
        let what = if timeout {
            "did not answer in time"
        } else {
            "is unreachable"
        };
        AuthFailure::Unavailable(format!(
            "The identity service at {} {what}; cannot validate the token.",
            self.service.v3_url()
        ))
    }
}

/// Outcome of one validation attempt that is not a plain success.
#[derive(Debug)]
enum Validation {
    Failed(AuthFailure),
    /// Keystone answered 401: the service token itself is no longer good.
    ServiceTokenRejected,
}

/// A token header's value, if present and not blank.
fn token_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Who `token` speaks for and until when; an unscoped token is refused.
fn identity_of(token: TokenData) -> Result<(Identity, DateTime<Utc>), AuthFailure> {
    let expires_at = expiry(&token.expires_at).ok_or_else(|| {
        AuthFailure::Unavailable(format!(
            "Keystone's token expiry '{}' is not a timestamp.",
            token.expires_at
        ))
    })?;
    let user = token.user.ok_or_else(|| {
        AuthFailure::Unavailable(
            "Keystone's token validation answer is not understood: it names no user.".into(),
        )
    })?;
    let project = token
        .project
        .ok_or_else(|| AuthFailure::Unauthorized("The token is not scoped to a project.".into()))?;
    let identity = Identity {
        user_id: user.id,
        project_id: project.id,
        roles: token.roles.into_iter().map(|r| r.name).collect(),
    };
    Ok((identity, expires_at))
}

/// Validated tokens until they expire, at most [`CACHE_CAPACITY`] of them.
#[derive(Default)]
struct TokenCache {
    entries: HashMap<String, (Arc<Identity>, Instant)>,
}

impl TokenCache {
    fn get(&mut self, token: &str, now: Instant) -> Option<Arc<Identity>> {
        match self.entries.get(token) {
            Some((identity, until)) if now < *until => Some(identity.clone()),
            Some(_) => {
                self.entries.remove(token);
                None
            }
            None => None,
        }
    }

    fn insert(&mut self, token: String, identity: Arc<Identity>, until: Instant, now: Instant) {
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(&token) {
            self.entries.retain(|_, (_, u)| now < *u);
            if self.entries.len() >= CACHE_CAPACITY {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, u))| *u)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(token, (identity, until));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::routing::get;
    use axum::Json;
    use serde_json::json;

    use super::*;
    use scoria_keystone::DEFAULT_RETRIES;

    fn identity(user: &str) -> Arc<Identity> {
        Arc::new(Identity {
            user_id: user.into(),
            project_id: "p".into(),
            roles: vec!["member".into()],
        })
    }

    #[test]
    fn cache_forgets_expired_tokens() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        cache.insert("t".into(), identity("u"), now + Duration::from_secs(5), now);
        assert_eq!(cache.get("t", now).unwrap().user_id, "u");
        assert!(cache.get("t", now + Duration::from_secs(5)).is_none());
        assert!(
            cache.entries.is_empty(),
            "an expired entry is dropped when met"
        );
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        for i in 0..CACHE_CAPACITY {
            let until = now + Duration::from_secs(10 + i as u64);
            cache.insert(format!("t{i}"), identity("u"), until, now);
        }
        cache.insert(
            "late".into(),
            identity("v"),
            now + Duration::from_secs(1),
            now,
        );
        assert_eq!(cache.entries.len(), CACHE_CAPACITY);
        assert!(
            cache.get("t0", now).is_none(),
            "the soonest to expire made room"
        );
        assert!(cache.get("late", now).is_some());
        // Expired entries go first when the cache is full.
        let later = now + Duration::from_secs(20);
        cache.insert(
            "new".into(),
            identity("w"),
            later + Duration::from_secs(60),
            later,
        );
        assert!(cache.entries.len() < CACHE_CAPACITY);
        assert!(cache.get("new", later).is_some());
    }

    /// The config of a `[keystone_authtoken]` section whose options `get` gives.
    fn from_options(get: impl Fn(&str) -> Option<String>) -> Result<KeystoneConfig, String> {
        let names = KeystoneOptions::OPTIONS
            .iter()
            .chain(CredentialOptions::OPTIONS)
            .map(|d| d.name);
        let section = names
            .filter_map(|n| get(n).map(|v| (n.to_string(), v)))
            .collect();
        let read = |e: scoria_core::config::ConfigError| e.to_string();
        let options = scoria_core::config::read_options("keystone_authtoken", &section);
        let credentials = scoria_core::config::read_options("keystone_authtoken", &section);
        KeystoneConfig::from_section(&options.map_err(read)?, &credentials.map_err(read)?)
    }

    #[test]
    fn options_and_defaults() {
        let opts = |k: &str| match k {
            "auth_url" => Some("http://ks:5000/v3/".to_string()),
            "username" => Some("scoria".into()),
            "password" => Some("pw".into()),
            "token_cache_time" => Some("30".into()),
            _ => None,
        };
        let cfg = from_options(opts).unwrap();
        assert_eq!(cfg.credentials.project_name, "service");
        assert_eq!(cfg.token_cache_time, Duration::from_secs(30));
        assert!(
            !format!("{cfg:?}").contains("pw"),
            "the password is not logged"
        );
        let auth = KeystoneAuth::new(cfg).unwrap();
        assert_eq!(auth.challenge, "Keystone uri=\"http://ks:5000/v3/\"");
        let without =
            |name: &'static str| from_options(move |k| opts(k).filter(|_| k != name)).unwrap_err();
        assert_eq!(
            without("password"),
            "[keystone_authtoken] password is not set"
        );
        assert_eq!(
            without("auth_url"),
            "[keystone_authtoken] auth_url is not set"
        );
    }

    #[test]
    fn token_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(token_header(&h, "x-auth-token"), None);
        h.insert("x-auth-token", HeaderValue::from_static("  "));
        assert_eq!(token_header(&h, "x-auth-token"), None);
        h.insert("x-auth-token", HeaderValue::from_static(" gAAAA "));
        assert_eq!(token_header(&h, "x-auth-token"), Some("gAAAA"));
    }

    #[test]
    fn token_documents() {
        let body: TokenDocument = serde_json::from_value(json!({"token": {
            "expires_at": "2030-01-02T03:04:05.000000Z",
            "user": {"id": "u1", "name": "demo"},
            "project": {"id": "p1", "name": "demo"},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "reader"}],
        }}))
        .unwrap();
        let (who, at) = identity_of(body.token).unwrap();
        assert_eq!(who.project_id, "p1");
        assert_eq!(who.roles, ["member", "reader"]);
        assert_eq!(at.to_rfc3339(), "2030-01-02T03:04:05+00:00");
        let unscoped: TokenDocument = serde_json::from_value(json!({"token": {
            "expires_at": "2030-01-02T03:04:05Z", "user": {"id": "u1"},
        }}))
        .unwrap();
        assert!(matches!(
            identity_of(unscoped.token),
            Err(AuthFailure::Unauthorized(_))
        ));
    }

    /// A stand-in for Keystone's two token calls: one user token `good`,
    /// one service token per sign-in (`svc-N`), only the latest accepted.
    #[derive(Default)]
    struct FakeKeystone {
        sign_ins: AtomicUsize,
        validations: AtomicUsize,
        /// Fault injection: this many validations hang for a minute first.
        stalls: AtomicUsize,
    }

    async fn issue(State(ks): State<Arc<FakeKeystone>>) -> Response {
        let n = ks.sign_ins.fetch_add(1, Ordering::SeqCst) + 1;
        let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let mut resp = axum::response::IntoResponse::into_response((
            StatusCode::CREATED,
            Json(json!({"token": {"expires_at": expires, "user": {"id": "svc"}}})),
        ));
        resp.headers_mut()
            .insert("x-subject-token", format!("svc-{n}").parse().unwrap());
        resp
    }

    async fn check(State(ks): State<Arc<FakeKeystone>>, h: HeaderMap) -> Response {
        use axum::response::IntoResponse;
        ks.validations.fetch_add(1, Ordering::SeqCst);
        let stall = ks
            .stalls
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if stall.is_ok() {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let current = format!("svc-{}", ks.sign_ins.load(Ordering::SeqCst));
        if h.get("x-auth-token").unwrap() != current.as_str() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if h.get("x-subject-token").unwrap() != "good" {
            return StatusCode::NOT_FOUND.into_response();
        }
        let expires = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        Json(json!({"token": {
            "expires_at": expires,
            "user": {"id": "u1"},
            "project": {"id": "p1"},
            "roles": [{"id": "1", "name": "admin"}],
        }}))
        .into_response()
    }

    async fn fake_keystone() -> (String, Arc<FakeKeystone>) {
        let ks = Arc::new(FakeKeystone::default());
        let app = axum::Router::new()
            .route("/v3/auth/tokens", get(check).post(issue))
            .with_state(ks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, ks)
    }

    fn auth_for(url: &str) -> KeystoneAuth {
        auth_with(url, KEYSTONE_TIMEOUT, DEFAULT_RETRIES)
    }

    fn auth_with(url: &str, http_timeout: Duration, http_retries: u32) -> KeystoneAuth {
        KeystoneAuth::new(KeystoneConfig {
            credentials: Credentials {
                auth_url: url.into(),
                username: "scoria".into(),
                password: "pw".into(),
                project_name: "service".into(),
                user_domain_name: "Default".into(),
                project_domain_name: "Default".into(),
            },
            www_authenticate_uri: None,
            token_cache_time: Duration::from_secs(300),
            http_timeout,
            http_retries,
        })
        .unwrap()
    }

    fn with_token(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-auth-token", token.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn validates_caches_and_renews_the_service_token() {
        let (url, ks) = fake_keystone().await;
        let auth = auth_for(&url);
        let caller = auth.authenticate(&with_token("good")).await.unwrap();
        assert_eq!(caller.user.project_id, "p1");
        assert_eq!(caller.user.roles, ["admin"]);
        auth.authenticate(&with_token("good")).await.unwrap();
        assert_eq!(
            ks.validations.load(Ordering::SeqCst),
            1,
            "second use is cached"
        );

        let bad = auth.authenticate(&with_token("garbage")).await.unwrap_err();
        assert!(matches!(bad, AuthFailure::Unauthorized(_)), "{bad:?}");
        let resp = auth.reject(&bad);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            resp.headers()["www-authenticate"],
            format!("Keystone uri=\"{url}\"").as_str()
        );

        // Keystone forgets Scoria's token (a new sign-in elsewhere supersedes it).
        ks.sign_ins.fetch_add(1, Ordering::SeqCst);
        auth.cache().entries.clear();
        auth.authenticate(&with_token("good")).await.unwrap();
        assert_eq!(ks.sign_ins.load(Ordering::SeqCst), 3, "signed in again");

        let mut both = with_token("good");
        both.insert("x-service-token", "garbage".parse().unwrap());
        assert!(matches!(
            auth.authenticate(&both).await,
            Err(AuthFailure::Unauthorized(_))
        ));
        assert!(matches!(
            auth.authenticate(&HeaderMap::new()).await,
            Err(AuthFailure::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn a_validation_keystone_does_not_answer_in_time_is_sent_again() {
        let (url, ks) = fake_keystone().await;
        ks.stalls.store(2, Ordering::SeqCst);
        let auth = auth_with(&url, Duration::from_millis(300), 2);
        let caller = auth.authenticate(&with_token("good")).await.unwrap();
        assert_eq!(caller.user.project_id, "p1");
        assert_eq!(ks.validations.load(Ordering::SeqCst), 3);

        // Out of retries: a 503 that says Keystone was too slow.
        ks.stalls.store(3, Ordering::SeqCst);
        auth.cache().entries.clear();
        let failure = auth.authenticate(&with_token("good")).await.unwrap_err();
        let AuthFailure::Unavailable(msg) = &failure else {
            panic!("{failure:?}")
        };
        assert!(msg.contains("did not answer in time"), "{msg}");
    }

    #[test]
    fn timeout_and_retries_come_from_the_options() {
        let opts = |extra: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                [
                    ("auth_url", "http://ks:5000"),
                    ("username", "s"),
                    ("password", "p"),
                ]
                .iter()
                .chain(extra)
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
            }
        };
        let cfg = from_options(opts(&[])).unwrap();
        assert_eq!((cfg.http_timeout, cfg.http_retries), (KEYSTONE_TIMEOUT, 3));
        let cfg = from_options(opts(&[
            ("http_connect_timeout", "30"),
            ("http_request_max_retries", "0"),
        ]))
        .unwrap();
        assert_eq!(
            (cfg.http_timeout, cfg.http_retries),
            (Duration::from_secs(30), 0)
        );
        let err = from_options(opts(&[("http_connect_timeout", "soon")])).unwrap_err();
        assert!(err.contains("http_connect_timeout = soon"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_keystone_is_a_503() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let auth = auth_for(&format!("http://127.0.0.1:{port}"));
        let failure = auth.authenticate(&with_token("good")).await.unwrap_err();
        assert!(
            matches!(failure, AuthFailure::Unavailable(_)),
            "{failure:?}"
        );
        assert_eq!(
            auth.reject(&failure).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
