//! Rescheduling, in one process: a create that fails on one backend is
//! retried on another, and after `scheduler_max_attempts` the volume ends in
//! `error` with a message naming every failure; a permanent failure is not
//! retried. The failures are injected (`fault_inject`) around the test-only
//! `fake` driver.

mod common;

use common::{fake, TestSite};
use scoria_core::config::BackendConfig;

fn backend(name: &str, capacity: &str, fail: &str) -> BackendConfig {
    fake(
        name,
        &[("fake_capacity_gb", capacity), ("fault_inject", fail)],
    )
}

async fn start(backends: &[BackendConfig], max_attempts: u32) -> TestSite {
    TestSite::start(backends, "3.3", |site| {
        site.placement.max_attempts = max_attempts
    })
    .await
}

#[tokio::test]
async fn failed_create_moves_to_another_backend() {
    // The bigger backend wins the first placement, and fails it.
    let c = start(
        &[
            backend("broken", "1000", "create_volume"),
            backend("good", "100", ""),
        ],
        3,
    )
    .await;
    let id = c.create_volume().await;
    let v = c.wait_volume(&id, |v| v["status"] != "creating").await;
    assert_eq!(v["status"], "available", "{v}");
    assert_eq!(v["os-vol-host-attr:host"], "testhost@good#good", "{v}");
}

#[tokio::test]
async fn attempts_are_bounded_and_explained() {
    let c = start(
        &[
            backend("a", "100", "create_volume"),
            backend("b", "200", "create_volume"),
            backend("c", "300", "create_volume"),
        ],
        2,
    )
    .await;
    let id = c.create_volume().await;
    let v = c.wait_volume(&id, |v| v["status"] != "creating").await;
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

#[tokio::test]
async fn a_permanent_failure_is_not_rescheduled() {
    let c = start(
        &[
            backend("broken", "1000", "create_volume:permanent"),
            backend("good", "100", ""),
        ],
        3,
    )
    .await;
    let id = c.create_volume().await;
    let v = c.wait_volume(&id, |v| v["status"] != "creating").await;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["os-vol-host-attr:host"], "testhost@broken#broken", "{v}");
}
