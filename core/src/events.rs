//! User messages about asynchronous failures, with Cinder's event ids
//! (`VOLUME_<RESOURCE>_<action>_<detail>`) so clients can match on them.

use crate::model::UserMessage;
use crate::{time, RequestContext};

/// How long a message is kept (Cinder's default: 30 days).
pub const MESSAGE_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// What was being done when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ScheduleAllocateVolume,
    ExtendVolume,
    CreateVolumeFromBackend,
    SnapshotCreate,
    SnapshotDelete,
    DeleteVolume,
    RevertVolume,
    CopyVolumeToImage,
    CopyImageToVolume,
}

impl Action {
    fn id_and_text(self) -> (&'static str, &'static str) {
        match self {
            Action::ScheduleAllocateVolume => ("001", "schedule allocate volume"),
            Action::ExtendVolume => ("007", "extend volume"),
            Action::CreateVolumeFromBackend => ("008", "create volume from backend storage"),
            Action::SnapshotCreate => ("009", "create snapshot"),
            Action::SnapshotDelete => ("010", "delete snapshot"),
            Action::DeleteVolume => ("020", "delete volume"),
            Action::RevertVolume => ("023", "revert volume to snapshot"),
            Action::CopyVolumeToImage => ("003", "copy volume to image"),
            Action::CopyImageToVolume => ("005", "copy image to volume"),
        }
    }
}

/// Why it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    UnknownError,
    NoBackendAvailable,
    DriverFailed,
    InterruptedByRestart,
    FailedToUploadVolume,
    NotEnoughSpaceForImage,
}

impl Detail {
    fn id(self) -> &'static str {
        match self {
            Detail::UnknownError => "001",
            Detail::NoBackendAvailable => "003",
            Detail::DriverFailed => "009",
            Detail::InterruptedByRestart => "030",
            Detail::FailedToUploadVolume => "004",
            Detail::NotEnoughSpaceForImage => "007",
        }
    }
}

/// The resource a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Volume,
    Snapshot,
}

impl Resource {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Resource::Volume => ("VOLUME", "VOLUME"),
            Resource::Snapshot => ("VOLUME_SNAPSHOT", "SNAPSHOT"),
        }
    }
}

/// Builds a message for `resource_uuid`; `explanation` says what happened and what to do.
pub fn user_message(
    ctx: &RequestContext,
    resource: Resource,
    resource_uuid: &str,
    action: Action,
    detail: Detail,
    explanation: &str,
) -> UserMessage {
    let (type_name, event_name) = resource.names();
    let (action_id, action_text) = action.id_and_text();
    UserMessage {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: ctx.project_id.clone(),
        request_id: ctx.request_id.clone(),
        resource_type: type_name.to_string(),
        resource_uuid: Some(resource_uuid.to_string()),
        event_id: format!("VOLUME_{event_name}_{action_id}_{}", detail.id()),
        message_level: "ERROR".into(),
        user_message: format!("{action_text}:{explanation}"),
        created_at: time::now(),
        expires_at: time::offset_from_now(MESSAGE_TTL_SECONDS),
    }
}
