//! Behaviour that wraps any driver, as layers around a [`VolumeDriver`]: the
//! registry puts them around every driver it builds, driven by options of the
//! backend section.
//!
//! - [`timeout`]: a deadline per operation (`driver_operation_timeout`,
//!   `driver_operation_timeouts`), on every backend;
//! - `fault` (cargo feature `fault-injection`, tests only): injected failures
//!   and delays (`fault_inject`, `fault_delay_ms`).
//!
//! A layer sees each call as an [`Operation`] and the future of the wrapped
//! driver's answer; [`Layered`] writes the delegation of every trait method
//! once for all layers.

#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod timeout;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use scoria_core::config::{BackendConfig, OptionDoc};
use scoria_core::stats::{BackendStats, Capabilities};

use crate::{
    ConnectionInfo, DataAccess, DriverError, DriverResult, ExportSpec, LocalDevice, ModelUpdate,
    SnapshotSpec, VolumeDriver, VolumeSpec,
};

macro_rules! operations {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A driver operation, named as the trait method that runs it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($variant),+
        }

        impl Operation {
            /// Every operation, in trait order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),+];

            /// The trait method's name, as options spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$variant => $name),+
                }
            }
        }
    };
}

operations! {
    Setup => "setup",
    Stats => "stats",
    CreateVolume => "create_volume",
    DeleteVolume => "delete_volume",
    CreateSnapshot => "create_snapshot",
    DeleteSnapshot => "delete_snapshot",
    CreateVolumeFromSnapshot => "create_volume_from_snapshot",
    CreateClonedVolume => "create_cloned_volume",
    ExtendVolume => "extend_volume",
    RevertToSnapshot => "revert_to_snapshot",
    InitializeConnection => "initialize_connection",
    TerminateConnection => "terminate_connection",
    LocalAttach => "local_attach",
    LocalDetach => "local_detach",
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .iter()
            .copied()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Operation::ALL.iter().map(|op| op.as_str()).collect();
                format!("{s:?} is not a driver operation ({})", names.join(", "))
            })
    }
}

/// Cross-cutting behaviour around every call of a wrapped driver.
pub trait Layer: Send + Sync + 'static {
    /// Runs `call`, the wrapped driver's answer to `op`, adding the layer's behaviour.
    fn around<T: Send>(
        &self,
        op: Operation,
        call: impl Future<Output = DriverResult<T>> + Send,
    ) -> impl Future<Output = DriverResult<T>> + Send;

    /// The data access callers see; the wrapped driver's unless the layer stands in it.
    fn data_access<'a>(&'a self, inner: DataAccess<'a>) -> DataAccess<'a> {
        inner
    }
}

/// A driver wrapped in a layer; it is itself a driver, so layers stack.
pub struct Layered<L> {
    inner: Arc<dyn VolumeDriver>,
    layer: L,
}

impl<L: Layer> Layered<L> {
    /// Wraps `inner` in `layer`.
    pub fn new(inner: Arc<dyn VolumeDriver>, layer: L) -> Self {
        Self { inner, layer }
    }
}

#[async_trait]
impl<L: Layer> VolumeDriver for Layered<L> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn setup(&self) -> DriverResult<()> {
        self.layer
            .around(Operation::Setup, self.inner.setup())
            .await
    }

    async fn stats(&self) -> DriverResult<BackendStats> {
        self.layer
            .around(Operation::Stats, self.inner.stats())
            .await
    }

    async fn create_volume(&self, volume: &VolumeSpec) -> DriverResult<ModelUpdate> {
        let call = self.inner.create_volume(volume);
        self.layer.around(Operation::CreateVolume, call).await
    }

    async fn delete_volume(&self, volume: &VolumeSpec) -> DriverResult<()> {
        let call = self.inner.delete_volume(volume);
        self.layer.around(Operation::DeleteVolume, call).await
    }

    async fn create_snapshot(
        &self,
        snapshot: &SnapshotSpec,
        volume: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let call = self.inner.create_snapshot(snapshot, volume);
        self.layer.around(Operation::CreateSnapshot, call).await
    }

    async fn delete_snapshot(&self, snapshot: &SnapshotSpec) -> DriverResult<()> {
        let call = self.inner.delete_snapshot(snapshot);
        self.layer.around(Operation::DeleteSnapshot, call).await
    }

    async fn create_volume_from_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<ModelUpdate> {
        let call = self.inner.create_volume_from_snapshot(volume, snapshot);
        self.layer
            .around(Operation::CreateVolumeFromSnapshot, call)
            .await
    }

    async fn create_cloned_volume(
        &self,
        volume: &VolumeSpec,
        source: &VolumeSpec,
    ) -> DriverResult<ModelUpdate> {
        let call = self.inner.create_cloned_volume(volume, source);
        self.layer.around(Operation::CreateClonedVolume, call).await
    }

    async fn extend_volume(&self, volume: &VolumeSpec, new_size: i64) -> DriverResult<()> {
        let call = self.inner.extend_volume(volume, new_size);
        self.layer.around(Operation::ExtendVolume, call).await
    }

    async fn revert_to_snapshot(
        &self,
        volume: &VolumeSpec,
        snapshot: &SnapshotSpec,
    ) -> DriverResult<()> {
        let call = self.inner.revert_to_snapshot(volume, snapshot);
        self.layer.around(Operation::RevertToSnapshot, call).await
    }

    async fn initialize_connection(
        &self,
        volume: &VolumeSpec,
        export: &ExportSpec,
    ) -> DriverResult<ConnectionInfo> {
        let call = self.inner.initialize_connection(volume, export);
        self.layer
            .around(Operation::InitializeConnection, call)
            .await
    }

    async fn terminate_connection(
        &self,
        volume: &VolumeSpec,
        attachment_id: Option<&str>,
    ) -> DriverResult<()> {
        let call = self.inner.terminate_connection(volume, attachment_id);
        self.layer
            .around(Operation::TerminateConnection, call)
            .await
    }

    async fn local_attach(&self, volume: &VolumeSpec) -> DriverResult<LocalDevice> {
        let call = self.inner.local_attach(volume);
        self.layer.around(Operation::LocalAttach, call).await
    }

    async fn local_detach(&self, volume: &VolumeSpec) -> DriverResult<()> {
        let call = self.inner.local_detach(volume);
        self.layer.around(Operation::LocalDetach, call).await
    }

    fn data_access(&self) -> DataAccess<'_> {
        self.layer.data_access(self.inner.data_access())
    }
}

/// The options of every layer, for the configuration reference: they apply
/// to a backend section whatever its driver.
pub const OPTIONS: &[&[OptionDoc]] = &[
    timeout::OPTIONS,
    #[cfg(feature = "fault-injection")]
    fault::OPTIONS,
];

/// Wraps a freshly built driver in the layers its backend section asks for:
/// fault injection (when compiled in and configured) inside the timeout layer,
/// so injected delays count against the deadlines.
pub(crate) fn wrap(
    config: &BackendConfig,
    driver: Arc<dyn VolumeDriver>,
) -> DriverResult<Arc<dyn VolumeDriver>> {
    #[cfg(feature = "fault-injection")]
    let driver = match fault::FaultLayer::from_config(config)? {
        Some(layer) => Arc::new(Layered::new(driver, layer)),
        None => driver,
    };
    #[cfg(not(feature = "fault-injection"))]
    refuse_fault_options(config)?;
    let timeouts = timeout::TimeoutLayer::from_config(config)?;
    Ok(Arc::new(Layered::new(driver, timeouts)))
}

/// Fault-injection options in a build without the layer are a configuration
/// error rather than silently ignored.
#[cfg(not(feature = "fault-injection"))]
fn refuse_fault_options(config: &BackendConfig) -> DriverResult<()> {
    match config.options.keys().find(|key| key.starts_with("fault_")) {
        Some(key) => Err(DriverError::InvalidConfig(format!(
            "backend {}: {key} needs a test build with the fault-injection feature",
            config.name
        ))),
        None => Ok(()),
    }
}

/// Parses `operation:value` pairs separated by commas (oslo.config's dict
/// syntax), each value by `parse`.
pub(crate) fn operation_map<T>(
    config: &BackendConfig,
    key: &str,
    raw: &str,
    parse: impl Fn(&str) -> Option<T>,
    want: &str,
) -> DriverResult<Vec<(Operation, T)>> {
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (op, value) = entry.split_once(':').unwrap_or((entry, ""));
            let bad = |why: String| {
                DriverError::InvalidConfig(format!(
                    "backend {}: {key} = {raw:?}: {entry:?} {why}",
                    config.name
                ))
            };
            let op = op.trim().parse::<Operation>().map_err(bad)?;
            let value = parse(value.trim()).ok_or_else(|| bad(format!("must be {want}")))?;
            Ok((op, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_their_names() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(*op));
        }
        assert!("create".parse::<Operation>().is_err());
    }
}
