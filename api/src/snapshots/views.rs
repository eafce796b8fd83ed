//! JSON shapes of snapshots, per microversion and caller.

use scoria_core::model::Snapshot;
use serde_json::{json, Value};

use crate::http::context::Ctx;

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
    if ctx.version.at_least(41) {
        o.insert("user_id".into(), json!(s.user_id));
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
