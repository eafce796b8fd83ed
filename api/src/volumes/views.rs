//! JSON shapes of volumes, per microversion and caller.

use std::collections::BTreeMap;

use scoria_core::host::Host;
use scoria_core::model::{Metadata, Volume};
use serde::Serialize;

use crate::http::context::Ctx;
use crate::http::links::{link_pair, Link};

/// A JSON `null` that a view always shows.
type Null = Option<()>;

/// `{id, name, links}` as in `GET /volumes`.
#[derive(Debug, Serialize)]
pub struct VolumeSummary<'a> {
    id: &'a str,
    name: Option<&'a str>,
    links: [Link; 2],
}

/// The summary view of a volume.
pub fn volume_summary<'a>(ctx: &Ctx, v: &'a Volume) -> VolumeSummary<'a> {
    VolumeSummary {
        id: &v.id,
        name: v.name.as_deref(),
        links: link_pair(ctx, "volumes", &v.id),
    }
}

/// A volume as `GET /volumes/{id}` shows it. Fields that only some callers or
/// microversions see are `Option`s skipped when `None`; `Some(None)` is `null`.
#[derive(Debug, Serialize)]
pub struct VolumeDetail<'a> {
    id: &'a str,
    status: &'static str,
    size: i64,
    availability_zone: &'a str,
    created_at: &'a str,
    updated_at: Option<&'a str>,
    name: Option<&'a str>,
    description: Option<&'a str>,
    volume_type: Option<&'a str>,
    snapshot_id: Option<&'a str>,
    source_volid: Option<&'a str>,
    metadata: BTreeMap<&'a str, &'a str>,
    links: [Link; 2],
    user_id: &'a str,
    bootable: &'static str,
    encrypted: bool,
    replication_status: Null,
    consistencygroup_id: Null,
    multiattach: bool,
    attachments: Vec<AttachmentRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_targets: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_uuid: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    migration_status: Option<Null>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<Null>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_id: Option<Null>,
    #[serde(
        rename = "os-vol-tenant-attr:tenant_id",
        skip_serializing_if = "Option::is_none"
    )]
    tenant_id: Option<&'a str>,
    #[serde(
        rename = "os-vol-host-attr:host",
        skip_serializing_if = "Option::is_none"
    )]
    host: Option<Option<&'a str>>,
    #[serde(
        rename = "os-vol-mig-status-attr:migstat",
        skip_serializing_if = "Option::is_none"
    )]
    migstat: Option<Null>,
    #[serde(
        rename = "os-vol-mig-status-attr:name_id",
        skip_serializing_if = "Option::is_none"
    )]
    name_id: Option<Null>,
    /// Shown on show and list only, and only when the volume has some.
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_image_metadata: Option<&'a Metadata>,
}

/// An attachment as a volume lists it (only `attached` ones); `id` is the
/// volume's id, as in Cinder.
#[derive(Debug, Serialize)]
pub struct AttachmentRef<'a> {
    id: &'a str,
    attachment_id: &'a str,
    volume_id: &'a str,
    server_id: Option<&'a str>,
    /// Shown to administrators only.
    host_name: Option<&'a str>,
    device: Option<&'a str>,
    attached_at: Option<&'a str>,
}

/// The detail view; `extended` adds the `os-vol-*` attributes and the
/// `volume_image_metadata` shown on show and list (not on create and update
/// responses).
pub fn volume_detail<'a>(ctx: &Ctx, v: &'a Volume, extended: bool) -> VolumeDetail<'a> {
    let admin = ctx.rc.is_admin;
    let when = |cond: bool| cond.then_some(None);
    let mut metadata: BTreeMap<&str, &str> = v
        .metadata
        .iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect();
    for key in ["readonly", "attached_mode"] {
        if let Some(val) = v.admin_metadata.get(key) {
            metadata.insert(key, val);
        }
    }
    VolumeDetail {
        id: &v.id,
        status: v.status.as_str(),
        size: v.size,
        availability_zone: &v.availability_zone,
        created_at: &v.created_at,
        updated_at: v.updated_at.as_deref(),
        name: v.name.as_deref(),
        description: v.description.as_deref(),
        volume_type: v
            .volume_type_name
            .as_deref()
            .or(v.volume_type_id.as_deref()),
        snapshot_id: v.snapshot_id.as_deref(),
        source_volid: v.source_volid.as_deref(),
        metadata,
        links: link_pair(ctx, "volumes", &v.id),
        user_id: &v.user_id,
        bootable: if v.bootable { "true" } else { "false" },
        encrypted: false,
        replication_status: None,
        consistencygroup_id: None,
        multiattach: v.multiattach,
        attachments: v
            .attachments
            .iter()
            .map(|a| AttachmentRef {
                id: &v.id,
                attachment_id: &a.attachment_id,
                volume_id: &v.id,
                server_id: a.instance_uuid.as_deref(),
                host_name: if admin {
                    a.attached_host.as_deref()
                } else {
                    None
                },
                device: a.mountpoint.as_deref(),
                attached_at: a.attached_at.as_deref(),
            })
            .collect(),
        shared_targets: ctx.version.at_least(48).then_some(v.shared_targets),
        service_uuid: ctx
            .version
            .at_least(48)
            .then_some(v.service_uuid.as_deref()),
        migration_status: when(admin),
        group_id: when(ctx.version.at_least(13)),
        provider_id: when(admin && ctx.version.at_least(21)),
        tenant_id: extended.then_some(v.project_id.as_str()),
        host: (extended && admin).then_some(v.host.as_ref().map(Host::as_str)),
        migstat: when(extended && admin),
        name_id: when(extended && admin),
        volume_image_metadata: (extended && !v.image_metadata.is_empty())
            .then_some(&v.image_metadata),
    }
}

/// `{"volume": …}`.
#[derive(Debug, Serialize)]
pub struct VolumeBody<'a> {
    pub volume: VolumeDetail<'a>,
}

#[cfg(test)]
mod tests {
    use scoria_core::status::{AttachStatus, VolumeStatus};
    use serde_json::Value;

    use super::*;

    fn vol(image_metadata: Metadata) -> Volume {
        Volume {
            id: "v1".into(),
            project_id: "p1".into(),
            user_id: "u".into(),
            name: None,
            description: None,
            size: 1,
            status: VolumeStatus::Available,
            previous_status: None,
            attach_status: AttachStatus::Detached,
            host: None,
            availability_zone: "nova".into(),
            volume_type_id: None,
            volume_type_name: None,
            snapshot_id: None,
            source_volid: None,
            bootable: true,
            multiattach: false,
            shared_targets: false,
            service_uuid: None,
            attachments: Vec::new(),
            provider_location: None,
            admin_metadata: Metadata::new(),
            metadata: Metadata::new(),
            image_metadata,
            created_at: "2026-01-01T00:00:00.000000".into(),
            updated_at: None,
        }
    }

    fn json(ctx: &Ctx, v: &Volume, extended: bool) -> Value {
        serde_json::to_value(volume_detail(ctx, v, extended)).unwrap()
    }

    #[test]
    fn image_metadata_only_on_show_and_list_and_only_when_present() {
        let ctx = Ctx::for_test(false, 0);
        let image = Metadata::from([("image_id".to_string(), "i1".to_string())]);
        let with = vol(image);
        assert_eq!(
            json(&ctx, &with, true)["volume_image_metadata"]["image_id"],
            "i1"
        );
        assert_eq!(json(&ctx, &with, true)["bootable"], "true");
        assert!(json(&ctx, &with, false)
            .get("volume_image_metadata")
            .is_none());
        let without = vol(Metadata::new());
        assert!(json(&ctx, &without, true)
            .get("volume_image_metadata")
            .is_none());
    }
}
