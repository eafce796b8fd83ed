//! Telling Nova about volumes it uses: after an attached volume grows, the
//! servers it is attached to get a `volume-extended` external event
//! (`POST /os-server-external-events`, compute API microversion 2.51), so
//! the hypervisor can resize the guest's disk.
//!
//! Configured from cinder.conf's `[nova]` section: `endpoint_override` (the
//! compute endpoint, e.g. `http://nova:8774/v2.1`), `timeout` (seconds, 10 by
//! default), `insecure`, and Keystone password credentials (`auth_url`,
//! `username`, `password`, `project_name`, `user_domain_name`,
//! `project_domain_name`). With credentials and no `endpoint_override` the
//! endpoint comes from the token's service catalog (`interface`, public by
//! default, and `region_name`). Without credentials no token is sent.

use std::sync::Arc;
use std::time::Duration;

use scoria_core::config::{OptionDoc, Options};
use scoria_core::status::AttachStatus;
use scoria_core::RequestContext;
use scoria_keystone::{Catalog, PasswordSession, SignInError, Token};
pub use scoria_keystone::{CredentialOptions, Credentials};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::VolumeManager;

/// The compute API microversion that knows `volume-extended`.
pub const NOVA_API_VERSION: &str = "2.51";

/// cinder.conf's `[nova]` options as written (the credentials of the
/// section are [`CredentialOptions`]).
#[derive(Debug, Clone, Deserialize)]
pub struct NovaOptions {
    pub endpoint_override: Option<String>,
    pub timeout: f64,
    pub insecure: bool,
    pub interface: String,
    pub region_name: Option<String>,
}

impl Options for NovaOptions {
    const OPTIONS: &'static [OptionDoc] = &[
        doc(
            "endpoint_override",
            "",
            "Nova's compute endpoint (`…/v2.1`); from the catalog when unset.",
        ),
        doc(
            "timeout",
            "10",
            "Seconds one request to Nova may take (fractions allowed).",
        ),
        doc("insecure", "false", "Accept any TLS certificate."),
        doc(
            "interface",
            "public",
            "Which catalog endpoint to use: `public`, `internal` or `admin`.",
        ),
        doc(
            "region_name",
            "",
            "The catalog region, when there are several.",
        ),
    ];
}

/// An option cinder.conf's `[nova]` spells the same way.
const fn doc(name: &'static str, default: &'static str, help: &'static str) -> OptionDoc {
    OptionDoc {
        name,
        default,
        cinder: Some(name),
        help,
    }
}

/// How to reach Nova.
#[derive(Debug, Clone)]
pub struct NovaConfig {
    /// The compute endpoint (`…/v2.1`); from the catalog when unset.
    pub endpoint_override: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Which catalog endpoint to use: `public`, `internal` or `admin`.
    pub interface: String,
    /// The catalog region, if there are several.
    pub region_name: Option<String>,
    /// Credentials for a Keystone token; none: no token is sent.
    pub auth: Option<Credentials>,
}

impl NovaConfig {
    /// The Nova of `[nova]`, signing in with `auth` (the section's
    /// credentials); `None` when neither `endpoint_override` nor `auth_url`
    /// is set (Nova is not told anything).
    pub fn from_section(
        options: &NovaOptions,
        auth: &CredentialOptions,
    ) -> Result<Option<Self>, String> {
        let endpoint_override = options.endpoint_override.clone();
        if let Some(e) = &endpoint_override {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "[nova] endpoint_override = {e} is not an http(s) URL"
                ));
            }
        }
        let auth = auth.credentials("nova")?;
        if endpoint_override.is_none() && auth.is_none() {
            return Ok(None);
        }
        let timeout = Some(options.timeout)
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!(
                    "[nova] timeout = {} is not a number of seconds",
                    options.timeout
                )
            })?;
        let interface = &options.interface;
        let interface = interface
            .strip_suffix("URL")
            .unwrap_or(interface)
            .to_string();
        Ok(Some(NovaConfig {
            endpoint_override,
            timeout,
            insecure: options.insecure,
            interface,
            region_name: options.region_name.clone(),
            auth,
        }))
    }

    /// The catalog's `compute` endpoint of the configured interface (and region).
    fn compute_endpoint(&self, catalog: &Catalog) -> Result<String, String> {
        let region = self.region_name.as_deref();
        catalog
            .endpoint("compute", &self.interface, region)
            .map(str::to_string)
            .ok_or_else(|| {
                format!(
                    "the service catalog has no {} compute endpoint{}; \
                     set [nova] endpoint_override",
                    self.interface,
                    region
                        .map(|r| format!(" in region {r}"))
                        .unwrap_or_default()
                )
            })
    }
}

/// A client of Nova's external events API.
pub struct NovaClient {
    cfg: NovaConfig,
    http: reqwest::Client,
    /// Signs in with `cfg.auth`, when given.
    keystone: Option<PasswordSession>,
}

impl std::fmt::Debug for NovaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NovaClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl NovaClient {
    /// Builds the client; no request is made until the first event.
    pub fn new(cfg: NovaConfig) -> Result<Self, String> {
        if cfg.endpoint_override.is_none() && cfg.auth.is_none() {
            return Err("[nova] needs endpoint_override or auth_url".into());
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .danger_accept_invalid_certs(cfg.insecure)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Nova: {e}"))?;
        let keystone = cfg
            .auth
            .clone()
            .map(|c| PasswordSession::new(c, http.clone()));
        Ok(NovaClient {
            cfg,
            http,
            keystone,
        })
    }

    /// Tells Nova that `volume_id`, attached to `servers`, has grown. An
    /// error describes why Nova was not (fully) told.
    pub async fn volume_extended(
        &self,
        volume_id: &str,
        servers: &[String],
        request_id: &str,
    ) -> Result<(), String> {
        let events: Vec<Value> = servers
            .iter()
            .map(|server| {
                json!({"name": "volume-extended", "server_uuid": server, "tag": volume_id})
            })
            .collect();
        let body = json!({ "events": events });
        let mut renew = false;
        loop {
            let (token, endpoint) = self.session(renew).await?;
            let url = format!(
                "{}/os-server-external-events",
                endpoint.trim_end_matches('/')
            );
            let mut req = self
                .http
                .post(&url)
                .header("X-OpenStack-Nova-API-Version", NOVA_API_VERSION)
                .header(
                    "OpenStack-API-Version",
                    format!("compute {NOVA_API_VERSION}"),
                )
                .json(&body);
            if let Some(token) = &token {
                req = req.header("X-Auth-Token", token.value());
            }
            if request_id.starts_with("req-") {
                req = req.header("X-OpenStack-Request-ID", request_id);
            }
            let resp = req.send().await.map_err(|e| unreachable(&url, &e))?;
            let status = resp.status().as_u16();
            if status == 401 && token.is_some() && !renew {
                // The token was revoked or expired early: sign in again once.
                renew = true;
                continue;
            }
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            return match status {
                200 => Ok(()),
                207 => Err(format!(
                    "Nova did not take every event: {}",
                    failed_events(&answer)
                )),
                404 => Err("Nova knows none of the servers".into()),
                s => Err(format!("Nova answered HTTP {s}: {}", excerpt(&answer))),
            };
        }
    }

    /// The token to send (if any) and the compute endpoint.
    async fn session(&self, renew: bool) -> Result<(Option<Arc<Token>>, String), String> {
        let Some(keystone) = &self.keystone else {
            let endpoint = self.cfg.endpoint_override.clone();
            return Ok((None, endpoint.expect("checked by NovaClient::new")));
        };
        let token = keystone.token(renew).await.map_err(|e| match e {
            SignInError::Refused(status) => {
                let c = keystone.credentials();
                format!(
                    "Keystone refused the credentials for Nova (user {} in project {}): HTTP {status}",
                    c.username, c.project_name
                )
            }
            e => e.to_string(),
        })?;
        let endpoint = match &self.cfg.endpoint_override {
            Some(e) => e.clone(),
            None => self.cfg.compute_endpoint(token.catalog())?,
        };
        Ok((Some(token), endpoint))
    }
}

impl VolumeManager {
    /// After an attached volume grew: a `volume-extended` event for every
    /// server it is attached to. A failure is logged; the extend stands.
    pub(crate) async fn tell_nova_extended(&self, ctx: &RequestContext, volume_id: &str) {
        let Some(nova) = &self.cfg.nova else {
            tracing::debug!(
                volume = volume_id,
                "Nova is not configured; no volume-extended event"
            );
            return;
        };
        let attachments = match self.db.attachments_of_volume(volume_id).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(
                    volume = volume_id,
                    error = %e,
                    "cannot list the attachments; Nova is not told of the extend"
                );
                return;
            }
        };
        let mut servers: Vec<String> = Vec::new();
        for a in attachments {
            if let (AttachStatus::Attached, Some(server)) = (a.attach_status, a.instance_uuid) {
                if !servers.contains(&server) {
                    servers.push(server);
                }
            }
        }
        if servers.is_empty() {
            tracing::debug!(
                volume = volume_id,
                "attached to no server; no volume-extended event"
            );
            return;
        }
        match nova
            .volume_extended(volume_id, &servers, &ctx.request_id)
            .await
        {
            Ok(()) => tracing::info!(volume = volume_id, ?servers, "Nova told of the extend"),
            Err(e) => tracing::warn!(
                volume = volume_id,
                ?servers,
                error = %e,
                "could not send Nova the volume-extended event"
            ),
        }
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{url} did not answer in time")
    } else {
        format!("{url} is unreachable: {e}")
    }
}

/// The events of a 207 answer that did not succeed.
fn failed_events(answer: &Value) -> String {
    let failed: Vec<String> = answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["code"].as_u64() != Some(200))
        .map(|e| format!("server {} ({})", e["server_uuid"], e["code"]))
        .collect();
    if failed.is_empty() {
        excerpt(answer)
    } else {
        failed.join(", ")
    }
}

fn excerpt(answer: &Value) -> String {
    let text = answer.to_string();
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Nova of a `[nova]` section with these options.
    fn nova(pairs: &[(&str, &str)]) -> Result<Option<NovaConfig>, String> {
        let section = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let read = |e: scoria_core::config::ConfigError| e.to_string();
        let options = scoria_core::config::read_options("nova", &section).map_err(read)?;
        let auth = scoria_core::config::read_options("nova", &section).map_err(read)?;
        NovaConfig::from_section(&options, &auth)
    }

    #[test]
    fn nothing_configured_means_no_nova() {
        assert!(nova(&[("timeout", "5")]).unwrap().is_none());
    }

    #[test]
    fn options_and_defaults() {
        let cfg = nova(&[("endpoint_override", "http://nova:8774/v2.1")])
            .unwrap()
            .unwrap();
        assert_eq!(cfg.timeout, Duration::from_secs(10));
        assert!(!cfg.insecure && cfg.auth.is_none());
        assert_eq!(cfg.interface, "public");

        let cfg = nova(&[
            ("timeout", "2.5"),
            ("insecure", "True"),
            ("interface", "internalURL"),
            ("auth_url", "http://ks:5000/v3"),
            ("username", "nova-user"),
            ("password", "secret"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert!(cfg.insecure);
        assert_eq!(cfg.interface, "internal");
        assert_eq!(cfg.auth.as_ref().unwrap().username, "nova-user");
        assert!(
            !format!("{cfg:?}").contains("secret"),
            "password not logged"
        );
    }

    #[test]
    fn errors_name_the_option() {
        let err = |pairs: &[(&str, &str)]| nova(pairs).unwrap_err();
        assert!(err(&[("endpoint_override", "nova:8774")]).contains("endpoint_override"));
        assert!(err(&[("endpoint_override", "http://n"), ("timeout", "soon")]).contains("timeout"));
        assert!(
            err(&[("endpoint_override", "http://n"), ("insecure", "maybe")]).contains("insecure")
        );
        assert_eq!(
            err(&[("auth_url", "http://ks/v3"), ("username", "u")]),
            "[nova] password is not set"
        );
    }

    #[test]
    fn compute_endpoint_of_the_configured_interface_and_region() {
        let catalog: Catalog = serde_json::from_value(json!([
            {"type": "compute", "endpoints": [
                {"interface": "internal", "url": "http://nova-int/v2.1", "region_id": "r1"},
                {"interface": "public", "url": "http://nova-r2/v2.1", "region_id": "r2"}]},
        ]))
        .unwrap();
        let mut cfg = nova(&[("endpoint_override", "http://x"), ("interface", "internal")])
            .unwrap()
            .unwrap();
        assert_eq!(
            cfg.compute_endpoint(&catalog).unwrap(),
            "http://nova-int/v2.1"
        );
        cfg.region_name = Some("r2".into());
        assert_eq!(
            cfg.compute_endpoint(&catalog).unwrap_err(),
            "the service catalog has no internal compute endpoint in region r2; \
             set [nova] endpoint_override"
        );
    }
}
