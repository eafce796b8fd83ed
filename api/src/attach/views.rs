//! The JSON shapes of attachments: the attachments API's summary and detail
//! views, and the connection info both front-ends hand to Nova.

use scoria_core::model::{AccessMode, Attachment, ConnectionInfo};
use serde_json::{json, Map, Value};

/// `""` for an unset time, as Cinder shows it.
fn when(t: &Option<String>) -> Value {
    Value::String(t.clone().unwrap_or_default())
}

/// `{id, status, instance, volume_id}`.
pub(crate) fn summary(a: &Attachment) -> Value {
    json!({
        "id": a.id,
        "status": a.attach_status.as_str(),
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
    })
}

/// The detail view.
pub(crate) fn detail(a: &Attachment) -> Value {
    json!({
        "id": a.id,
        "status": a.attach_status.as_str(),
        "instance": a.instance_uuid,
        "volume_id": a.volume_id,
        "attached_at": when(&a.attached_at),
        "detached_at": when(&a.detached_at),
        "attach_mode": a.attach_mode.map(AccessMode::as_str),
        "connection_info": flat_connection_info(a),
    })
}

/// The connection info as the attachments API shows it: the driver's data
/// flattened with its type, the attachment id and the standard keys.
pub(crate) fn flat_connection_info(att: &Attachment) -> Map<String, Value> {
    let Some(info) = &att.connection_info else {
        return Map::new();
    };
    let mut out = standard_data(att, info);
    out.insert(
        "driver_volume_type".into(),
        info.driver_volume_type.clone().into(),
    );
    out.insert("attachment_id".into(), att.id.clone().into());
    out.insert(
        "enforce_multipath".into(),
        att.connector
            .as_ref()
            .and_then(|c| c.get("enforce_multipath"))
            .cloned()
            .unwrap_or(Value::Bool(false)),
    );
    out
}

/// The driver's data plus the keys every connection carries (`access_mode`,
/// `encrypted`, `qos_specs`), as the legacy `os-initialize_connection` nests it.
pub(crate) fn standard_data(att: &Attachment, info: &ConnectionInfo) -> Map<String, Value> {
    let mut data = info.data.clone();
    let mode = att.attach_mode.unwrap_or(AccessMode::Rw);
    data.insert("access_mode".into(), mode.as_str().into());
    data.entry("encrypted").or_insert(Value::Bool(false));
    data.entry("qos_specs").or_insert(Value::Null);
    data.insert("attachment_id".into(), att.id.clone().into());
    data
}
