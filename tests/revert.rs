//! Revert to a snapshot (3.40) on a backend that can neither revert in place
//! nor open volumes on its host (the `fake` driver): the volume manager's
//! generic path fails clean. The volume is `available` again with its data
//! untouched, the snapshot too, and the owner gets a user message saying why.

mod common;

use common::{fake, TestSite};
use reqwest::Method;
use serde_json::json;

/// Polls `path` until the status of its `key` object is `want`.
async fn wait(s: &TestSite, path: &str, key: &str, want: &str) {
    s.wait_until(&format!("{path} is {want}"), || async {
        s.get(path).await[key]["status"] == want
    })
    .await;
}

#[tokio::test]
async fn revert_without_a_way_to_copy_fails_clean() {
    let s = TestSite::start(&[fake("fake", &[])], "3.40", |_| {}).await;
    let vid = s.create_volume().await;
    wait(&s, &format!("volumes/{vid}"), "volume", "available").await;
    let snap = json!({"snapshot": {"volume_id": vid}});
    let (code, body) = s.call(Method::POST, "snapshots", Some(snap)).await;
    assert_eq!(code, 202, "{body}");
    let sid = body["snapshot"]["id"].as_str().unwrap().to_string();
    wait(&s, &format!("snapshots/{sid}"), "snapshot", "available").await;

    let revert = json!({"revert": {"snapshot_id": sid}});
    let path = format!("volumes/{vid}/action");
    let (code, body) = s.call(Method::POST, &path, Some(revert)).await;
    assert_eq!(code, 202, "{body}");

    let list = format!("messages?resource_uuid={vid}");
    s.wait_until("the revert left a message", || async {
        s.get(&list).await["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    let messages = s.get(&list).await;
    let text = messages["messages"][0]["user_message"]
        .as_str()
        .unwrap_or_default();
    assert!(text.starts_with("revert volume to snapshot:"), "{messages}");
    assert!(text.contains("neither revert in place"), "{text}");
    wait(&s, &format!("volumes/{vid}"), "volume", "available").await;
    wait(&s, &format!("snapshots/{sid}"), "snapshot", "available").await;
}
