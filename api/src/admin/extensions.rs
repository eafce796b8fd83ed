//! `/extensions`: the legacy extension names of the features Scoria serves,
//! for clients that still look them up.

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::fault::{ApiError, ApiResult};
use crate::ApiState;

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/extensions", get(list))
        .route("/extensions/{alias}", get(show))
}

/// One served extension: alias, name, description.
type Extension = (&'static str, &'static str, &'static str);

/// The extensions whose resources or attributes Scoria serves.
const EXTENSIONS: &[Extension] = &[
    (
        "os-availability-zone",
        "AvailabilityZones",
        "Lists the availability zones of the volume services.",
    ),
    (
        "os-extended-services",
        "ExtendedServices",
        "Disables services with a logged reason.",
    ),
    (
        "os-extended-snapshot-attributes",
        "ExtendedSnapshotAttributes",
        "Shows the project and progress of snapshots.",
    ),
    ("os-quota-sets", "Quotas", "Shows the quotas of projects."),
    (
        "os-services",
        "Services",
        "Lists, enables and disables services.",
    ),
    (
        "os-types-extra-specs",
        "TypesExtraSpecs",
        "Manages the extra specs of volume types.",
    ),
    (
        "os-types-manage",
        "TypesManage",
        "Creates, updates and deletes volume types.",
    ),
    (
        "os-used-limits",
        "UsedLimits",
        "Adds project usage to the absolute limits.",
    ),
    (
        "os-vol-host-attr",
        "VolumeHostAttribute",
        "Shows the host of volumes.",
    ),
    (
        "os-vol-image-meta",
        "VolumeImageMetadata",
        "Shows and changes the image metadata of volumes.",
    ),
    (
        "os-vol-mig-status-attr",
        "VolumeMigStatusAttribute",
        "Shows the migration status of volumes.",
    ),
    (
        "os-vol-tenant-attr",
        "VolumeTenantAttribute",
        "Shows the project of volumes.",
    ),
    (
        "scheduler-stats",
        "Scheduler_stats",
        "Shows the pools the scheduler places volumes on.",
    ),
];

/// When Scoria began serving them all.
const UPDATED: &str = "2026-11-21T00:00:00+00:00";

fn view((alias, name, description): &Extension) -> Value {
    json!({"alias": alias, "name": name, "description": description, "updated": UPDATED, "links": []})
}

async fn list() -> Json<Value> {
    Json(json!({ "extensions": EXTENSIONS.iter().map(view).collect::<Vec<_>>() }))
}

#[derive(Deserialize)]
struct AliasPath {
    alias: String,
}

fn find(alias: &str) -> Option<&'static Extension> {
    EXTENSIONS.iter().find(|(a, _, _)| *a == alias)
}

async fn show(Path(p): Path<AliasPath>) -> ApiResult<Json<Value>> {
    let ext = find(&p.alias).ok_or_else(|| {
        ApiError(Error::NotFound(format!(
            "Extension {} could not be found.",
            p.alias
        )))
    })?;
    Ok(Json(json!({ "extension": view(ext) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_unique_and_found() {
        let mut aliases: Vec<&str> = EXTENSIONS.iter().map(|(a, _, _)| *a).collect();
        aliases.sort_unstable();
        aliases.dedup();
        assert_eq!(aliases.len(), EXTENSIONS.len());
        assert_eq!(find("os-services").map(|e| e.1), Some("Services"));
        assert!(find("os-nothing").is_none());
        assert_eq!(view(find("os-quota-sets").unwrap())["links"], json!([]));
    }
}
