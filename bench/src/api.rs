//! The few Cinder v3 calls the benchmark makes, over one pooled HTTP client.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::{Client, StatusCode, Url};
use serde_json::{json, Value};
use uuid::Uuid;

/// The header that asks for a microversion.
const API_VERSION: &str = "openstack-api-version";
/// noauth token: user `bench` in project `bench`.
const TOKEN: &str = "bench:bench";
/// How often a new volume's status is polled.
const POLL_EVERY: Duration = Duration::from_millis(2);
/// Longest wait for one volume to become available or to disappear.
const VOLUME_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for one HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The microversion sent with the attachments calls (`os-complete` needs 3.44).
const ATTACH_VERSION: &str = "volume 3.54";

/// A client of one Scoria API on the loopback interface.
#[derive(Clone)]
pub struct Api {
    http: Client,
    root: String,
}

impl Api {
    /// A client for the API at `root` (e.g. `http://127.0.0.1:8776`, a
    /// trailing `/v3` is accepted); anything but a loopback address is refused.
    pub fn new(root: &str) -> Result<Api> {
        check_loopback(root)?;
        let mut headers = HeaderMap::new();
        headers.insert("x-auth-token", HeaderValue::from_static(TOKEN));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = Client::builder()
            .default_headers(headers)
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()?;
        let root = root.trim_end_matches('/').trim_end_matches("/v3");
        Ok(Api {
            http,
            root: root.to_string(),
        })
    }

    /// The API's root URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3{path}", self.root)
    }

    /// Whether `GET /` answers (Cinder's 300 version list) and the scheduler
    /// can place on at least one pool.
    pub async fn ready(&self) -> bool {
        let answers = self
            .http
            .get(format!("{}/", self.root))
            .send()
            .await
            .is_ok();
        answers
            && self
                .get_json("/scheduler-stats/get_pools")
                .await
                .is_ok_and(|v| v["pools"].as_array().is_some_and(|p| !p.is_empty()))
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let resp = self.http.get(self.url(path)).send().await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok(resp.json().await?)
    }

    /// GETs `path` and reads the whole body; fails unless the status is 2xx.
    pub async fn fetch(&self, path: &str) -> Result<()> {
        let resp = self.http.get(self.url(path)).send().await?;
        let status = resp.status();
        resp.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        Ok(())
    }

    /// Creates a 1 GiB volume and returns its id.
    pub async fn create(&self) -> Result<String> {
        self.create_volume(json!({"volume": {"size": 1}})).await
    }

    /// Creates a 1 GiB volume filled from the Glance image `image_id` and
    /// returns its id.
    pub async fn create_from_image(&self, image_id: &str) -> Result<String> {
        self.create_volume(json!({"volume": {"size": 1, "imageRef": image_id}}))
            .await
    }

    async fn create_volume(&self, body: Value) -> Result<String> {
        let resp = self
            .http
            .post(self.url("/volumes"))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.context("POST /volumes: no JSON body")?;
        if status != StatusCode::ACCEPTED {
            bail!("POST /volumes: {status}: {body}");
        }
        body["volume"]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /volumes: no id in {body}"))
    }

    /// Polls a volume every 2 ms until it is available; fails when it goes
    /// to an error status or takes longer than a minute.
    pub async fn wait_available(&self, id: &str) -> Result<()> {
        self.wait_available_within(id, POLL_EVERY, VOLUME_TIMEOUT)
            .await
    }

    /// Polls a volume every `poll` until it is available; fails when it goes
    /// to an error status or takes longer than `limit`.
    pub async fn wait_available_within(
        &self,
        id: &str,
        poll: Duration,
        limit: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            tokio::time::sleep(poll).await;
            let body = self.get_json(&format!("/volumes/{id}")).await?;
            match body["volume"]["status"].as_str() {
                Some("available") => return Ok(()),
                Some(s) if s.starts_with("error") => bail!("volume {id} went to {s}"),
                s if Instant::now() > deadline => {
                    bail!("volume {id} still {s:?} after {limit:?}")
                }
                _ => {}
            }
        }
    }

    /// `os-volume_upload_image`: uploads a volume into a new Glance image
    /// named `name` in `disk_format` (container `bare`), expecting 202;
    /// returns the image's id. The volume is `uploading` until it is done.
    pub async fn upload_to_image(
        &self,
        volume_id: &str,
        name: &str,
        disk_format: &str,
    ) -> Result<String> {
        let path = format!("/volumes/{volume_id}/action");
        let body = json!({"os-volume_upload_image": {
            "image_name": name,
            "disk_format": disk_format,
            "container_format": "bare",
            "force": false,
        }});
        let resp = self.http.post(self.url(&path)).json(&body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != StatusCode::ACCEPTED {
            bail!("POST {path} os-volume_upload_image: {status}: {text}");
        }
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("os-volume_upload_image: not JSON: {text}"))?;
        body["os-volume_upload_image"]["image_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("os-volume_upload_image: no image_id in {text}"))
    }

    /// The ids of the volumes of every project named `name` (an
    /// administrator's `all_tenants` listing).
    pub async fn volumes_named(&self, name: &str) -> Result<Vec<String>> {
        let resp = self
            .http
            .get(self.url("/volumes"))
            .query(&[("all_tenants", "1"), ("name", name)])
            .send()
            .await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET /volumes?all_tenants=1&name={name}: {status}");
        }
        let body: Value = resp.json().await?;
        let volumes = body["volumes"].as_array().cloned().unwrap_or_default();
        Ok(volumes
            .iter()
            .filter(|v| v["name"] == name)
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect())
    }

    /// `POST /attachments` for `volume_id` with this host's connector,
    /// expecting 200; returns the attachment's id and body.
    pub async fn create_attachment(&self, volume_id: &str) -> Result<(String, Value)> {
        let body = json!({"attachment": {
            "volume_uuid": volume_id,
            "instance_uuid": Uuid::new_v4().to_string(),
            "connector": {
                "host": "bench",
                "initiator": "iqn.2004-10.org.scoria:bench",
                "ip": "127.0.0.1",
                "platform": "x86_64",
                "os_type": "linux",
                "multipath": false,
                "mountpoint": "/dev/vdb",
            },
        }});
        let resp = self
            .http
            .post(self.url("/attachments"))
            .header(API_VERSION, ATTACH_VERSION)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != StatusCode::OK {
            bail!("POST /attachments for volume {volume_id}: {status}: {text}");
        }
        let mut body: Value = serde_json::from_str(&text)
            .with_context(|| format!("POST /attachments: not JSON: {text}"))?;
        let attachment = body["attachment"].take();
        let id = attachment["id"]
            .as_str()
            .ok_or_else(|| anyhow!("POST /attachments: no id in {text}"))?
            .to_string();
        Ok((id, attachment))
    }

    /// `POST /attachments/{id}/action {"os-complete": null}`, expecting 204.
    pub async fn complete_attachment(&self, id: &str) -> Result<()> {
        let path = format!("/attachments/{id}/action");
        let resp = self
            .http
            .post(self.url(&path))
            .header(API_VERSION, ATTACH_VERSION)
            .json(&json!({"os-complete": null}))
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != StatusCode::NO_CONTENT {
            bail!("POST {path} os-complete: {status}: {text}");
        }
        Ok(())
    }

    /// `DELETE /attachments/{id}`, expecting 200.
    pub async fn delete_attachment(&self, id: &str) -> Result<()> {
        let path = format!("/attachments/{id}");
        let resp = self
            .http
            .delete(self.url(&path))
            .header(API_VERSION, ATTACH_VERSION)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != StatusCode::OK {
            bail!("DELETE {path}: {status}: {text}");
        }
        Ok(())
    }

    /// Deletes a volume and waits until it is gone (at most a minute).
    pub async fn delete(&self, id: &str) -> Result<()> {
        let path = format!("/volumes/{id}");
        let resp = self.http.delete(self.url(&path)).send().await?;
        let status = resp.status();
        if status != StatusCode::ACCEPTED {
            bail!("DELETE {path}: {status}: {}", resp.text().await?);
        }
        let deadline = Instant::now() + VOLUME_TIMEOUT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let status = self.http.get(self.url(&path)).send().await?.status();
            if status == StatusCode::NOT_FOUND {
                return Ok(());
            }
        }
        bail!("volume {id} still present {VOLUME_TIMEOUT:?} after DELETE")
    }
}

/// Fails unless `root` is a URL on the loopback interface.
pub fn check_loopback(root: &str) -> Result<()> {
    let url = Url::parse(root).with_context(|| format!("'{root}' is not a URL"))?;
    if !matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")) {
        bail!("the benchmark only sends traffic to loopback; '{root}' is not");
    }
    Ok(())
}
