//! Storage drivers behind one trait, their registry, the layers wrapping
//! every driver, and the compliance kit every driver must pass.
//!
//! A driver knows storage and nothing else: no HTTP, no database, no bus. The
//! volume manager calls it with plain descriptions of the resources involved.
//!
//! Cargo features: `file` (default) builds the `file` driver; `fake` (the
//! in-memory test driver), `fault-injection` (the fault-injection layer) and
//! `compliance` (the kit) are for tests only and stay out of release builds.

#[cfg(feature = "compliance")]
pub mod compliance;
#[cfg(feature = "fake")]
pub mod fake;
#[cfg(feature = "file")]
pub mod file;
pub mod iscsi;
pub mod layers;
pub mod options;
pub mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
pub use scoria_core::model::{AccessMode, Chap, ConnectionInfo, Connector};
use scoria_core::stats::{BackendStats, Capabilities};

/// What a driver needs to know about a volume.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpec {
    pub id: String,
    /// Size in GiB.
    pub size: i64,
    /// Pool on the backend (the part after `#` in the volume's host).
    pub pool: Option<String>,
    /// What the driver returned in [`ModelUpdate::provider_location`] at create.
    pub provider_location: Option<String>,
    /// The volume type's extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// What a driver needs to know about a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotSpec {
    pub id: String,
    pub volume_id: String,
    /// Size in GiB (the size of the volume when the snapshot was taken).
    pub size: i64,
    pub provider_location: Option<String>,
}

/// Fields a driver may ask the volume manager to store with a resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelUpdate {
    pub provider_location: Option<String>,
}

/// A volume or snapshot as a driver is handed it: where [`ModelUpdate::apply`]
/// stores what the driver returned, so later calls see it.
pub trait Model {
    /// The location the driver returned when it made the resource.
    fn provider_location_mut(&mut self) -> &mut Option<String>;
}

impl Model for VolumeSpec {
    fn provider_location_mut(&mut self) -> &mut Option<String> {
        &mut self.provider_location
    }
}

impl Model for SnapshotSpec {
    fn provider_location_mut(&mut self) -> &mut Option<String> {
        &mut self.provider_location
    }
}

impl ModelUpdate {
    /// The one rule for keeping a driver's update, used by the volume manager
    /// and the compliance kit alike: every field replaces the stored one, and
    /// `None` clears it.
    pub fn apply(self, model: &mut impl Model) {
        let ModelUpdate { provider_location } = self;
        *model.provider_location_mut() = provider_location;
    }

    /// `model` with this update applied.
    pub fn applied<M: Model>(self, mut model: M) -> M {
        self.apply(&mut model);
        model
    }
}

/// One export a host asked for: an attachment of a volume to a connector.
///
/// The volume manager calls [`VolumeDriver::initialize_connection`] again with
/// the same spec when it restarts, so a driver must recreate an export that is
/// gone and leave one that exists as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSpec {
    /// The attachment this export serves; exports are keyed by it.
    pub attachment_id: String,
    /// The host's connector properties.
    pub connector: Connector,
    pub access_mode: AccessMode,
    /// Credentials made for this attachment.
    pub auth: Chap,
}

/// The volume's bytes opened on this host, for the generic copy paths.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDevice {
    /// A path that can be read and written like a file or block device.
    pub path: PathBuf,
}

/// Whether a driver keeps volume data, and its reader and writer of it.
pub enum DataAccess<'a> {
    /// The driver keeps no volume data: only the test-only `fake` driver.
    /// The compliance kit then excludes its data checks and says so.
    None,
    /// The driver's own access to a volume's bytes, through its library or
    /// its files, needing no local attach.
    Bytes(&'a dyn VolumeData),
}

/// A driver's reader and writer of volume bytes, through which the compliance
/// kit checks that what a volume holds survives snapshots, clones, extends and
/// reverts.
#[async_trait]
pub trait VolumeData: Send + Sync {
    /// The volume's length in bytes.
    async fn byte_size(&self, volume: &VolumeSpec) -> DriverResult<u64>;

    /// Reads `len` bytes of the volume at `offset`.
    async fn read_at(&self, volume: &VolumeSpec, offset: u64, len: usize) -> DriverResult<Vec<u8>>;

    /// Writes `data` into the volume at `offset` and makes it durable.
    async fn write_at(&self, volume: &VolumeSpec, offset: u64, data: &[u8]) -> DriverResult<()>;
}

/// Errors a driver reports. `NotFound` from a delete or terminate is never
/// returned: those operations succeed when the thing is already gone.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("{kind} {id} not found on the backend")]
    NotFound { kind: &'static str, id: String },
    #[error("operation not supported by this driver: {0}")]
    Unsupported(String),
    #[error("invalid driver configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid request to the driver: {0}")]
    Invalid(String),
    /// A failure of the backend. `temporary` says another backend may well
    /// succeed: only then does the volume manager reschedule a failed create;
    /// otherwise the volume goes to `error`.
    #[error("backend error: {message}")]
    Backend { message: String, temporary: bool },
    /// An I/O error on this backend's host; counts as temporary.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl DriverError {
    /// Whether retrying on another backend may succeed: a `Backend` error
    /// marked `temporary`, or an I/O error of this host.
    pub fn is_temporary(&self) -> bool {
        match self {
            DriverError::Backend { temporary, .. } => *temporary,
            DriverError::Io(_) => true,
            _ => false,
        }
    }
}

/// Result alias for driver calls.
pub type DriverResult<T> = Result<T, DriverError>;

/// The minimum feature set of a Scoria storage driver.
///
/// Every method is idempotent where Cinder drivers are expected to be: deleting
/// something that is already gone succeeds, and so does terminating a
/// connection that does not exist.
#[async_trait]
pub trait VolumeDriver: Send + Sync + 'static {
    /// The driver's registry name (e.g. `file`).
    fn name(&self) -> &'static str;

    /// What this driver can do.
    fn capabilities(&self) -> Capabilities;

    /// Prepares the backend (creates directories, checks access). Called once at start.
    async fn setup(&self) -> DriverResult<()>;

    /// Current capacity and capabilities of every pool.
    async fn stats(&self) -> DriverResult<BackendStats>;

    /// Creates a blank volume of `volume.size` GiB.
    async fn create_volume(&self, volume: &VolumeSpec) -> DriverResult<ModelUpdate>;

    /// Deletes a volume; succeeds if it does not exist.
    async fn delete_volume(&self, volume: &VolumeSpec) -> DriverResult<()>;

    /// Takes a point-in-time snapshot of `volume`.
    async fn create_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        volume: &VolumeSpec,
    ) -> DriverResult<ModelUpdate>;

    /// Deletes a snapshot; succeeds if it does not exist.
    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> DriverResult<()>;

    /// Creates `volume` holding the snapshot's data; `volume.size` may exceed the snapshot's.
    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<ModelUpdate>;

    /// Creates `volume` as a copy of `source`; `volume.size` may exceed the source's.
    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> DriverResult<ModelUpdate>;

    /// Grows a volume to `new_size` GiB, keeping its data.
    async fn extend_volume(&self, volume: &VolumeSpec, new_size: i64) -> DriverResult<()>;

    /// Puts the data of `snapshot`, the volume's latest and of its size, back
    /// into `volume` in place; the volume is not attached. Drivers that declare
    /// `snapshot_revert` implement it; the default is [`DriverError::Unsupported`],
    /// and the volume manager then copies the data itself.
    async fn revert_to_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<()> {
        let _ = (volume, snapshot);
        Err(DriverError::Unsupported("revert_to_snapshot".into()))
    }

    /// Exports a volume for one attachment; calling it again with the same
    /// spec restores the export if it is gone and otherwise changes nothing.
    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        export: &ExportSpec,
    ) -> DriverResult<ConnectionInfo>;

    /// Removes the export of one attachment, or every export of the volume
    /// when `attachment_id` is `None`; succeeds when there is none.
    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        attachment_id: Option<&str>,
    ) -> DriverResult<()>;

    /// Opens the volume's bytes on this host (used by the generic image and copy paths).
    async fn local_attach(&self, volume: &VolumeSpec) -> DriverResult<LocalDevice>;

    /// Releases what [`VolumeDriver::local_attach`] opened.
    async fn local_detach(&self, volume: &VolumeSpec) -> DriverResult<()>;

    /// Whether the driver keeps volume data and how to read and write it.
    /// Every driver that stores data returns [`DataAccess::Bytes`].
    fn data_access(&self) -> DataAccess<'_>;
}
