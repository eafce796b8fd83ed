//! Rescheduling, in one process: a create that fails on one backend is
//! retried on another, and after `scheduler_max_attempts` the volume ends in
//! `error` with a message naming every failure. The failures come from the
//! fault-injection `fake` driver.

use std::collections::BTreeMap;
use std::time::Duration;

use scoria::services::{self, Site};
use scoria_api::AuthStrategy;
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_db::Db;
use serde_json::{json, Value};
use tokio::sync::watch;

struct Cluster {
    base: String,
    http: reqwest::Client,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn fake(name: &str, capacity: u32, fail: &str) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        driver: "fake".into(),
        volume_backend_name: name.into(),
        options: BTreeMap::from([
            ("fake_capacity_gb".to_string(), capacity.to_string()),
            ("fake_fail".to_string(), fail.to_string()),
        ]),
    }
}

async fn start(backends: &[BackendConfig], max_attempts: u32) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.ensure_default_type().await.unwrap();
    let bus = Bus::in_process();
    let mut site = Site::new("testhost", "nova");
    site.stats_interval = Duration::from_secs(1);
    site.placement.max_attempts = max_attempts;
    let (stop, stopped) = watch::channel(false);
    for b in backends {
        services::spawn_volume(&db, &bus, &site, b, stopped.clone()).unwrap();
    }
    services::spawn_scheduler(&db, &bus, &site, stopped);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v3", listener.local_addr().unwrap());
    let app = scoria_api::router(services::api_state(&db, &bus, &site, AuthStrategy::NoAuth));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let c = Cluster {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
        _dir: dir,
    };
    c.wait_for_pools(backends.len()).await;
    c
}

impl Cluster {
    async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/{path}", self.base))
            .header("X-Auth-Token", "admin:admin")
            .header("OpenStack-API-Version", "volume 3.3")
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    async fn create_volume(&self) -> String {
        let resp = self
            .http
            .post(format!("{}/volumes", self.base))
            .header("X-Auth-Token", "admin:admin")
            .json(&json!({"volume": {"size": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        body["volume"]["id"].as_str().unwrap().to_string()
    }

    /// Waits until every backend has reported its pool.
    async fn wait_for_pools(&self, n: usize) {
        for _ in 0..100 {
            let pools = self.get("scheduler-stats/get_pools").await;
            if pools["pools"].as_array().map_or(0, Vec::len) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not every backend reported its stats");
    }

    /// Polls until the volume leaves `creating`.
    async fn settled(&self, id: &str) -> Value {
        for _ in 0..300 {
            let v = self.get(&format!("volumes/{id}")).await["volume"].clone();
            if v["status"] != "creating" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("volume {id} stayed in creating");
    }
}

#[tokio::test]
async fn failed_create_moves_to_another_backend() {
    // The bigger backend wins the first placement, and fails it.
    let c = start(
        &[fake("broken", 1000, "create_volume"), fake("good", 100, "")],
        3,
    )
    .await;
    let id = c.create_volume().await;
    let v = c.settled(&id).await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["os-vol-host-attr:host"], "testhost@good#good", "{v}");
}

#[tokio::test]
async fn attempts_are_bounded_and_explained() {
    let c = start(
        &[
            fake("a", 100, "create_volume"),
            fake("b", 200, "create_volume"),
            fake("c", 300, "create_volume"),
        ],
        2,
    )
    .await;
    let id = c.create_volume().await;
    let v = c.settled(&id).await;
    assert_eq!(v["status"], "error", "{v}");
    let messages = c.get(&format!("messages?resource_uuid={id}")).await;
    let text = messages["messages"][0]["user_message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("testhost@c") && text.contains("testhost@b"),
        "{messages}"
    );
    assert!(text.contains("injected failure"), "{text}");
    assert!(
        !text.contains("testhost@a:"),
        "only two attempts may be made: {text}"
    );
}
