//! The resources Scoria stores, as plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::status::{AttachStatus, SnapshotStatus, VolumeStatus};

/// Key/value metadata as Cinder shows it (string to string, sorted by key).
pub type Metadata = BTreeMap<String, String>;

/// A block storage volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Size in GiB.
    pub size: i64,
    pub status: VolumeStatus,
    /// The status to return to after a temporary one (`extending`, …).
    pub previous_status: Option<VolumeStatus>,
    pub attach_status: AttachStatus,
    /// `host@backend#pool` once scheduled.
    pub host: Option<String>,
    pub availability_zone: String,
    pub volume_type_id: Option<String>,
    /// The volume type's name, read along with the volume (never written).
    pub volume_type_name: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub bootable: bool,
    pub multiattach: bool,
    /// Driver-owned location data returned at create.
    pub provider_location: Option<String>,
    /// Admin metadata (`readonly`, `attached_mode`, …).
    pub admin_metadata: Metadata,
    pub metadata: Metadata,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Volume {
    /// The `host@backend` part of `host`, which names the volume service.
    pub fn backend(&self) -> Option<&str> {
        self.host.as_deref().map(backend_of)
    }
}

/// Strips the `#pool` suffix from `host@backend#pool`.
pub fn backend_of(host: &str) -> &str {
    host.split_once('#').map_or(host, |(b, _)| b)
}

/// The pool part of `host@backend#pool`, if any.
pub fn pool_of(host: &str) -> Option<&str> {
    host.split_once('#').map(|(_, p)| p)
}

/// A point-in-time copy of a volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size: i64,
    pub status: SnapshotStatus,
    pub progress: String,
    pub provider_location: Option<String>,
    pub metadata: Metadata,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// A volume type: a named set of extra specs that steer scheduling.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
    pub extra_specs: Metadata,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// The name of the type that always exists and is used when none is asked for.
pub const DEFAULT_TYPE_NAME: &str = "__DEFAULT__";

/// A running Scoria service (scheduler or volume backend), with its heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: String,
    /// `cinder-scheduler` or `cinder-volume`, as clients expect.
    pub binary: String,
    /// `host` for a scheduler, `host@backend` for a volume service.
    pub host: String,
    pub availability_zone: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    /// Last heartbeat.
    pub updated_at: String,
    pub created_at: String,
    /// The latest stats report of a volume service, as JSON.
    pub stats: Option<serde_json::Value>,
}

/// Binary name of the scheduler service.
pub const SCHEDULER_BINARY: &str = "cinder-scheduler";
/// Binary name of a volume service.
pub const VOLUME_BINARY: &str = "cinder-volume";

/// A message about an asynchronous failure, shown by `GET /messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub id: String,
    pub project_id: String,
    pub request_id: String,
    pub resource_type: String,
    pub resource_uuid: Option<String>,
    /// `VOLUME_<RESOURCE>_<action>_<detail>`.
    pub event_id: String,
    pub message_level: String,
    pub user_message: String,
    pub created_at: String,
    pub expires_at: String,
}
