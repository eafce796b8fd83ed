//! `scoria serve --config-file`: the file's `enabled_backends` replace the
//! built-in `file` backend, every one in the same process, and `[nova]` is
//! wired to the volume services. Without a file nothing changes.

use std::path::Path;
use std::time::Duration;

use scoria::serve::{self, ServeOptions};
use serde_json::Value;

fn options(data_dir: &Path, config_file: Option<&Path>) -> ServeOptions {
    ServeOptions {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        stats_interval: Some(1),
        config_file: config_file.map(Path::to_path_buf),
    }
}

const CONFIG: &str = "
[DEFAULT]
host = servetest
enabled_backends = files,faulty
rpc_response_timeout = 7

[files]
volume_driver = file
volume_backend_name = files

[faulty]
volume_driver = fake
volume_backend_name = faulty
fault_inject = initialize_connection

[nova]
endpoint_override = http://127.0.0.1:9/v2.1
";

/// GET `path` of the v3 api as an administrator.
async fn get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    let resp = http
        .get(format!("{base}/{path}"))
        .header("X-Auth-Token", "admin:admin")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    resp.json().await.unwrap()
}

#[tokio::test]
async fn two_backends_from_the_config_file_come_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let conf = dir.path().join("scoria.conf");
    std::fs::write(&conf, CONFIG).unwrap();

    let started = serve::start(&options(&data, Some(&conf))).await.unwrap();
    assert!(
        started.site.nova.is_some(),
        "[nova] reaches the volume services"
    );
    assert_eq!(started.site.rpc_timeout, Duration::from_secs(7));
    let names: Vec<&str> = started.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["files", "faulty"]);
    assert_eq!(
        started.backends[0].options["file_volumes_dir"],
        data.join("volumes-files").display().to_string(),
        "a file backend without file_volumes_dir gets one in the data dir"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v3", listener.local_addr().unwrap());
    let app = started.app.clone();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    let mut volume_services = Vec::new();
    for _ in 0..100 {
        let services = get(&http, &base, "os-services").await;
        volume_services = services["services"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["binary"] == "cinder-volume" && s["state"] == "up")
            .map(|s| s["host"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        volume_services.sort();
        if volume_services.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(volume_services, ["servetest@faulty", "servetest@files"]);
    for _ in 0..100 {
        let pools = get(&http, &base, "scheduler-stats/get_pools").await;
        if pools["pools"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pools = get(&http, &base, "scheduler-stats/get_pools").await;
    assert_eq!(pools["pools"].as_array().unwrap().len(), 2, "{pools}");

    server.abort();
    started.stop().await.unwrap();
}

#[test]
fn without_a_config_file_serve_runs_the_builtin_backend() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), None);
    opts.stats_interval = None;
    let (site, backends) = serve::plan(&opts, dir.path()).unwrap();
    assert_eq!(backends.len(), 1);
    let b = &backends[0];
    assert_eq!((b.name.as_str(), b.driver.as_str()), ("file", "file"));
    assert_eq!(
        b.options["file_volumes_dir"],
        dir.path().join("volumes").display().to_string()
    );
    assert_eq!(site.stats_interval, Duration::from_secs(10));
    assert_eq!(site.availability_zone, "nova");
    assert!(site.nova.is_none());
}

#[test]
fn a_config_file_without_backends_keeps_the_builtin_one() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("scoria.conf");
    std::fs::write(
        &conf,
        "[DEFAULT]\nstorage_availability_zone = az9\nbackend_stats_polling_interval = 3\n",
    )
    .unwrap();
    let mut opts = options(dir.path(), Some(&conf));
    opts.stats_interval = None;
    let (site, backends) = serve::plan(&opts, dir.path()).unwrap();
    assert_eq!(backends.len(), 1);
    assert_eq!(backends[0].name, "file");
    assert_eq!(site.availability_zone, "az9");
    assert_eq!(site.stats_interval, Duration::from_secs(3));
    // The command line's (or SCORIA_STATS_INTERVAL's) interval wins.
    opts.stats_interval = Some(2);
    let (site, _) = serve::plan(&opts, dir.path()).unwrap();
    assert_eq!(site.stats_interval, Duration::from_secs(2));
}
