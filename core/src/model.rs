//! The resources Scoria stores, as plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::status::{AttachStatus, SnapshotStatus, VolumeStatus};
use crate::time::Timestamp;

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
    pub host: Option<Host>,
    pub availability_zone: String,
    pub volume_type_id: Option<String>,
    /// The volume type's name, read along with the volume (never written).
    pub volume_type_name: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub bootable: bool,
    pub multiattach: bool,
    /// Whether the backend reaches several volumes through one target (3.48).
    pub shared_targets: bool,
    /// Id of the volume service that holds the volume (3.48).
    pub service_uuid: Option<String>,
    /// Attachments in `attached` state, as the volume view lists them.
    pub attachments: Vec<AttachedTo>,
    /// Driver-owned location data returned at create.
    pub provider_location: Option<String>,
    /// Admin metadata (`readonly`, `attached_mode`, and the keys of
    /// [`admin_keys`]).
    pub admin_metadata: Metadata,
    pub metadata: Metadata,
    /// What the volume keeps of the Glance image it was made from
    /// (`volume_image_metadata`); read with the volume, written only through
    /// the database's image metadata functions.
    pub image_metadata: Metadata,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// Admin-metadata keys Scoria keeps for itself (never shown to users).
pub mod admin_keys {
    /// The Glance image a volume in `creating` / `downloading` is filled from.
    pub const IMAGE_SOURCE: &str = "image_source";
    /// The Glance image a volume in `uploading` is being uploaded into.
    pub const IMAGE_UPLOAD: &str = "image_upload";
    /// Marks a volume of the image-volume cache (the value: the image).
    pub const IMAGE_CACHE: &str = "image_cache";
}

impl Volume {
    /// The `host@backend` part of `host`, which names the volume service.
    pub fn backend(&self) -> Option<&str> {
        self.host.as_ref().map(Host::backend)
    }
}

/// How an attached host may use a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Read and write (`rw`).
    Rw,
    /// Read only (`ro`).
    Ro,
}

impl AccessMode {
    /// `rw` or `ro`, as Cinder spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::Rw => "rw",
            AccessMode::Ro => "ro",
        }
    }

    /// Parses `rw` or `ro`.
    pub fn parse(s: &str) -> Option<AccessMode> {
        match s {
            "rw" => Some(AccessMode::Rw),
            "ro" => Some(AccessMode::Ro),
            _ => None,
        }
    }
}

/// CHAP credentials of one attachment, made by Scoria when a host first asks
/// for a connection and kept so the export can be restored after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chap {
    pub username: String,
    pub password: String,
}

/// The host that wants to reach a volume (os-brick's connector properties).
pub type Connector = serde_json::Map<String, serde_json::Value>;

/// os-brick-style connection information: `{driver_volume_type, data}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub driver_volume_type: String,
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// An `attached` attachment, as a volume lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachedTo {
    pub attachment_id: String,
    pub instance_uuid: Option<String>,
    pub attached_host: Option<String>,
    pub mountpoint: Option<String>,
    pub attached_at: Option<String>,
}

/// One attachment of a volume to a host or server.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: String,
    pub volume_id: String,
    /// The volume's project, so listings need no join.
    pub project_id: String,
    /// The Nova server, if any.
    pub instance_uuid: Option<String>,
    /// The connector's `host`, or the `host_name` of a legacy attach.
    pub attached_host: Option<String>,
    pub mountpoint: Option<String>,
    pub attach_status: AttachStatus,
    /// `rw` or `ro` once decided.
    pub attach_mode: Option<AccessMode>,
    /// The host's connector, once given.
    pub connector: Option<Connector>,
    /// What the driver returned for the connector.
    pub connection_info: Option<ConnectionInfo>,
    /// Credentials of this attachment's export.
    pub auth: Option<Chap>,
    pub attached_at: Option<String>,
    pub detached_at: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Attachment {
    /// A new attachment of `volume` in `status`, for `instance_uuid` if any,
    /// with nothing exported yet.
    pub fn new(volume: &Volume, status: AttachStatus, instance_uuid: Option<String>) -> Self {
        let now = crate::time::now();
        Attachment {
            id: uuid::Uuid::new_v4().to_string(),
            volume_id: volume.id.clone(),
            project_id: volume.project_id.clone(),
            instance_uuid,
            attached_host: None,
            mountpoint: None,
            attach_status: status,
            attach_mode: None,
            connector: None,
            connection_info: None,
            auth: None,
            attached_at: None,
            detached_at: None,
            created_at: now.clone(),
            updated_at: Some(now),
        }
    }
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

impl VolumeType {
    /// Whether volumes of this type may be attached to several servers at
    /// once: the extra spec `multiattach` is `<is> True` (or plain `True`).
    pub fn multiattach(&self) -> bool {
        self.extra_specs.get("multiattach").is_some_and(|v| {
            let v = v.trim();
            let v = v.strip_prefix("<is>").unwrap_or(v).trim();
            v.eq_ignore_ascii_case("true")
        })
    }
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
    pub updated_at: Timestamp,
    pub created_at: Timestamp,
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
