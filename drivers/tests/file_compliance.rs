//! The compliance kit run against the `file` driver.
//!
//! `local_fs` uses a temporary directory on whatever filesystem holds it (ext4
//! in CI, so snapshots and clones take the sparse-copy path). `reflink_fs`
//! runs the same checks on a reflink-capable filesystem (XFS with
//! `reflink=1`, or btrfs) mounted where `SCORIA_REFLINK_DIR` points; it is
//! ignored by plain `cargo test` and fails loudly when that directory is
//! missing or cannot reflink:
//!
//! ```text
//! SCORIA_REFLINK_DIR=/mnt/xfs cargo test -p scoria-drivers --test file_compliance -- --ignored
//! ```

use std::path::Path;
use std::sync::Arc;

use scoria_core::config::BackendConfig;
use scoria_drivers::compliance::Fixture;
use scoria_drivers::{registry, VolumeDriver};

const REFLINK_ENV: &str = "SCORIA_REFLINK_DIR";

async fn file_driver(dir: &Path) -> Arc<dyn VolumeDriver> {
    let config = BackendConfig {
        name: "files".into(),
        driver: "file".into(),
        volume_backend_name: "files".into(),
        options: [(
            "file_volumes_dir".to_string(),
            dir.to_str().expect("UTF-8 temp path").to_string(),
        )]
        .into(),
    };
    let driver = registry::create(&config).expect("file driver config");
    driver.setup().await.expect("file driver setup");
    driver
}

async fn on_tempdir() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    Fixture::new(file_driver(dir.path()).await).keeping(dir)
}

async fn on_reflink_dir() -> Fixture {
    let root = std::env::var_os(REFLINK_ENV).unwrap_or_else(|| {
        panic!("{REFLINK_ENV} is not set: point it at a directory on an XFS (reflink=1) or btrfs filesystem")
    });
    let dir = tempfile::tempdir_in(&root)
        .unwrap_or_else(|e| panic!("{REFLINK_ENV}={root:?} is not a writable directory: {e}"));
    let driver = file_driver(dir.path()).await;
    assert!(
        driver.capabilities().native_clone,
        "{REFLINK_ENV}={root:?} does not support reflinks (FICLONE); use XFS with reflink=1 or btrfs"
    );
    Fixture::new(driver).keeping(dir)
}

mod local_fs {
    scoria_drivers::compliance_tests!(super::on_tempdir);
}

mod reflink_fs {
    scoria_drivers::compliance_tests!(
        super::on_reflink_dir,
        #[ignore = "needs SCORIA_REFLINK_DIR on an XFS/btrfs reflink filesystem; run by tests/run.sh"]
    );
}
