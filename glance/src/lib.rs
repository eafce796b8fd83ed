//! Scoria's client of Glance's v2 API: find, read, create, fill and delete
//! images, with the caller's token (and Scoria's service token when
//! `[service_user] send_service_user_token` is set), retrying requests that
//! got no answer as `glance_num_retries` says.

mod config;
mod image;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use scoria_core::RequestContext;
use scoria_keystone::PasswordSession;
use serde_json::Value;

pub use config::{GlanceConfig, GlanceOptions, ServiceUserOptions};
pub use image::{Image, Location};

/// The wait before the first retry; it doubles with every further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);

/// Why a Glance request failed.
#[derive(Debug, thiserror::Error)]
pub enum GlanceError {
    #[error("no image service is configured: set [DEFAULT] glance_api_servers, or [service_user] credentials to find Glance in the Keystone catalog")]
    NotConfigured,
    #[error("Image {0} could not be found.")]
    NotFound(String),
    #[error("Glance refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("Glance could not be reached: {0}")]
    Unreachable(String),
}

/// Result alias of Glance calls.
pub type Result<T> = std::result::Result<T, GlanceError>;

/// A Glance client shared by every request of a process.
pub struct Glance {
    cfg: GlanceConfig,
    http: reqwest::Client,
    /// Scoria's own sign-in (`[service_user]`), when configured.
    service: Option<PasswordSession>,
    /// Which of `cfg.servers` to try next.
    next_server: AtomicUsize,
}

impl std::fmt::Debug for Glance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Glance")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Glance {
    /// Builds the client; no request is made until the first call.
    pub fn new(cfg: GlanceConfig) -> std::result::Result<Arc<Self>, String> {
        let mut http = reqwest::Client::builder().danger_accept_invalid_certs(cfg.insecure);
        if let Some(t) = cfg.timeout {
            http = http.connect_timeout(t).read_timeout(t);
        }
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("glance_ca_certificates_file {path}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("glance_ca_certificates_file {path}: {e}"))?;
            for c in certs {
                http = http.add_root_certificate(c);
            }
        }
        let http = http
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Glance: {e}"))?;
        let service = cfg
            .service_user
            .clone()
            .map(|c| PasswordSession::new(c, http.clone()));
        Ok(Arc::new(Glance {
            cfg,
            http,
            service,
            next_server: AtomicUsize::new(0),
        }))
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &GlanceConfig {
        &self.cfg
    }

    /// The image `id` as the caller sees it.
    pub async fn image(&self, ctx: &RequestContext, id: &str) -> Result<Image> {
        let resp = self
            .send(ctx, Method::GET, &format!("images/{id}"), None)
            .await?;
        json(check(resp, id).await?).await
    }

    /// The images named `name` that the caller sees.
    pub async fn find_by_name(&self, ctx: &RequestContext, name: &str) -> Result<Vec<Image>> {
        #[derive(serde::Deserialize)]
        struct Page {
            images: Vec<Image>,
        }
        let path = format!("images?name={}&limit=100", encode(name));
        let resp = self.send(ctx, Method::GET, &path, None).await?;
        Ok(json::<Page>(check(resp, name).await?).await?.images)
    }

    /// Opens the image's data for reading.
    pub async fn download(&self, ctx: &RequestContext, id: &str) -> Result<ImageData> {
        let resp = self
            .send(ctx, Method::GET, &format!("images/{id}/file"), None)
            .await?;
        let resp = check(resp, id).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Err(GlanceError::Refused {
                status: 204,
                message: format!("image {id} has no data"),
            });
        }
        Ok(ImageData { resp })
    }

    /// Creates an image record (`POST /v2/images`) from `body`.
    pub async fn create(&self, ctx: &RequestContext, body: &Value) -> Result<Image> {
        let resp = self
            .send(ctx, Method::POST, "images", Some(body.clone()))
            .await?;
        json(check(resp, "new image").await?).await
    }

    /// Uploads the image's data from `body` (sent once: a stream cannot be
    /// repeated).
    pub async fn upload(&self, ctx: &RequestContext, id: &str, body: reqwest::Body) -> Result<()> {
        let base = self.endpoint(0).await?;
        let req = self
            .http
            .put(format!("{base}/v2/images/{id}/file"))
            .headers(self.headers(ctx).await?)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = req
            .send()
            .await
            .map_err(|e| GlanceError::Unreachable(e.to_string()))?;
        check(resp, id).await.map(drop)
    }

    /// Deletes an image; one that is already gone is no error. A protected
    /// image (an upload that failed half way may be one) is unprotected first.
    pub async fn delete(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let path = format!("images/{id}");
        let resp = self.send(ctx, Method::DELETE, &path, None).await?;
        match check(resp, id).await {
            Ok(_) | Err(GlanceError::NotFound(_)) => Ok(()),
            Err(GlanceError::Refused { status: 403, .. }) => {
                self.unprotect(ctx, id).await?;
                let resp = self.send(ctx, Method::DELETE, &path, None).await?;
                match check(resp, id).await {
                    Ok(_) | Err(GlanceError::NotFound(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Sets `protected` to false (a JSON patch, as Glance's v2 API takes it).
    async fn unprotect(&self, ctx: &RequestContext, id: &str) -> Result<()> {
        let base = self.endpoint(0).await?;
        let patch = serde_json::json!([{"op": "replace", "path": "/protected", "value": false}]);
        let resp = self
            .http
            .patch(format!("{base}/v2/images/{id}"))
            .headers(self.headers(ctx).await?)
            .header(CONTENT_TYPE, "application/openstack-images-v2.1-json-patch")
            .body(patch.to_string())
            .send()
            .await
            .map_err(|e| GlanceError::Unreachable(e.to_string()))?;
        check(resp, id).await.map(drop)
    }

    /// Sends a request to `/v2/<path>`, again up to `glance_num_retries`
    /// times (on the next server) while Glance does not answer or answers 503.
    async fn send(
        &self,
        ctx: &RequestContext,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Response> {
        let headers = self.headers(ctx).await?;
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        loop {
            let base = self.endpoint(attempt).await?;
            let mut req: RequestBuilder = self
                .http
                .request(method.clone(), format!("{base}/v2/{path}"))
                .headers(headers.clone());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let outcome = req.send().await;
            let again = match &outcome {
                Err(e) => e.is_connect() || e.is_timeout(),
                Ok(r) => r.status() == StatusCode::SERVICE_UNAVAILABLE,
            };
            if !again || attempt >= self.cfg.retries {
                return outcome.map_err(|e| GlanceError::Unreachable(e.to_string()));
            }
            tracing::warn!(%path, attempt, "Glance did not answer; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// `X-Auth-Token` (the caller's, or Scoria's own for its own work) and,
    /// when configured, `X-Service-Token`.
    async fn headers(&self, ctx: &RequestContext) -> Result<HeaderMap> {
        let mut h = HeaderMap::new();
        let service = match &self.service {
            Some(s) if self.cfg.send_service_token || ctx.auth_token.is_none() => Some(
                s.token(false)
                    .await
                    .map_err(|e| GlanceError::Unreachable(format!("service user sign-in: {e}")))?,
            ),
            _ => None,
        };
        let value = |t: &str| {
            HeaderValue::from_str(t).map_err(|_| GlanceError::Refused {
                status: 401,
                message: "the token is not a valid header value".into(),
            })
        };
        match (&ctx.auth_token, &service) {
            (Some(user), _) => {
                h.insert("x-auth-token", value(&user.0)?);
                if let (true, Some(s)) = (self.cfg.send_service_token, &service) {
                    h.insert("x-service-token", value(s.value())?);
                }
            }
            (None, Some(s)) => {
                h.insert("x-auth-token", value(s.value())?);
            }
            (None, None) => {}
        }
        Ok(h)
    }

    /// The Glance root (no `/v2`) for the `attempt`-th try.
    async fn endpoint(&self, attempt: u32) -> Result<String> {
        if !self.cfg.servers.is_empty() {
            let n = self.next_server.fetch_add(1, Ordering::Relaxed) + attempt as usize;
            return Ok(self.cfg.servers[n % self.cfg.servers.len()].clone());
        }
        let Some(session) = &self.service else {
            return Err(GlanceError::NotConfigured);
        };
        let token = session
            .token(false)
            .await
            .map_err(|e| GlanceError::Unreachable(format!("service user sign-in: {e}")))?;
        let url = token
            .catalog()
            .endpoint(&self.cfg.service_type, &self.cfg.interface, None)
            .ok_or_else(|| {
                GlanceError::Unreachable(format!(
                    "the service catalog has no {} {} endpoint; set [DEFAULT] glance_api_servers",
                    self.cfg.interface, self.cfg.service_type
                ))
            })?;
        let url = url.trim_end_matches('/');
        Ok(url.strip_suffix("/v2").unwrap_or(url).to_string())
    }
}

/// An image's data as Glance sends it.
pub struct ImageData {
    resp: Response,
}

impl ImageData {
    /// The length Glance announced, if it did.
    pub fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// The next piece of data; `None` at the end. An error means the
    /// transfer broke off.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>> {
        self.resp
            .chunk()
            .await
            .map_err(|e| GlanceError::Unreachable(format!("the image download broke off: {e}")))
    }
}

/// The response if it is a success; else the error its status means.
async fn check(resp: Response, what: &str) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(GlanceError::NotFound(what.to_string()));
    }
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.pointer("/error/message"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "));
    Err(GlanceError::Refused {
        status: status.as_u16(),
        message,
    })
}

async fn json<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T> {
    resp.json()
        .await
        .map_err(|e| GlanceError::Unreachable(format!("Glance's answer is not understood: {e}")))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
