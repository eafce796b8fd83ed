//! JSON shapes of volumes and snapshots, per microversion and caller.

use scoria_core::model::{Snapshot, Volume};
use serde_json::{json, Map, Value};

use crate::context::Ctx;

/// `links` of a resource: `self` and `bookmark`.
pub fn links(ctx: &Ctx, collection: &str, id: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/{collection}/{id}", ctx.link_base)},
        {"rel": "bookmark", "href": format!("{}/{collection}/{id}", ctx.bookmark_base)},
    ])
}

/// `{id, name, links}` as in `GET /volumes`.
pub fn volume_summary(ctx: &Ctx, v: &Volume) -> Value {
    json!({"id": v.id, "name": v.name, "links": links(ctx, "volumes", &v.id)})
}

/// The detail view; `extended` adds the `os-vol-*` attributes shown on
/// show and list (not on create and update responses).
pub fn volume_detail(ctx: &Ctx, v: &Volume, extended: bool) -> Value {
    let admin = ctx.rc.is_admin;
    let mut metadata: Map<String, Value> = v
        .metadata
        .iter()
        .map(|(k, val)| (k.clone(), json!(val)))
        .collect();
    for key in ["readonly", "attached_mode"] {
        if let Some(val) = v.admin_metadata.get(key) {
            metadata.insert(key.into(), json!(val));
        }
    }
    let mut out = json!({
        "id": v.id,
        "status": v.status.as_str(),
        "size": v.size,
        "availability_zone": v.availability_zone,
        "created_at": v.created_at,
        "updated_at": v.updated_at,
        "name": v.name,
        "description": v.description,
        "volume_type": v.volume_type_name.as_deref().or(v.volume_type_id.as_deref()),
        "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid,
        "metadata": metadata,
        "links": links(ctx, "volumes", &v.id),
        "user_id": v.user_id,
        "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false,
        "replication_status": null,
        "consistencygroup_id": null,
        "multiattach": v.multiattach,
        "attachments": [],
    });
    let o = out.as_object_mut().expect("object literal");
    if admin {
        o.insert("migration_status".into(), Value::Null);
    }
    if ctx.version.at_least(13) {
        o.insert("group_id".into(), Value::Null);
    }
    if admin && ctx.version.at_least(21) {
        o.insert("provider_id".into(), Value::Null);
    }
    if extended {
        o.insert("os-vol-tenant-attr:tenant_id".into(), json!(v.project_id));
        if admin {
            o.insert("os-vol-host-attr:host".into(), json!(v.host));
            o.insert("os-vol-mig-status-attr:migstat".into(), Value::Null);
            o.insert("os-vol-mig-status-attr:name_id".into(), Value::Null);
        }
    }
    out
}

/// A snapshot; `extended` adds the `os-extended-snapshot-attributes:*` keys.
pub fn snapshot(ctx: &Ctx, s: &Snapshot, extended: bool) -> Value {
    let mut out = json!({
        "id": s.id,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "name": s.name,
        "description": s.description,
        "volume_id": s.volume_id,
        "status": s.status.as_str(),
        "size": s.size,
        "metadata": s.metadata,
    });
    let o = out.as_object_mut().expect("object literal");
    if ctx.version.at_least(14) {
        o.insert("group_snapshot_id".into(), Value::Null);
    }
    if extended {
        o.insert(
            "os-extended-snapshot-attributes:project_id".into(),
            json!(s.project_id),
        );
        o.insert(
            "os-extended-snapshot-attributes:progress".into(),
            json!(s.progress),
        );
    }
    out
}
