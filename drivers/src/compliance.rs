//! The compliance kit (cargo feature `compliance`, tests only): one
//! behavioural suite every driver must pass.
//!
//! A driver's test file names an async constructor of a fresh, set-up driver
//! in one line:
//!
//! ```text
//! async fn fixture() -> Fixture {
//!     let dir = tempfile::tempdir().unwrap();
//!     let driver = my_driver_in(dir.path()).await; // registry::create + setup()
//!     Fixture::new(driver).keeping(dir)
//! }
//! scoria_drivers::compliance_tests!(fixture);
//! ```
//!
//! That expands to one `#[test]` running [`run_suite`]: the kit asks a first
//! driver what it declares (its [`Capabilities`], whether it stores data, what
//! its stats report), registers the checks of [`CHECKS`] those declarations
//! call for, runs each on its own fresh driver, and prints which ran (passed
//! or failed) and which the declarations excluded, and why. An excluded check
//! is never counted as passed; a failed one fails the test.
//!
//! Data checks read and write volumes through the driver's own data access
//! ([`VolumeDriver::data_access`]), so they run on every driver that stores
//! data, with or without a local attach; local attach, when declared, is
//! checked against the same bytes. The kit hands every model update back to
//! the driver with [`ModelUpdate::apply`], as the volume manager does.
//! Everything a check creates is deleted afterwards (a failing delete fails
//! the check).

use std::collections::HashSet;
use std::fmt::{self, Display};
use std::fs::OpenOptions;
use std::future::Future;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use scoria_core::stats::{Capabilities, PoolStats};
use scoria_core::Capacity;

use crate::{
    AccessMode, Chap, Connector, DataAccess, DriverError, DriverResult, ExportSpec, Model,
    ModelUpdate, SnapshotSpec, VolumeData, VolumeDriver, VolumeSpec,
};

/// Expands to one `#[test]`, `compliance`, running the kit's suite.
///
/// `make` is a function or closure returning a future of
/// [`compliance::Fixture`](crate::compliance::Fixture); it is called once to
/// learn what the driver declares and once per registered check. Attributes
/// after it, such as `compliance_tests!(make, #[ignore = "why"])`, go on the test.
#[macro_export]
macro_rules! compliance_tests {
    ($make:expr $(, #[$attr:meta])* $(,)?) => {
        #[test]
        $(#[$attr])*
        fn compliance() {
            $crate::compliance::run_suite(stringify!($make), $make).assert_passed();
        }
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

/// What a check needs a driver to declare, beyond the contract every driver keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It stores data ([`DataAccess::Bytes`]).
    Data,
    /// [`Capabilities::local_attach`].
    LocalAttach,
    /// [`Capabilities::snapshot_revert`].
    SnapshotRevert,
    /// [`Capabilities::online_extend`].
    OnlineExtend,
    /// A pool reporting `provisioned_capacity_gb`.
    ProvisionedCapacity,
}

/// What a driver declares, as the kit learns it from a first fixture.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The driver's registry name.
    pub driver: &'static str,
    pub caps: Capabilities,
    /// Whether it provides data access.
    pub stores_data: bool,
    /// Whether some pool reports `provisioned_capacity_gb`.
    pub reports_provisioned: bool,
}

impl Profile {
    async fn of(driver: &dyn VolumeDriver) -> Result<Self, String> {
        let stats = driver.stats().await.ctx("stats")?;
        Ok(Self {
            driver: driver.name(),
            caps: driver.capabilities(),
            stores_data: matches!(driver.data_access(), DataAccess::Bytes(_)),
            reports_provisioned: stats
                .pools
                .iter()
                .any(|p| p.provisioned_capacity_gb.is_some()),
        })
    }

    /// Why `need` is not met, or `None` when it is.
    pub fn unmet(&self, need: Need) -> Option<&'static str> {
        let (met, why) = match need {
            Need::Data => (
                self.stores_data,
                "the driver declares it stores no data (DataAccess::None)",
            ),
            Need::LocalAttach => (
                self.caps.local_attach,
                "the driver does not declare local_attach",
            ),
            Need::SnapshotRevert => (
                self.caps.snapshot_revert,
                "the driver does not declare snapshot_revert",
            ),
            Need::OnlineExtend => (
                self.caps.online_extend,
                "the driver does not declare online_extend",
            ),
            Need::ProvisionedCapacity => (
                self.reports_provisioned,
                "no pool reports provisioned_capacity_gb",
            ),
        };
        (!met).then_some(why)
    }
}

/// A check's future; the suite runs on one thread.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckResult>>>;

/// One check of the suite and what it needs the driver to declare.
#[derive(Clone, Copy)]
pub struct Check {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub run: fn(Kit) -> CheckFuture,
}

macro_rules! checks {
    ($($check:ident: [$($need:ident),*],)+) => {
        /// Every check of the suite, with what each needs.
        pub const CHECKS: &[Check] = &[$(
            Check {
                name: stringify!($check),
                needs: &[$(Need::$need),*],
                run: |kit| Box::pin($check(kit)),
            }
        ),+];
    };
}

checks! {
    setup_is_idempotent: [],
    stats_contract: [],
    stats_follow_a_create: [ProvisionedCapacity],
    delete_volume_is_idempotent: [],
    delete_snapshot_is_idempotent: [],
    initialize_connection_reports_a_type: [],
    terminate_connection_is_idempotent: [],
    snapshot_of_unknown_volume_is_not_found: [],
    volume_from_unknown_snapshot_is_not_found: [],
    clone_of_unknown_volume_is_not_found: [],
    shrink_is_refused: [],
    created_volume_has_its_size: [Data],
    snapshot_keeps_original_data: [Data],
    clone_keeps_original_data: [Data],
    extend_keeps_data: [Data],
    refused_shrink_keeps_data: [Data],
    extend_while_exported_keeps_data: [Data, OnlineExtend],
    revert_restores_snapshot_data: [Data, SnapshotRevert],
    local_attach_shows_the_volume_bytes: [Data, LocalAttach],
}

/// How one check went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    Failed(String),
    /// Not registered: the driver's declarations exclude it, for this reason.
    Excluded(&'static str),
}

/// A suite run: every check of [`CHECKS`] with its outcome.
#[derive(Debug, Clone)]
pub struct Report {
    /// The fixture's name, as the test wrote it.
    pub fixture: &'static str,
    /// What the driver declared; `None` when even that could not be learned.
    pub profile: Option<Profile>,
    pub outcomes: Vec<(&'static str, Outcome)>,
}

impl Report {
    /// The names of the checks with this outcome kind.
    fn named(&self, pick: impl Fn(&Outcome) -> bool) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|(_, outcome)| pick(outcome))
            .map(|(name, _)| *name)
            .collect()
    }

    /// The checks that ran and passed.
    pub fn passed(&self) -> Vec<&'static str> {
        self.named(|o| *o == Outcome::Passed)
    }

    /// The checks that ran and failed.
    pub fn failed(&self) -> Vec<&'static str> {
        self.named(|o| matches!(o, Outcome::Failed(_)))
    }

    /// The checks the driver's declarations excluded.
    pub fn excluded(&self) -> Vec<&'static str> {
        self.named(|o| matches!(o, Outcome::Excluded(_)))
    }

    /// Prints the report, then panics unless every registered check passed.
    pub fn assert_passed(self) {
        println!("{self}");
        let failed = self.failed();
        assert!(
            failed.is_empty() && !self.passed().is_empty(),
            "compliance of {} failed: {}",
            self.fixture,
            failed.join(", ")
        );
    }
}

impl Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = self.profile.as_ref().map_or("?", |p| p.driver);
        writeln!(
            f,
            "compliance of the `{driver}` driver ({}): {} ran ({} passed, {} failed), {} excluded by its declarations",
            self.fixture,
            self.passed().len() + self.failed().len(),
            self.passed().len(),
            self.failed().len(),
            self.excluded().len()
        )?;
        for (name, outcome) in &self.outcomes {
            match outcome {
                Outcome::Passed => writeln!(f, "  passed    {name}")?,
                Outcome::Failed(why) => writeln!(f, "  FAILED    {name}: {why}")?,
                Outcome::Excluded(why) => writeln!(f, "  excluded  {name}: {why}")?,
            }
        }
        Ok(())
    }
}

/// Learns what the driver from `make` declares, runs every check that calls
/// for on a fresh driver from `make`, and reports each check's outcome.
/// Called by [`compliance_tests!`](crate::compliance_tests).
pub fn run_suite<M, MF>(fixture: &'static str, make: M) -> Report
where
    M: Fn() -> MF,
    MF: Future<Output = Fixture>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start a tokio runtime");
    runtime.block_on(async {
        let profile = match Profile::of(make().await.driver.as_ref()).await {
            Ok(profile) => profile,
            Err(why) => {
                return Report {
                    fixture,
                    profile: None,
                    outcomes: vec![("profile", Outcome::Failed(why))],
                }
            }
        };
        let mut outcomes = Vec::with_capacity(CHECKS.len());
        for check in CHECKS {
            let outcome = match check.needs.iter().find_map(|n| profile.unmet(*n)) {
                Some(why) => Outcome::Excluded(why),
                None => match run_check(&make, check).await {
                    Ok(()) => Outcome::Passed,
                    Err(why) => Outcome::Failed(why),
                },
            };
            outcomes.push((check.name, outcome));
        }
        Report {
            fixture,
            profile: Some(profile),
            outcomes,
        }
    })
}

/// Runs one check on a fresh driver, then deletes what it created.
async fn run_check<M, MF>(make: &M, check: &Check) -> CheckResult
where
    M: Fn() -> MF,
    MF: Future<Output = Fixture>,
{
    let fixture = make().await;
    let kit = Kit::new(Arc::clone(&fixture.driver)).await?;
    let checked = (check.run)(kit.clone()).await;
    match (checked, kit.cleanup().await) {
        (Err(failed), Err(cleanup)) => Err(format!("{failed}; cleanup also failed: {cleanup}")),
        (checked, cleaned) => checked.and(cleaned),
    }
}

const GIB: u64 = 1 << 30;
/// Where the data checks write: the start, an unaligned spot, and the end of the first GiB.
const OFFSETS: [u64; 3] = [0, 4096 * 3 + 17, GIB - 64];
const ORIGINAL: &str = "original";
const OVERWRITTEN: &str = "overwritten";

/// The 32 bytes a data check writes at `offset`, distinct per tag and offset.
fn pattern(tag: &str, offset: u64) -> Vec<u8> {
    format!("{tag:<12}@{offset:<19}").into_bytes()
}

fn gib(size: i64) -> u64 {
    u64::try_from(size).unwrap_or(0) * GIB
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

    /// Keeps what a create answered: applies its model update to `model`, as
    /// the volume manager does, and records the result for cleanup (also when
    /// the create failed, so a half-made one is removed too).
    fn keep<T: Model + Clone>(
        &self,
        mut model: T,
        made: DriverResult<ModelUpdate>,
        doing: &str,
        created: fn(T) -> Created,
    ) -> Result<T, String> {
        let made = made.map(|update| update.apply(&mut model));
        self.record(created(model.clone()));
        made.ctx(doing)?;
        Ok(model)
    }

    async fn create_volume(&self, size: i64) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        let made = self.driver.create_volume(&volume).await;
        self.keep(volume, made, "create_volume", Created::Volume)
    }

    async fn snapshot(&self, volume: &VolumeSpec) -> Result<SnapshotSpec, String> {
        let snapshot = self.snapshot_spec(volume);
        let made = self.driver.create_snapshot(&snapshot, volume).await;
        self.keep(snapshot, made, "create_snapshot", Created::Snapshot)
    }

    async fn volume_from_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        size: i64,
    ) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        let made = self
            .driver
            .create_volume_from_snapshot(&volume, snapshot)
            .await;
        self.keep(volume, made, "create_volume_from_snapshot", Created::Volume)
    }

    async fn clone_of(&self, source: &VolumeSpec, size: i64) -> Result<VolumeSpec, String> {
        let volume = self.spec(size);
        let made = self.driver.create_cloned_volume(&volume, source).await;
        self.keep(volume, made, "create_cloned_volume", Created::Volume)
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

    /// The driver's data access; an error for a driver that stores no data.
    fn data(&self) -> Result<&dyn VolumeData, String> {
        match self.driver.data_access() {
            DataAccess::Bytes(data) => Ok(data),
            DataAccess::None => Err("the driver declares it stores no data".into()),
        }
    }

    /// Writes `tag`'s pattern at each offset of the volume, through the driver's data access.
    async fn write(&self, volume: &VolumeSpec, tag: &str, offsets: &[u64]) -> CheckResult {
        let data = self.data()?;
        for &offset in offsets {
            data.write_at(volume, offset, &pattern(tag, offset))
                .await
                .ctx(&format!("writing volume {} at offset {offset}", volume.id))?;
        }
        Ok(())
    }

    /// Fails unless `tag`'s pattern is found at each offset of the volume.
    async fn expect(&self, volume: &VolumeSpec, tag: &str, offsets: &[u64]) -> CheckResult {
        let data = self.data()?;
        for &offset in offsets {
            let want = pattern(tag, offset);
            let found = data
                .read_at(volume, offset, want.len())
                .await
                .ctx(&format!("reading volume {} at offset {offset}", volume.id))?;
            expect_pattern(volume, tag, offset, &found)?;
        }
        Ok(())
    }

    /// Fails unless the volume is exactly `size` GiB long.
    async fn expect_size(&self, volume: &VolumeSpec, size: i64) -> CheckResult {
        let len = self
            .data()?
            .byte_size(volume)
            .await
            .ctx(&format!("size of volume {}", volume.id))?;
        ensure!(
            len == gib(size),
            "volume {} should be {size} GiB ({} bytes) but holds {len} bytes",
            volume.id,
            gib(size)
        );
        Ok(())
    }

    /// Grows `volume`, holding the original pattern, by 1 GiB; checks the
    /// data stayed, the new size shows and the new space is usable; returns
    /// the volume as the volume manager then describes it.
    async fn extend_keeping(&self, volume: &VolumeSpec) -> Result<VolumeSpec, String> {
        let new_size = volume.size + 1;
        self.driver
            .extend_volume(volume, new_size)
            .await
            .ctx("extend_volume")?;
        let grown = VolumeSpec {
            size: new_size,
            ..volume.clone()
        };
        self.expect(&grown, ORIGINAL, &OFFSETS).await?;
        self.expect_size(&grown, new_size).await?;
        let near_new_end = [gib(new_size) - 64];
        self.write(&grown, OVERWRITTEN, &near_new_end).await?;
        self.expect(&grown, OVERWRITTEN, &near_new_end).await?;
        Ok(grown)
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
            .and_then(|r| r.ctx(&format!("I/O on the attached volume {}", volume.id)));
        self.driver.local_detach(volume).await.ctx("local_detach")?;
        done
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

/// Fails unless `found` is `tag`'s pattern for `offset`.
fn expect_pattern(volume: &VolumeSpec, tag: &str, offset: u64, found: &[u8]) -> CheckResult {
    ensure!(
        found == pattern(tag, offset),
        "volume {} at offset {offset}: expected the {tag:?} pattern, found {:?}",
        volume.id,
        String::from_utf8_lossy(found)
    );
    Ok(())
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
    let before = kit.provisioned_gb().await?.unwrap_or_default();
    let volume = kit.create_volume(kit.base_size()).await?;
    let after = kit.provisioned_gb().await?.unwrap_or_default();
    ensure!(
        after > before,
        "provisioned_capacity_gb did not grow after creating a {} GiB volume: {before} -> {after}",
        volume.size
    );
    Ok(())
}

/// A new volume is exactly its size.
pub async fn created_volume_has_its_size(kit: Kit) -> CheckResult {
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
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    kit.extend_keeping(&volume).await.map(drop)
}

/// Extending to a smaller size fails.
pub async fn shrink_is_refused(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size() + 1).await?;
    let shrunk = kit.driver.extend_volume(&volume, volume.size - 1).await;
    ensure!(shrunk.is_err(), "extend_volume to a smaller size succeeded");
    Ok(())
}

/// A refused shrink leaves the volume's data and size as they were.
pub async fn refused_shrink_keeps_data(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size() + 1).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    let _refused = kit.driver.extend_volume(&volume, volume.size - 1).await;
    kit.expect(&volume, ORIGINAL, &OFFSETS).await?;
    kit.expect_size(&volume, volume.size).await
}

/// Extending an exported volume keeps its data and export, and the new space is usable.
pub async fn extend_while_exported_keeps_data(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    let export = export("attachment-online");
    let before = kit
        .driver
        .initialize_connection(&volume, &export)
        .await
        .ctx("initialize_connection")?;
    let grown = kit.extend_keeping(&volume).await?;
    let after = kit
        .driver
        .initialize_connection(&grown, &export)
        .await
        .ctx("initialize_connection repeated after the extend")?;
    ensure!(
        after.driver_volume_type == before.driver_volume_type,
        "the export changed type across an online extend: {before:?} -> {after:?}"
    );
    kit.driver
        .terminate_connection(&grown, Some("attachment-online"))
        .await
        .ctx("terminate_connection")
}

/// Reverting a volume to its snapshot brings back the snapshot's data at the
/// volume's size, and the snapshot still holds that data afterwards.
pub async fn revert_restores_snapshot_data(kit: Kit) -> CheckResult {
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

/// A local attach opens the very bytes the driver's data access reads and
/// writes, at the volume's size.
pub async fn local_attach_shows_the_volume_bytes(kit: Kit) -> CheckResult {
    let volume = kit.create_volume(kit.base_size()).await?;
    kit.write(&volume, ORIGINAL, &OFFSETS).await?;
    let (len, found) = kit
        .with_device(&volume, |path| {
            let mut device = OpenOptions::new().read(true).write(true).open(path)?;
            let found = OFFSETS
                .iter()
                .map(|&offset| {
                    let mut buf = vec![0; pattern(ORIGINAL, offset).len()];
                    device.read_exact_at(&mut buf, offset)?;
                    device.write_all_at(&pattern(OVERWRITTEN, offset), offset)?;
                    Ok((offset, buf))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            device.sync_all()?;
            Ok((device.seek(SeekFrom::End(0))?, found))
        })
        .await?;
    ensure!(
        len == gib(volume.size),
        "the attached volume {} has {len} bytes, not {}",
        volume.id,
        gib(volume.size)
    );
    for (offset, bytes) in found {
        expect_pattern(&volume, ORIGINAL, offset, &bytes)?;
    }
    kit.expect(&volume, OVERWRITTEN, &OFFSETS).await
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use scoria_core::config::BackendConfig;

    use super::*;
    use crate::fake::FakeDriver;
    use crate::layers::{Layer, Layered, Operation};

    /// Claims to store data for the driver it wraps, but drops every write
    /// and reads zeros: a driver that stores nothing.
    struct DropsWrites;

    impl Layer for DropsWrites {
        async fn around<T: Send>(
            &self,
            _op: Operation,
            call: impl Future<Output = DriverResult<T>> + Send,
        ) -> DriverResult<T> {
            call.await
        }

        fn data_access<'a>(&'a self, _inner: DataAccess<'a>) -> DataAccess<'a> {
            DataAccess::Bytes(self)
        }
    }

    #[async_trait]
    impl VolumeData for DropsWrites {
        async fn byte_size(&self, volume: &VolumeSpec) -> DriverResult<u64> {
            Ok(gib(volume.size))
        }

        async fn read_at(&self, _: &VolumeSpec, _: u64, len: usize) -> DriverResult<Vec<u8>> {
            Ok(vec![0; len])
        }

        async fn write_at(&self, _: &VolumeSpec, _: u64, _: &[u8]) -> DriverResult<()> {
            Ok(())
        }
    }

    fn fake() -> Arc<dyn VolumeDriver> {
        let config = BackendConfig {
            name: "fake".into(),
            driver: FakeDriver::NAME.into(),
            volume_backend_name: "fake".into(),
            options: Default::default(),
        };
        FakeDriver::create(&config).unwrap()
    }

    async fn fake_storing_nothing() -> Fixture {
        Fixture::new(Arc::new(Layered::new(fake(), DropsWrites)))
    }

    async fn plain_fake() -> Fixture {
        Fixture::new(fake())
    }

    #[test]
    fn a_driver_storing_nothing_fails_the_data_checks() {
        let report = run_suite("fake_storing_nothing", fake_storing_nothing);
        println!("{report}");
        assert_eq!(
            report.failed(),
            [
                "snapshot_keeps_original_data",
                "clone_keeps_original_data",
                "extend_keeps_data",
                "refused_shrink_keeps_data",
                "extend_while_exported_keeps_data",
            ],
            "{report}"
        );
        assert!(report.passed().contains(&"setup_is_idempotent"), "{report}");
        let outcome = std::panic::catch_unwind(|| report.assert_passed());
        assert!(outcome.is_err(), "a failed check must fail the test");
    }

    #[test]
    fn declared_capabilities_pick_the_checks_and_exclusions_are_not_passes() {
        let report = run_suite("plain_fake", plain_fake);
        println!("{report}");
        assert!(report.failed().is_empty(), "{report}");
        let data_checks: Vec<_> = CHECKS
            .iter()
            .filter(|c| c.needs.contains(&Need::Data))
            .map(|c| c.name)
            .collect();
        assert_eq!(report.excluded(), data_checks, "{report}");
        assert!(
            !report
                .passed()
                .iter()
                .any(|name| data_checks.contains(name)),
            "{report}"
        );
        assert!(report.to_string().contains(
            "excluded  snapshot_keeps_original_data: the driver declares it stores no data"
        ));
    }
}
