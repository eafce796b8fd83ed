//! Nova's `volume-extended` event: after an attached (`in-use`) volume grows,
//! the volume service POSTs one event per attached server to Nova's
//! `/os-server-external-events`. Nova is played by a recording stand-in (a
//! tiny local HTTP server that records every request); Keystone, for the
//! token test, by another.

mod common;

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::{fake, TestSite};
use scoria_core::config::read_options;
use scoria_core::model::{AccessMode, Attachment};
use scoria_core::status::AttachStatus;
use scoria_volume_manager::nova::{CredentialOptions, NovaClient, NovaConfig};
use serde_json::{json, Value};

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// A recording stand-in for Nova's compute API (and, for the token test,
/// Keystone's `POST /v3/auth/tokens`): it records every request and answers
/// the events POST with `events_status` (200 unless a test changes it).
#[derive(Default)]
struct NovaRecorder {
    requests: Mutex<Vec<Recorded>>,
    events_status: AtomicU16,
    sign_ins: AtomicUsize,
}

impl NovaRecorder {
    async fn start() -> (Arc<Self>, String) {
        let rec = Arc::new(NovaRecorder::default());
        rec.events_status.store(200, Ordering::SeqCst);
        let app = axum::Router::new().fallback(record).with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let root = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (rec, root)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    fn event_posts(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/os-server-external-events"))
            .collect()
    }
}

async fn record(
    State(rec): State<Arc<NovaRecorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rec.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    match (method, uri.path()) {
        (Method::POST, "/v3/auth/tokens") => {
            let n = rec.sign_ins.fetch_add(1, Ordering::SeqCst) + 1;
            let root = format!("http://{}", headers["host"].to_str().unwrap());
            let doc = json!({"token": {
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "catalog": [{"type": "compute", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": format!("{root}/v2.1")},
                ]}],
            }});
            let mut resp = (StatusCode::CREATED, axum::Json(doc)).into_response();
            resp.headers_mut()
                .insert("x-subject-token", format!("tok-{n}").parse().unwrap());
            resp
        }
        (Method::POST, "/v2.1/os-server-external-events") => {
            // With Keystone in play only the latest token is good.
            let current = format!("tok-{}", rec.sign_ins.load(Ordering::SeqCst));
            if let Some(token) = headers.get("x-auth-token") {
                if token.to_str().unwrap() != current {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
            }
            let status = StatusCode::from_u16(rec.events_status.load(Ordering::SeqCst)).unwrap();
            let events: Vec<Value> = body["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut e| {
                    e["code"] = json!(status.as_u16());
                    e["status"] = json!(if status.is_success() {
                        "completed"
                    } else {
                        "failed"
                    });
                    e
                })
                .collect();
            (status, axum::Json(json!({ "events": events }))).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// An in-process site with one `fake` backend whose volume service tells
/// the Nova at `nova_endpoint`.
async fn start(nova_endpoint: &str) -> TestSite {
    let section = [("endpoint_override".to_string(), nova_endpoint.to_string())].into();
    let nova = NovaConfig::from_section(
        &read_options("nova", &section).unwrap(),
        &read_options("nova", &section).unwrap(),
    )
    .unwrap()
    .unwrap();
    let nova = Arc::new(NovaClient::new(nova).unwrap());
    TestSite::start(&[fake("fake", &[])], "3.42", |site| site.nova = Some(nova)).await
}

/// Creates a volume and waits until it is available.
async fn available_volume(site: &TestSite) -> String {
    let id = site.create_volume().await;
    site.wait_volume(&id, |v| v["status"] == "available").await;
    id
}

/// Records attachment `n` of `id` to `server` with `status`.
async fn attach(site: &TestSite, id: &str, n: u32, server: &str, status: AttachStatus) {
    let a = Attachment {
        id: format!("00000000-0000-4000-8000-00000000000{n}"),
        volume_id: id.into(),
        project_id: "admin".into(),
        instance_uuid: Some(server.into()),
        attached_host: Some("compute1".into()),
        mountpoint: Some(format!("/dev/vd{}", (b'a' + n as u8) as char)),
        attach_status: status,
        attach_mode: Some(AccessMode::Rw),
        connector: None,
        connection_info: None,
        auth: None,
        attached_at: None,
        detached_at: None,
        created_at: format!("2026-01-01T00:00:0{n}.000000"),
        updated_at: None,
    };
    assert!(site.db.create_attachment(&a, None).await.unwrap());
    site.db.recompute_attach_status(id).await.unwrap();
}

/// Extends `id` to `new_size` GiB and waits for the outcome.
async fn extend(site: &TestSite, id: &str, new_size: i64) -> Value {
    let body = json!({"os-extend": {"new_size": new_size}});
    site.ok(Method::POST, &format!("volumes/{id}/action"), Some(body))
        .await;
    site.wait_volume(id, |v| v["size"] == new_size && v["status"] != "extending")
        .await
}

const SERVER_A: &str = "6f2c5e0a-1b7d-4c2e-9a53-0d1e2f3a4b5c";
const SERVER_B: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
const SERVER_C: &str = "0badc0de-0000-4000-8000-00000000000c";

#[tokio::test]
async fn extending_an_attached_volume_tells_nova_once_per_server() {
    let (nova, root) = NovaRecorder::start().await;
    let site = start(&format!("{root}/v2.1")).await;
    let id = available_volume(&site).await;
    attach(&site, &id, 1, SERVER_A, AttachStatus::Attached).await;
    attach(&site, &id, 2, SERVER_B, AttachStatus::Attached).await;
    // Not attached (yet): its server is not told.
    attach(&site, &id, 3, SERVER_C, AttachStatus::Attaching).await;
    let v = site.wait_volume(&id, |v| v["status"] == "in-use").await;
    assert_eq!(v["attachments"].as_array().unwrap().len(), 2, "{v}");

    let v = extend(&site, &id, 3).await;
    assert_eq!(v["status"], "in-use", "{v}");
    site.stop().await;

    let posts = nova.requests();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let post = &posts[0];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.path, "/v2.1/os-server-external-events");
    assert_eq!(post.headers["x-openstack-nova-api-version"], "2.51");
    assert_eq!(post.headers["content-type"], "application/json");
    assert!(
        post.headers.get("x-auth-token").is_none(),
        "no Keystone: no token"
    );
    assert_eq!(
        post.body,
        json!({"events": [
            {"name": "volume-extended", "server_uuid": SERVER_A, "tag": id},
            {"name": "volume-extended", "server_uuid": SERVER_B, "tag": id},
        ]})
    );
}

#[tokio::test]
async fn a_volume_without_attachments_is_extended_silently() {
    let (nova, root) = NovaRecorder::start().await;
    let site = start(&format!("{root}/v2.1")).await;
    let id = available_volume(&site).await;
    let v = extend(&site, &id, 2).await;
    assert_eq!(v["status"], "available", "{v}");
    site.stop().await;
    assert!(nova.requests().is_empty(), "{:#?}", nova.requests());
}

#[tokio::test]
async fn a_failing_nova_does_not_fail_the_extend() {
    let (nova, root) = NovaRecorder::start().await;
    nova.events_status.store(500, Ordering::SeqCst);
    let site = start(&format!("{root}/v2.1")).await;
    let id = available_volume(&site).await;
    attach(&site, &id, 1, SERVER_A, AttachStatus::Attached).await;
    extend(&site, &id, 4).await;
    let v = site.wait_volume(&id, |v| v["status"] != "extending").await;
    assert_eq!(
        (v["status"].as_str(), v["size"].as_i64()),
        (Some("in-use"), Some(4)),
        "{v}"
    );
    site.stop().await;
    assert_eq!(nova.event_posts().len(), 1);

    // Nova gone altogether: the same.
    let site = start("http://127.0.0.1:9/v2.1").await;
    let id = available_volume(&site).await;
    attach(&site, &id, 1, SERVER_A, AttachStatus::Attached).await;
    let v = extend(&site, &id, 2).await;
    assert_eq!(v["status"], "in-use", "{v}");
    site.stop().await;
}

#[tokio::test]
async fn with_keystone_the_event_carries_a_token_from_the_catalog_endpoint() {
    let (nova, root) = NovaRecorder::start().await;
    let cfg = NovaConfig {
        endpoint_override: None,
        timeout: Duration::from_secs(5),
        insecure: false,
        interface: "public".into(),
        region_name: Some("RegionOne".into()),
        auth: read_options::<CredentialOptions>(
            "nova",
            &[
                ("auth_url".to_string(), format!("{root}/v3")),
                ("username".to_string(), "cinder".into()),
                ("password".to_string(), "pw".into()),
            ]
            .into(),
        )
        .unwrap()
        .credentials("nova")
        .unwrap(),
    };
    let client = NovaClient::new(cfg).unwrap();
    let servers = [SERVER_A.to_string()];
    client
        .volume_extended("vol-1", &servers, "req-1")
        .await
        .unwrap();
    // Keystone forgets the token (another sign-in superseded it): one retry.
    nova.sign_ins.fetch_add(1, Ordering::SeqCst);
    client
        .volume_extended("vol-2", &servers, "req-2")
        .await
        .unwrap();

    let log: Vec<(String, Option<String>)> = nova
        .requests()
        .iter()
        .map(|r| {
            let token = r
                .headers
                .get("x-auth-token")
                .map(|t| t.to_str().unwrap().to_string());
            (r.path.clone(), token)
        })
        .collect();
    let (auth, events) = (
        "/v3/auth/tokens".to_string(),
        "/v2.1/os-server-external-events".to_string(),
    );
    assert_eq!(
        log,
        [
            (auth.clone(), None),
            (events.clone(), Some("tok-1".into())),
            (events.clone(), Some("tok-1".into())),
            (auth, None),
            (events, Some("tok-3".into())),
        ]
    );
    let sign_in = &nova.requests()[0].body["auth"];
    assert_eq!(sign_in["identity"]["password"]["user"]["name"], "cinder");
    assert_eq!(sign_in["scope"]["project"]["name"], "service");
    assert_eq!(nova.event_posts()[2].body["events"][0]["tag"], "vol-2");
}
