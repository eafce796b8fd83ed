//! The few Glance image API v2 calls the image phase makes, to an
//! unauthenticated Glance on the loopback interface.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Body, Client, StatusCode};
use serde_json::{json, Value};
use tokio_util::io::ReaderStream;

use crate::api::check_loopback;

/// How often an image's status is polled.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A client of one Glance.
#[derive(Clone)]
pub struct Glance {
    http: Client,
    root: String,
}

impl Glance {
    /// A client for the Glance at `root` (e.g. `http://127.0.0.1:9292`);
    /// anything but a loopback address is refused. Transfers have no
    /// request timeout; the callers bound them.
    pub fn new(root: &str) -> Result<Glance> {
        check_loopback(root)?;
        let http = Client::builder().no_proxy().build()?;
        Ok(Glance {
            http,
            root: root.trim_end_matches('/').to_string(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/images{path}", self.root)
    }

    /// `POST /v2/images`: a new `queued` image in a `bare` container;
    /// returns its id.
    pub async fn create(&self, name: &str, disk_format: &str) -> Result<String> {
        let body = json!({"name": name, "disk_format": disk_format, "container_format": "bare"});
        let resp = self.http.post(self.url("")).json(&body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status != StatusCode::CREATED {
            bail!("POST /v2/images: {status}: {text}");
        }
        let body: Value =
            serde_json::from_str(&text).with_context(|| format!("POST /v2/images: {text}"))?;
        body["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("POST /v2/images: no id in {text}"))
    }

    /// `PUT /v2/images/{id}/file` with the content of `file`, streamed.
    pub async fn upload(&self, id: &str, file: &Path) -> Result<()> {
        let data = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("cannot open {}", file.display()))?;
        let resp = self
            .http
            .put(self.url(&format!("/{id}/file")))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Body::wrap_stream(ReaderStream::with_capacity(
                data,
                1 << 20,
            )))
            .send()
            .await?;
        let status = resp.status();
        if status != StatusCode::NO_CONTENT {
            bail!("PUT /v2/images/{id}/file: {status}: {}", resp.text().await?);
        }
        Ok(())
    }

    /// `GET /v2/images/{id}/file`, throwing the data away; returns the
    /// number of bytes received.
    pub async fn download(&self, id: &str) -> Result<u64> {
        let mut resp = self
            .http
            .get(self.url(&format!("/{id}/file")))
            .send()
            .await?;
        let status = resp.status();
        if status != StatusCode::OK {
            bail!("GET /v2/images/{id}/file: {status}");
        }
        let mut bytes = 0;
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
        }
        Ok(bytes)
    }

    /// The status of image `id` (`queued`, `saving`, `active`, …).
    pub async fn status(&self, id: &str) -> Result<String> {
        let resp = self.http.get(self.url(&format!("/{id}"))).send().await?;
        let status = resp.status();
        if status != StatusCode::OK {
            bail!("GET /v2/images/{id}: {status}");
        }
        let body: Value = resp.json().await?;
        Ok(body["status"].as_str().unwrap_or_default().to_string())
    }

    /// Polls image `id` until it is `active`; fails when it is `killed` or
    /// `deleted`, or after `limit`.
    pub async fn wait_active(&self, id: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            match self.status(id).await?.as_str() {
                "active" => return Ok(()),
                s @ ("killed" | "deleted" | "pending_delete") => bail!("image {id} is {s}"),
                s if Instant::now() > deadline => bail!("image {id} still {s} after {limit:?}"),
                _ => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }

    /// `DELETE /v2/images/{id}`; an image already gone counts as deleted.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let resp = self.http.delete(self.url(&format!("/{id}"))).send().await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            status => bail!("DELETE /v2/images/{id}: {status}"),
        }
    }
}
