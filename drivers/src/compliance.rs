//! The compliance kit: one behavioural test suite every driver must pass.
//!
//! A driver's test file names an async constructor of a fresh, set-up driver
//! in one line:
//!
//! ```text
//! async fn fixture() -> Fixture {
//!     let dir = tempfile::tempdir().unwrap();
//!     let driver = my_driver_in(dir.path()).await; // setup() already done
//!     Fixture::new(driver).keeping(dir)
//! }
//! scoria_drivers::compliance_tests!(fixture);
//! ```
//!
//! That expands to one `#[test]` per check below, so `cargo test` lists each
//! check by name. Every check gets its own driver from the constructor, and
//! everything a check creates is deleted afterwards (a failing delete fails the
//! check). Checks that need a capability the driver does not declare pass
//! without doing anything and print why.

use std::collections::HashSet;
use std::fmt::Display;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use scoria_core::stats::{Capabilities, PoolStats};
use scoria_core::Capacity;

use crate::{
    AccessMode, Chap, Connector, DriverError, DriverResult, ExportSpec, SnapshotSpec, VolumeDriver,
    VolumeSpec,
};

/// Expands to one `#[test]` per compliance check.
///
/// `make` is a function or closure returning a future of
/// [`compliance::Fixture`](crate::compliance::Fixture); it is called once per
/// check. Attributes after it, such as
/// `compliance_tests!(make, #[ignore = "why"])`, go on every generated test.
#[macro_export]
macro_rules! compliance_tests {
    (@each $attrs:tt $make:expr; $($check:ident),+) => {
        $( $crate::compliance_tests!(@one $attrs $make; $check); )+
    };
    (@one [$($attr:tt)*] $make:expr; $check:ident) => {
        #[test]
        $($attr)*
        fn $check() {
            $crate::compliance::run_check(
                stringify!($check),
                $make,
                $crate::compliance::$check,
            );
        }
    };
    ($make:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::compliance_tests!(@each [$(#[$attr])*] $make;
            setup_is_idempotent,
            stats_contract,
            stats_follow_a_create,
            created_volume_has_its_size,
            delete_volume_is_idempotent,
            delete_snapshot_is_idempotent,
            initialize_connection_reports_a_type,
            terminate_connection_is_idempotent,
            snapshot_of_unknown_volume_is_not_found,
            volume_from_unknown_snapshot_is_not_found,
            clone_of_unknown_volume_is_not_found,
            snapshot_keeps_original_data,
            clone_keeps_original_data,
            extend_keeps_data,
            shrink_is_refused,
            revert_restores_snapshot_data
        );
    };
}

/// What a check reports: `Err` carries a message saying what went wrong.
pub type CheckResult = Result<(), String>;

/// A driver under test, plus whatever must outlive it (a temporary directory,
/// a mounted filesystem, a server process).
pub struct Fixture {
    driver: Arc<dyn VolumeDriver>,
    _keep: Option<Box<dyn Send>>,
}

impl Fixture {
    /// Wraps a driver on which [`VolumeDriver::setup`] has already succeeded.
    pub fn new(driver: Arc<dyn VolumeDriver>) -> Self {
        Self {
            driver,
            _keep: None,
        }
    }

    /// Keeps `guard` alive until the check and its cleanup are over.
    pub fn keeping(self, guard: impl Send + 'static) -> Self {
        Self {
            _keep: Some(Box::new(guard)),
            ..self
        }
    }
}

/// Runs one check against a fresh driver from `make`, then deletes what the
/// check created. Panics with the check's message on failure. Called by
/// [`compliance_tests!`](crate::compliance_tests).
pub fn run_check<M, MF, C, CF>(name: &str, make: M, check: C)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Fixture>,
    C: FnOnce(Kit) -> CF,
    CF: Future<Output = CheckResult>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime");
    let outcome = runtime.block_on(async {
        let fixture = make().await;
        let kit = Kit::new(Arc::clone(&fixture.driver)).await?;
        let checked = check(kit.clone()).await;
        match (checked, kit.cleanup().await) {
            (Err(failed), Err(cleanup)) => Err(format!("{failed}; cleanup also failed: {cleanup}")),
            (checked, cleaned) => checked.and(cleaned),
        }
    });
    if let Err(message) = outcome {
        panic!("compliance check {name} failed: {message}");
    }
}

const GIB: u64 = 1 << 30;
/// Where the data checks write: the start, an unaligned spot, and the end of the first GiB.
const OFFSETS: [u64; 3] = [0, 4096 * 3 + 17, GIB - 64];
const ORIGINAL: &str = "original";
const OVERWRITTEN: &str = "overwritten";
const NO_LOCAL_ATTACH: &str = "the driver does not declare local_attach";
const NO_REVERT: &str = "the driver does not declare snapshot_revert";

/// The 32 bytes a data check writes at `offset`, distinct per tag and offset.
fn pattern(tag: &str, offset: u64) -> Vec<u8> {
    format!("{tag:<12}@{offset:<19}").into_bytes()
}

fn gib(size: i64) -> u64 {
    u64::try_from(size).unwrap_or(0) * GIB
}

/// Reports a check that does not apply to this driver as passed, saying why.
fn skipped(reason: &str) -> CheckResult {
    eprintln!("skipped: {reason}");
    Ok(())
}

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($message)+));
        }
    };
}

/// Adds what was being done to an error.
trait Context<T> {
    fn ctx(self, doing: &str) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, doing: &str) -> Result<T, String> {
        self.map_err(|e| format!("{doing}: {e}"))
    }
}

fn expect_not_found<T>(result: DriverResult<T>, doing: &str) -> CheckResult {
    match result {
        Err(DriverError::NotFound { .. }) => Ok(()),
        Err(other) => Err(format!("{doing}: expected NotFound, got {other}")),
        Ok(_) => Err(format!("{doing}: expected NotFound, but it succeeded")),
    }
}

/// Something a check created, to delete afterwards.
enum Created {
    Volume(VolumeSpec),
    Snapshot(SnapshotSpec),
}

/// The driver under test and the helpers the checks share. Records every
/// volume and snapshot it asks for so they can be deleted after the check.
#[derive(Clone)]
pub struct Kit {
    driver: Arc<dyn VolumeDriver>,
    caps: Capabilities,
    pool: Option<String>,
    created: Arc<Mutex<Vec<Created>>>,
}

impl Kit {
    async fn new(driver: Arc<dyn VolumeDriver>) -> Result<Self, String> {
        let stats = driver.stats().await.ctx("stats")?;
        Ok(Self {
            caps: driver.capabilities(),
            pool: stats.pools.first().map(|p| p.pool_name.clone()),
            created: Arc::default(),
            driver,
        })
    }

    /// The smallest volume size the driver accepts.
    fn base_size(&self) -> i64 {
        self.caps.min_volume_gb.max(1)
    }

    /// A description of a volume with a new id; nothing is created.
    fn spec(&self, size: i64) -> VolumeSpec {
        VolumeSpec {
            id: uuid::Uuid::new_v4().to_string(),
            size,
            pool: self.pool.clone(),
            provider_location: None,
            extra_specs: Default::default(),
        }
    }

    fn snapshot_spec(&self, volume: &VolumeSpec) -> SnapshotSpec {
        SnapshotSpec {
            id: uuid::Uuid::new_v4().to_string(),
            volume_id: volume.id.clone(),
            size: volume.size,
            provider_location: None,
        }
    }

    fn record(&self, created: Created) {
        self.created.lock().expect("kit state").push(created);
    }

    /// Records `volume` for cleanup; done before asking, so a half-made one is removed too.
    fn will_create(&self, volume: &VolumeSpec) {
        self.record(Created::Volume(volume.clone()));
    }

    async fn create_volume(&self, size: i64) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        self.will_create(&volume);
        self.driver
            .create_volume(&volume)
            .await
            .ctx("create_volume")?;
        Ok(volume)
    }

    async fn snapshot(&self, volume: &VolumeSpec) -> Result<SnapshotSpec, String> {
        let snapshot = self.snapshot_spec(volume);
        self.record(Created::Snapshot(snapshot.clone()));
        self.driver
            .create_snapshot(&snapshot, volume)
            .await
            .ctx("create_snapshot")?;
        Ok(snapshot)
    }

    async fn volume_from_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        size: i64,
    ) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        self.will_create(&volume);
        self.driver
            .create_volume_from_snapshot(&volume, snapshot)
            .await
            .ctx("create_volume_from_snapshot")?;
        Ok(volume)
    }

    async fn clone_of(&self, source: &VolumeSpec, size: i64) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        self.will_create(&volume);
        self.driver
            .create_cloned_volume(&volume, source)
            .await
            .ctx("create_cloned_volume")?;
        Ok(volume)
    }

    /// Deletes everything the check created, newest first.
    async fn cleanup(&self) -> CheckResult {
        let created = std::mem::take(&mut *self.created.lock().expect("kit state"));
        for item in created.iter().rev() {
            match item {
                Created::Volume(v) => self
                    .driver
                    .delete_volume(v)
                    .await
                    .ctx("cleanup delete_volume")?,
                Created::Snapshot(s) => self
                    .driver
                    .delete_snapshot(s)
                    .await
                    .ctx("cleanup delete_snapshot")?,
            }
        }
        Ok(())
    }

    /// Attaches `volume` locally, runs `io` on its path off the runtime, and detaches.
    async fn with_device<T, F>(&self, volume: &VolumeSpec, io: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
    {
        let device = self.driver.local_attach(volume).await.ctx("local_attach")?;
        let done = tokio::task::spawn_blocking(move || io(&device.path))
            .await
            .ctx("device I/O task")
            .and_then(|r| r.ctx(&format!("I/O on volume {}", volume.id)));
        self.driver.local_detach(volume).await.ctx("local_detach")?;
        done
    }

    /// Writes `tag`'s pattern at each offset of the volume.
    async fn write(&self, volume: &VolumeSpec, tag: &'static str, offsets: &[u64]) -> CheckResult {
        let offsets = offsets.to_vec();
        self.with_device(volume, move |path| {
            let device = OpenOptions::new().write(true).open(path)?;
            for offset in offsets {
                device.write_all_at(&pattern(tag, offset), offset)?;
            }
            device.sync_all()
        })
        .await
    }

    /// Fails unless `tag`'s pattern is found at each offset of the volume.
    async fn expect(&self, volume: &VolumeSpec, tag: &'static str, offsets: &[u64]) -> CheckResult {
        let offsets = offsets.to_vec();
        let found = self
            .with_device(volume, move |path| {
                let device = OpenOptions::new().read(true).open(path)?;
                offsets
                    .into_iter()
                    .map(|offset| {
                        let mut buf = vec![0; pattern(tag, offset).len()];
                        device.read_exact_at(&mut buf, offset)?;
                        Ok((offset, buf))
                    })
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .await?;
        for (offset, bytes) in found {
            ensure!(
                bytes == pattern(tag, offset),
                "volume {} at offset {offset}: expected the {tag:?} pattern, found {:?}",
                volume.id,
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    /// Fails unless the locally attached volume is exactly `size` GiB long.
    async fn expect_size(&self, volume: &VolumeSpec, size: i64) -> CheckResult {
        let len = self
            .with_device(volume, |path| {
                OpenOptions::new()
                    .read(true)
                    .open(path)?
                    .seek(SeekFrom::End(0))
            })
            .await?;
        ensure!(
            len == gib(size),
            "volume {} should be {size} GiB ({} bytes) but the device has {len} bytes",
            volume.id,
            gib(size)
        );
        Ok(())
    }

    /// The sum of the pools' provisioned capacity, or `None` if no pool reports it.
    async fn provisioned_gb(&self) -> Result<Option<f64>, String> {
        let stats = self.driver.stats().await.ctx("stats")?;
        Ok(stats
            .pools
            .iter()
            .filter_map(|p| p.provisioned_capacity_gb)
            .reduce(|a, b| a + b))
    }
}

/// An export for a made-up attachment of the compliance kit's host.
fn export(attachment_id: &str) -> ExportSpec {
    ExportSpec {
        attachment_id: attachment_id.into(),
        connector: connector(),
        access_mode: AccessMode::Rw,
        auth: Chap {
            username: "compliance".into(),
            password: "compliance-secret".into(),
        },
    }
}

fn connector() -> Connector {
    let serde_json::Value::Object(map) = serde_json::json!({
        "host": "compliance-kit",
        "initiator": "iqn.2004-10.org.scoria:compliance-kit",
        "ip": "127.0.0.1",
        "multipath": false,
        "platform": "x86_64",
        "os_type": "linux",
    }) else {
        unreachable!("an object literal")
    };
    map
}

/// Setup may run again (every restart of the service does) and the driver still works.
pub async fn setup_is_idempotent(kit: Kit) -> CheckResult {
    kit.driver.setup().await.ctx("second setup")?;
    kit.driver.setup().await.ctx("third setup")?;
    kit.driver.stats().await.ctx("stats after repeated setup")?;
    kit.create_volume(kit.base_size()).await?;
    Ok(())
}

/// Stats have the backend-wide fields, at least one pool, sane capacities,
/// and no pool claims a feature the driver's capabilities do not declare.
pub async fn stats_contract(kit: Kit) -> CheckResult {
    let stats = kit.driver.stats().await.ctx("stats")?;
    for (field, value) in [
        ("volume_backend_name", &stats.volume_backend_name),
        ("vendor_name", &stats.vendor_name),
        ("driver_version", &stats.driver_version),
        ("storage_protocol", &stats.storage_protocol),
    ] {
        ensure!(!value.trim().is_empty(), "stats: {field} is empty");
    }
    ensure!(!stats.pools.is_empty(), "stats: no pools");
    let mut names = HashSet::new();
    for pool in &stats.pools {
        check_pool(pool, &kit.caps)?;
        ensure!(
            names.insert(&pool.pool_name),
            "stats: pool {} is listed twice",
            pool.pool_name
        );
    }
    Ok(())
}

fn check_pool(pool: &PoolStats, caps: &Capabilities) -> CheckResult {
    let name = &pool.pool_name;
    ensure!(!name.trim().is_empty(), "stats: a pool has an empty name");
    for (field, capacity) in [
        ("total_capacity_gb", pool.total_capacity_gb),
        ("free_capacity_gb", pool.free_capacity_gb),
    ] {
        if let Capacity::Gb(gb) = capacity {
            ensure!(gb.is_finite() && gb >= 0.0, "pool {name}: {field} is {gb}");
        }
    }
    if let (Some(total), Some(free)) = (pool.total_capacity_gb.gb(), pool.free_capacity_gb.gb()) {
        ensure!(
            free <= total,
            "pool {name}: free {free} GiB exceeds total {total} GiB"
        );
    }
    if let Some(gb) = pool.provisioned_capacity_gb {
        ensure!(
            gb.is_finite() && gb >= 0.0,
            "pool {name}: provisioned_capacity_gb is {gb}"
        );
    }
    ensure!(
        (0.0..=100.0).contains(&pool.reserved_percentage),
        "pool {name}: reserved_percentage {} is not within 0..=100",
        pool.reserved_percentage
    );
    let ratio = &pool.max_over_subscription_ratio;
    ensure!(
        ratio.eq_ignore_ascii_case("auto") || ratio.parse::<f64>().is_ok_and(|r| r >= 1.0),
        "pool {name}: max_over_subscription_ratio {ratio:?} is neither 'auto' nor a number >= 1"
    );
    ensure!(
        pool.thin_provisioning_support || pool.thick_provisioning_support,
        "pool {name}: supports neither thin nor thick provisioning"
    );
    for (flag, reported, declared) in [
        (
            "thin_provisioning_support",
            pool.thin_provisioning_support,
            caps.thin_provisioning,
        ),
        (
            "thick_provisioning_support",
            pool.thick_provisioning_support,
            caps.thick_provisioning,
        ),
        ("multiattach", pool.multiattach, caps.multiattach),
        (
            "online_extend_support",
            pool.online_extend_support,
            caps.online_extend,
        ),
    ] {
        ensure!(
            declared || !reported,
            "pool {name}: reports {flag} but the driver's capabilities do not declare it"
        );
    }
    Ok(())
}

/// Provisioned capacity grows when a volume is created and stats are fetched again.
pub async fn stats_follow_a_create(kit: Kit) -> CheckResult {
    let Some(before) = kit.provisioned_gb().await? else {
        return skipped("no pool reports provisioned_capacity_gb");
    };
    let volume = kit.create_volume(kit.base_size()).await?;
    let after = kit.provisioned_gb().await?.unwrap_or_default();
    ensure!(
        after > before,
        "provisioned_capacity_gb did not grow after creating a {} GiB volume: {before} -> {after}",
        volume.size
    );
    Ok(())
}

/// A new volume, attached locally, is exactly its size.
pub async fn created_volume_has_its_size(kit: Kit) -> CheckResult {
    if !kit.caps.local_attach {
        return skipped(NO_LOCAL_ATTACH);
    }
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.expect_size(&volume, volume.size).await
}

/// Deleting an unknown volume succeeds, and so does deleting one twice.
pub async fn delete_volume_is_idempotent(kit: Kit) -> CheckResult {
    let unknown = kit.spec(kit.base_size());
    kit.driver
        .delete_volume(&unknown)
        .await
        .ctx("delete_volume of an unknown id")?;
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.driver
        .delete_volume(&volume)
        .await
        .ctx("delete_volume")?;
    kit.driver
        .delete_volume(&volume)
        .await
        .ctx("second delete_volume")
}

/// Deleting an unknown snapshot succeeds, and so does deleting one twice.
pub async fn delete_snapshot_is_idempotent(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size()).await?;
    let unknown = kit.snapshot_spec(&volume);
    kit.driver
        .delete_snapshot(&unknown)
        .await
        .ctx("delete_snapshot of an unknown id")?;
    let snapshot = kit.snapshot(&volume).await?;
    kit.driver
        .delete_snapshot(&snapshot)
        .await
        .ctx("delete_snapshot")?;
    kit.driver
        .delete_snapshot(&snapshot)
        .await
        .ctx("second delete_snapshot")
}

/// Connection info names its transport, and a repeated export returns the same.
pub async fn initialize_connection_reports_a_type(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size()).await?;
    let info = kit
        .driver
        .initialize_connection(&volume, &export("attachment-1"))
        .await
        .ctx("initialize_connection")?;
    ensure!(
        !info.driver_volume_type.trim().is_empty(),
        "initialize_connection returned an empty driver_volume_type"
    );
    let again = kit
        .driver
        .initialize_connection(&volume, &export("attachment-1"))
        .await
        .ctx("initialize_connection repeated (as at a restart)")?;
    ensure!(
        again == info,
        "initialize_connection repeated with the same export returned {again:?}, first {info:?}"
    );
    kit.driver
        .terminate_connection(&volume, Some("attachment-1"))
        .await
        .ctx("terminate_connection")
}

/// Terminating a connection twice, every connection, or one of an unknown volume succeeds.
pub async fn terminate_connection_is_idempotent(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size()).await?;
    for attachment in ["attachment-1", "attachment-2"] {
        kit.driver
            .initialize_connection(&volume, &export(attachment))
            .await
            .ctx("initialize_connection")?;
    }
    for round in ["first", "second"] {
        kit.driver
            .terminate_connection(&volume, Some("attachment-1"))
            .await
            .ctx(&format!("{round} terminate_connection"))?;
    }
    kit.driver
        .terminate_connection(&volume, None)
        .await
        .ctx("terminate_connection for every host")?;
    kit.driver
        .terminate_connection(&kit.spec(kit.base_size()), Some("attachment-1"))
        .await
        .ctx("terminate_connection of an unknown volume")
}

/// A snapshot of an unknown volume is `NotFound`.
pub async fn snapshot_of_unknown_volume_is_not_found(kit: Kit) -> CheckResult {
    let unknown = kit.spec(kit.base_size());
    let snapshot = kit.snapshot_spec(&unknown);
    kit.record(Created::Snapshot(snapshot.clone()));
    let result = kit.driver.create_snapshot(&snapshot, &unknown).await;
    expect_not_found(result, "create_snapshot of an unknown volume")
}

/// A volume from an unknown snapshot is `NotFound`.
pub async fn volume_from_unknown_snapshot_is_not_found(kit: Kit) -> CheckResult {
    let unknown = kit.snapshot_spec(&kit.spec(kit.base_size()));
    let volume = kit.spec(kit.base_size());
    kit.will_create(&volume);
    let result = kit
        .driver
        .create_volume_from_snapshot(&volume, &unknown)
        .await;
    expect_not_found(result, "create_volume_from_snapshot of an unknown snapshot")
}

/// A clone of an unknown volume is `NotFound`.
pub async fn clone_of_unknown_volume_is_not_found(kit: Kit) -> CheckResult {
    let unknown = kit.spec(kit.base_size());
    let volume = kit.spec(kit.base_size());
    kit.will_create(&volume);
    let result = kit.driver.create_cloned_volume(&volume, &unknown).await;
    expect_not_found(result, "create_cloned_volume of an unknown volume")
}

/// A volume made from a snapshot holds the data of the moment the snapshot
/// was taken, not later writes to the source, and has the bigger size asked for.
pub async fn snapshot_keeps_original_data(kit: Kit) -> CheckResult {
    if !kit.caps.local_attach {
        return skipped(NO_LOCAL_ATTACH);
    }
    let source = kit.create_volume(kit.base_size()).await?;
    kit.write(&source, ORIGINAL, &OFFSETS).await?;
    let snapshot = kit.snapshot(&source).await?;
    kit.write(&source, OVERWRITTEN, &OFFSETS).await?;
    kit.expect(&source, OVERWRITTEN, &OFFSETS).await?;

    let restored = kit.volume_from_snapshot(&snapshot, source.size + 1).await?;
    kit.expect(&restored, ORIGINAL, &OFFSETS).await?;
    kit.expect_size(&restored, source.size + 1).await
}

/// A clone holds the source's data at the time of cloning, not later writes
/// to the source, and has the bigger size asked for.
pub async fn clone_keeps_original_data(kit: Kit) -> CheckResult {
    if !kit.caps.local_attach {
        return skipped(NO_LOCAL_ATTACH);
    }
    let source = kit.create_volume(kit.base_size()).await?;
    kit.write(&source, ORIGINAL, &OFFSETS).await?;
    let clone = kit.clone_of(&source, source.size + 1).await?;
    kit.write(&source, OVERWRITTEN, &OFFSETS).await?;
    kit.expect(&source, OVERWRITTEN, &OFFSETS).await?;

    kit.expect(&clone, ORIGINAL, &OFFSETS).await?;
    kit.expect_size(&clone, source.size + 1).await
}

/// Extending keeps the data, shows the new size, and the new space is usable.
pub async fn extend_keeps_data(kit: Kit) -> CheckResult {
    if !kit.caps.local_attach {
        return skipped(NO_LOCAL_ATTACH);
    }
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    let new_size = volume.size + 1;
    kit.driver
        .extend_volume(&volume, new_size)
        .await
        .ctx("extend_volume")?;

    kit.expect(&volume, ORIGINAL, &OFFSETS).await?;
    kit.expect_size(&volume, new_size).await?;
    let near_new_end = [gib(new_size) - 64];
    kit.write(&volume, OVERWRITTEN, &near_new_end).await?;
    kit.expect(&volume, OVERWRITTEN, &near_new_end).await
}

/// Extending to a smaller size fails and leaves the volume as it was.
pub async fn shrink_is_refused(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size() + 1).await?;
    if kit.caps.local_attach {
        kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    }
    let shrunk = kit.driver.extend_volume(&volume, volume.size - 1).await;
    ensure!(shrunk.is_err(), "extend_volume to a smaller size succeeded");
    if kit.caps.local_attach {
        kit.expect(&volume, ORIGINAL, &OFFSETS).await?;
        kit.expect_size(&volume, volume.size).await?;
    }
    Ok(())
}

/// Reverting a volume to its snapshot brings back the snapshot's data at the
/// volume's size, and the snapshot still holds that data afterwards.
pub async fn revert_restores_snapshot_data(kit: Kit) -> CheckResult {
    if !kit.caps.snapshot_revert {
        return skipped(NO_REVERT);
    }
    if !kit.caps.local_attach {
        return skipped(NO_LOCAL_ATTACH);
    }
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    let snapshot = kit.snapshot(&volume).await?;
    kit.write(&volume, OVERWRITTEN, &OFFSETS).await?;
    kit.driver
        .revert_to_snapshot(&volume, &snapshot)
        .await
        .ctx("revert_to_snapshot")?;

    kit.expect(&volume, ORIGINAL, &OFFSETS).await?;
    kit.expect_size(&volume, volume.size).await?;
    let copy = kit.volume_from_snapshot(&snapshot, volume.size).await?;
    kit.expect(&copy, ORIGINAL, &OFFSETS).await
}
