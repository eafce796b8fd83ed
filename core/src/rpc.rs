//! The bodies of bus messages between api, scheduler and volume managers.
//!
//! Every body travels inside a versioned envelope (see `scoria-bus`); bump
//! [`RPC_VERSION`] when a body changes incompatibly.

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::model::{AccessMode, Chap, Connector, Metadata, Volume};

/// The version of the message bodies below.
pub const RPC_VERSION: u32 = 1;

/// Work queue of the schedulers (any one scheduler takes each message).
pub const SCHEDULER_TOPIC: &str = "scoria-scheduler";

/// Fanout on which volume services publish their stats to every scheduler.
pub const STATS_FANOUT: &str = "scoria-scheduler-stats";

/// Work queue of one backend (`host@backend`).
pub fn volume_topic(backend: &str) -> String {
    format!("scoria-volume.{backend}")
}

/// What the scheduler needs to place a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSpec {
    pub volume_id: String,
    pub size: i64,
    pub volume_type_id: Option<String>,
    /// The volume type's extra specs at request time.
    pub extra_specs: Metadata,
    pub availability_zone: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    /// A copy of a snapshot or volume must land on the backend (`host@backend`) that holds it.
    pub source_backend: Option<String>,
    /// The Glance image to fill the volume from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Backends already tried for this volume, oldest first.
    #[serde(default)]
    pub attempts: Vec<String>,
    /// Why each failed attempt failed (`backend: error`), oldest first.
    #[serde(default)]
    pub attempt_errors: Vec<String>,
}

impl RequestSpec {
    /// The request to place `v`, a volume of a type with `extra_specs`,
    /// copied from data on `source_backend` (`host@backend`) when it has a
    /// snapshot or source volume; nothing tried yet.
    pub fn new(v: &Volume, extra_specs: Metadata, source_backend: Option<String>) -> Self {
        RequestSpec {
            volume_id: v.id.clone(),
            size: v.size,
            volume_type_id: v.volume_type_id.clone(),
            extra_specs,
            availability_zone: Some(v.availability_zone.clone()),
            snapshot_id: v.snapshot_id.clone(),
            source_volid: v.source_volid.clone(),
            source_backend,
            image_id: v
                .admin_metadata
                .get(crate::model::admin_keys::IMAGE_SOURCE)
                .cloned(),
            attempts: Vec::new(),
            attempt_errors: Vec::new(),
        }
    }
}

/// Casts to the scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum SchedulerRequest {
    /// Pick a pool for a volume in `creating` and hand it to that backend.
    CreateVolume { request_spec: RequestSpec },
}

/// Casts to one backend's volume manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum VolumeRequest {
    /// Create the volume on `host` (`host@backend#pool`), then mark it available.
    CreateVolume {
        request_spec: Box<RequestSpec>,
        host: Host,
    },
    DeleteVolume {
        volume_id: String,
    },
    CreateSnapshot {
        snapshot_id: String,
    },
    DeleteSnapshot {
        snapshot_id: String,
    },
    ExtendVolume {
        volume_id: String,
        new_size: i64,
    },
    /// Revert the volume in `reverting` to its latest snapshot, in `restoring`.
    RevertToSnapshot {
        volume_id: String,
        snapshot_id: String,
    },
    /// Upload the volume in `uploading` into the Glance image `image`,
    /// which the api created (status `queued`).
    UploadImage {
        volume_id: String,
        image: ImageUpload,
    },
    /// A `call`: the backend's current stats and capabilities, answered with a
    /// [`StatsReport`](crate::stats::StatsReport).
    GetCapabilities,
    /// A `call`: export the volume for one attachment, answered with its
    /// [`ConnectionInfo`](crate::model::ConnectionInfo). Repeating it with the same arguments is harmless.
    InitializeConnection {
        volume_id: String,
        attachment_id: String,
        connector: Connector,
        access_mode: AccessMode,
        auth: Chap,
    },
    /// A `call`: remove one attachment's export, or all of the volume's
    /// exports when `attachment_id` is `None`; answered with `null`.
    TerminateConnection {
        volume_id: String,
        attachment_id: Option<String>,
    },
}

/// The Glance image a volume is uploaded into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUpload {
    pub image_id: String,
    /// `raw`, `qcow2`, `vmdk`, `vdi`, `vhd`, `vhdx` or `ploop`.
    pub disk_format: String,
    /// `bare` (and the others Glance knows, which hold the disk as it is).
    pub container_format: String,
}

impl VolumeRequest {
    /// Whether the sender waits for an answer.
    pub fn is_call(&self) -> bool {
        matches!(
            self,
            VolumeRequest::GetCapabilities
                | VolumeRequest::InitializeConnection { .. }
                | VolumeRequest::TerminateConnection { .. }
        )
    }
}
