//! Turning stored resources into what the driver is told.

use scoria_core::host::Host;
use scoria_core::model::{Snapshot, Volume};
use scoria_core::Result;
use scoria_drivers::{SnapshotSpec, VolumeSpec};

use crate::VolumeManager;

impl VolumeManager {
    /// The driver's view of a volume, with its type's extra specs.
    pub(crate) async fn volume_spec(&self, v: &Volume) -> Result<VolumeSpec> {
        let extra_specs = match &v.volume_type_id {
            Some(type_id) => match self.db.get_volume_type(type_id).await {
                Ok(t) => t.extra_specs,
                Err(scoria_core::Error::NotFound(_)) => Default::default(),
                Err(e) => return Err(e),
            },
            None => Default::default(),
        };
        Ok(VolumeSpec {
            id: v.id.clone(),
            size: v.size,
            pool: v.host.as_ref().and_then(Host::pool).map(str::to_string),
            provider_location: v.provider_location.clone(),
            extra_specs,
        })
    }
}

/// The driver's view of a snapshot.
pub(crate) fn snapshot_spec(s: &Snapshot) -> SnapshotSpec {
    SnapshotSpec {
        id: s.id.clone(),
        volume_id: s.volume_id.clone(),
        size: s.size,
        provider_location: s.provider_location.clone(),
    }
}
