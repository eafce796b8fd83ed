//! Revert to a snapshot (3.40) on a backend that can neither revert in place
//! nor open volumes on its host (the `fake` driver): the volume manager's
//! generic path fails clean. The volume is `available` again with its data
//! untouched, the snapshot too, and the owner gets a user message saying why.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
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

async fn start() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db.ensure_default_type().await.unwrap();
    let bus = Bus::in_process();
    let mut site = Site::new("testhost", "nova");
    site.stats_interval = Duration::from_secs(1);
    let (stop, stopped) = watch::channel(false);
    let fake = BackendConfig {
        name: "fake".into(),
        driver: "fake".into(),
        volume_backend_name: "fake".into(),
        options: BTreeMap::new(),
    };
    services::spawn_volume(&db, &bus, &site, &fake, stopped.clone()).unwrap();
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
    for _ in 0..100 {
        let (_, pools) = c.call(Method::GET, "scheduler-stats/get_pools", None).await;
        if pools["pools"].as_array().is_some_and(|p| !p.is_empty()) {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the fake backend never reported its pool");
}

impl Cluster {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header("X-Auth-Token", "admin:admin")
            .header("OpenStack-API-Version", "volume 3.40");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until the status of its `key` object is `want`.
    async fn wait(&self, path: &str, key: &str, want: &str) -> Value {
        for _ in 0..300 {
            let (_, body) = self.call(Method::GET, path, None).await;
            if body[key]["status"] == want {
                return body[key].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never reached {want}");
    }
}

#[tokio::test]
async fn revert_without_a_way_to_copy_fails_clean() {
    let s = start().await;
    let (code, body) = s
        .call(
            Method::POST,
            "volumes",
            Some(json!({"volume": {"size": 1}})),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let vid = body["volume"]["id"].as_str().unwrap().to_string();
    s.wait(&format!("volumes/{vid}"), "volume", "available")
        .await;
    let snap = json!({"snapshot": {"volume_id": vid}});
    let (code, body) = s.call(Method::POST, "snapshots", Some(snap)).await;
    assert_eq!(code, 202, "{body}");
    let sid = body["snapshot"]["id"].as_str().unwrap().to_string();
    s.wait(&format!("snapshots/{sid}"), "snapshot", "available")
        .await;

    let revert = json!({"revert": {"snapshot_id": sid}});
    let path = format!("volumes/{vid}/action");
    let (code, body) = s.call(Method::POST, &path, Some(revert)).await;
    assert_eq!(code, 202, "{body}");

    let mut messages = Value::Null;
    for _ in 0..300 {
        (_, messages) = s
            .call(Method::GET, &format!("messages?resource_uuid={vid}"), None)
            .await;
        if messages["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = messages["messages"][0]["user_message"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("revert volume to snapshot:"), "{messages}");
    assert!(text.contains("neither revert in place"), "{text}");
    s.wait(&format!("volumes/{vid}"), "volume", "available")
        .await;
    s.wait(&format!("snapshots/{sid}"), "snapshot", "available")
        .await;
}
