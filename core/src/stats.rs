//! What drivers declare and report: capabilities and pool statistics.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::capacity::Capacity;
use crate::host::Host;
use crate::time::Timestamp;

/// What a driver can do, declared once by the driver. The scheduler copies the
/// flags into pool capabilities, the api refuses what a backend cannot do, and
/// the compliance kit picks its tests from it. The default declares nothing
/// (every flag off, no size limits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Snapshots and clones without a full data copy.
    pub native_clone: bool,
    /// Volumes allocate space only as they are written.
    pub thin_provisioning: bool,
    /// Volumes may be fully allocated up front.
    pub thick_provisioning: bool,
    /// A volume may be attached to several hosts at once.
    pub multiattach: bool,
    /// A volume may be extended while attached.
    pub online_extend: bool,
    /// Several volumes are reached through one target, so a host must
    /// serialise its connects and disconnects (`shared_targets` in Cinder).
    #[serde(default)]
    pub shared_targets: bool,
    /// Revert a volume to its latest snapshot in place.
    pub snapshot_revert: bool,
    /// The volume's bytes can be opened on the host running the driver.
    pub local_attach: bool,
    /// Smallest volume in GiB.
    pub min_volume_gb: i64,
    /// Largest volume in GiB, if limited.
    pub max_volume_gb: Option<i64>,
}

/// One pool's statistics, as a driver reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    pub pool_name: String,
    pub total_capacity_gb: Capacity,
    pub free_capacity_gb: Capacity,
    /// Sum of the sizes of volumes placed here, filled in by the volume manager.
    #[serde(default)]
    pub allocated_capacity_gb: f64,
    /// Space promised to volumes; falls back to `allocated_capacity_gb`.
    #[serde(default)]
    pub provisioned_capacity_gb: Option<f64>,
    #[serde(default)]
    pub reserved_percentage: f64,
    /// A number, or `auto`.
    #[serde(default = "default_ratio")]
    pub max_over_subscription_ratio: String,
    #[serde(default)]
    pub thin_provisioning_support: bool,
    #[serde(default)]
    pub thick_provisioning_support: bool,
    #[serde(default)]
    pub multiattach: bool,
    #[serde(default)]
    pub online_extend_support: bool,
    #[serde(default, rename = "QoS_support")]
    pub qos_support: bool,
    #[serde(default)]
    pub total_volumes: u64,
    #[serde(default)]
    pub location_info: Option<String>,
    /// Backend-specific capabilities, matched by extra specs like any other key.
    #[serde(default, flatten)]
    pub extra: Map<String, Value>,
}

fn default_ratio() -> String {
    "20.0".into()
}

/// A backend's report: backend-wide fields and its pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStats {
    pub volume_backend_name: String,
    pub vendor_name: String,
    pub driver_version: String,
    pub storage_protocol: String,
    pub pools: Vec<PoolStats>,
}

impl BackendStats {
    /// Each pool's capabilities as `GET /scheduler-stats/get_pools?detail=True`
    /// shows them and as the capabilities filter matches extra specs against:
    /// backend-wide keys merged into the pool's own.
    pub fn pool_capabilities(&self, pool: &PoolStats) -> Map<String, Value> {
        let mut map = match serde_json::to_value(pool) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in [
            ("volume_backend_name", &self.volume_backend_name),
            ("vendor_name", &self.vendor_name),
            ("driver_version", &self.driver_version),
            ("storage_protocol", &self.storage_protocol),
        ] {
            map.entry(k.to_string())
                .or_insert_with(|| Value::String(v.clone()));
        }
        if pool.provisioned_capacity_gb.is_none() {
            map.insert(
                "provisioned_capacity_gb".into(),
                Value::from(pool.allocated_capacity_gb),
            );
        }
        map
    }
}

/// What a volume service publishes on the stats fanout at a fixed interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// `host@backend`.
    pub backend: Host,
    pub availability_zone: String,
    /// When the report was made (Cinder time format on the wire).
    pub timestamp: Timestamp,
    pub capabilities: Capabilities,
    pub stats: BackendStats,
}
