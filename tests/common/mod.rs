//! An in-process Scoria site for the integration tests: SQLite in a
//! temporary directory, the in-process bus, one scheduler, the given backends
//! and a noauth api on a loopback port, spoken to as an administrator.

// Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use scoria::services::{self, Site, Task};
use scoria_api::AuthStrategy;
use scoria_bus::Bus;
use scoria_core::config::BackendConfig;
use scoria_db::Db;
use serde_json::{json, Value};
use tokio::sync::watch;

/// A test-only `fake` backend called `name` with these options (those of the
/// fault-injection layer among them).
pub fn fake(name: &str, options: &[(&str, &str)]) -> BackendConfig {
    BackendConfig {
        name: name.into(),
        driver: "fake".into(),
        volume_backend_name: name.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A running site; dropping it stops the services.
pub struct TestSite {
    base: String,
    http: reqwest::Client,
    /// The microversion every request asks for.
    version: &'static str,
    pub db: Db,
    stop: watch::Sender<bool>,
    volumes: Vec<Task>,
    _dir: tempfile::TempDir,
}

impl TestSite {
    /// Starts a site with `backends`, after `configure` has adjusted the
    /// site's settings (stats come every second), and waits until every
    /// backend has reported its pool. Requests ask for microversion `version`.
    pub async fn start(
        backends: &[BackendConfig],
        version: &'static str,
        configure: impl FnOnce(&mut Site),
    ) -> TestSite {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        db.ensure_default_type().await.unwrap();
        let bus = Bus::in_process();
        let mut site = Site::new("testhost", "nova");
        site.stats_interval = Duration::from_secs(1);
        configure(&mut site);
        let (stop, stopped) = watch::channel(false);
        let volumes = backends
            .iter()
            .map(|b| services::spawn_volume(&db, &bus, &site, b, stopped.clone()).unwrap())
            .collect();
        services::spawn_scheduler(&db, &bus, &site, stopped);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/v3", listener.local_addr().unwrap());
        let app = scoria_api::router(services::api_state(&db, &bus, &site, AuthStrategy::NoAuth));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let s = TestSite {
            base,
            http: reqwest::Client::new(),
            version,
            db,
            stop,
            volumes,
            _dir: dir,
        };
        s.wait_until("every backend reported its pool", || async {
            let pools = s.get("scheduler-stats/get_pools").await;
            pools["pools"].as_array().map_or(0, Vec::len) == backends.len()
        })
        .await;
        s
    }

    /// Sends a request; its status and JSON body (`null` when there is none).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .header("X-Auth-Token", "admin:admin")
            .header("OpenStack-API-Version", format!("volume {}", self.version));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends a request that must succeed; its JSON body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// `GET path`, which must succeed.
    pub async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None).await
    }

    /// Asks for a 1 GiB volume; its id (the create is not waited for).
    pub async fn create_volume(&self) -> String {
        let body = json!({"volume": {"size": 1}});
        let (status, v) = self.call(Method::POST, "volumes", Some(body)).await;
        assert_eq!(status, 202, "{v}");
        v["volume"]["id"].as_str().unwrap().to_string()
    }

    /// Polls the volume until `done` holds for it; the volume then.
    pub async fn wait_volume(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            last = self.get(&format!("volumes/{id}")).await["volume"].clone();
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("volume {id} did not settle: {last}");
    }

    /// Polls until `done` answers true (for up to 30 s).
    pub async fn wait_until<F: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        done: impl Fn() -> F,
    ) {
        for _ in 0..300 {
            if done().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting until {what}");
    }

    /// Stops the services; the volume services finish their operations first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for v in self.volumes {
            v.await.unwrap().unwrap();
        }
    }
}
