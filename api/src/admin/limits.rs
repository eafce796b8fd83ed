//! Quotas and limits: `/limits` and `/os-quota-sets/{project}[/defaults]`.
//!
//! Every project has the configured default limits (per volume type:
//! unlimited); the reports add what the project uses. Backups and groups
//! do not exist in Scoria, so their usage is always zero.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use scoria_core::model::VolumeType;
use scoria_db::{Db, TypeUsage, VolumeQuery};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::context::Ctx;
use crate::http::extract::Params;
use crate::http::fault::ApiResult;
use crate::http::validate;
use crate::{ApiState, QuotaDefaults};

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/limits", get(limits))
        .route("/os-quota-sets/{target}", get(show))
        .route("/os-quota-sets/{target}/defaults", get(defaults))
}

/// The limit of every per-type quota: unlimited.
const UNLIMITED: i64 = -1;

/// What a project uses.
#[derive(Debug, Default)]
struct Usage {
    volumes: i64,
    snapshots: i64,
    /// Volumes and snapshots, in GiB.
    gigabytes: i64,
    /// Per volume type id.
    by_type: HashMap<String, TypeUsage>,
}

async fn usage_of(db: &Db, project: &str) -> ApiResult<Usage> {
    let query = VolumeQuery {
        project_id: Some(project.to_string()),
        ..Default::default()
    };
    let (volumes, volume_gb) = db.count_volumes(&query).await?;
    let (snapshots, snapshot_gb) = db.snapshot_usage(project).await?;
    Ok(Usage {
        volumes,
        snapshots,
        gigabytes: volume_gb + snapshot_gb,
        by_type: db.usage_by_type(project).await?,
    })
}

async fn limits(State(s): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    // From 3.39 an administrator may ask about another project.
    let project = params
        .get("project_id")
        .filter(|_| ctx.rc.is_admin && ctx.version.at_least(39))
        .unwrap_or(&ctx.rc.project_id);
    let used = usage_of(&s.db, project).await?;
    let q = &s.cfg.quotas;
    Ok(Json(json!({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": q.volumes,
        "maxTotalSnapshots": q.snapshots,
        "maxTotalVolumeGigabytes": q.gigabytes,
        "maxTotalBackups": q.backups,
        "maxTotalBackupGigabytes": q.backup_gigabytes,
        "totalVolumesUsed": used.volumes,
        "totalGigabytesUsed": used.gigabytes,
        "totalSnapshotsUsed": used.snapshots,
        "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }}})))
}

/// One quota of a quota set.
#[derive(Debug, PartialEq)]
struct Quota {
    key: String,
    limit: i64,
    in_use: i64,
}

fn quota(key: impl Into<String>, limit: i64, in_use: i64) -> Quota {
    Quota {
        key: key.into(),
        limit,
        in_use,
    }
}

/// Every quota of a project: the global ones, then three per volume type.
fn quotas(q: &QuotaDefaults, types: &[VolumeType], used: &Usage) -> Vec<Quota> {
    let mut out = vec![
        quota("volumes", q.volumes, used.volumes),
        quota("snapshots", q.snapshots, used.snapshots),
        quota("gigabytes", q.gigabytes, used.gigabytes),
        quota("backups", q.backups, 0),
        quota("backup_gigabytes", q.backup_gigabytes, 0),
        quota("groups", q.groups, 0),
        quota("per_volume_gigabytes", q.per_volume_gigabytes, 0),
    ];
    for t in types {
        let u = used.by_type.get(&t.id).copied().unwrap_or_default();
        out.push(quota(format!("volumes_{}", t.name), UNLIMITED, u.volumes));
        out.push(quota(
            format!("gigabytes_{}", t.name),
            UNLIMITED,
            u.gigabytes,
        ));
        out.push(quota(
            format!("snapshots_{}", t.name),
            UNLIMITED,
            u.snapshots,
        ));
    }
    out
}

/// `{"quota_set": {id, key: limit…}}`, or with usage `key: {limit, in_use, reserved}`.
fn quota_set_view(project: &str, quotas: &[Quota], with_usage: bool) -> Value {
    let mut set = Map::new();
    set.insert("id".into(), project.into());
    for q in quotas {
        let value = match with_usage {
            true => json!({"limit": q.limit, "in_use": q.in_use, "reserved": 0}),
            false => q.limit.into(),
        };
        set.insert(q.key.clone(), value);
    }
    json!({ "quota_set": set })
}

#[derive(Deserialize)]
struct QuotaPath {
    target: String,
}

/// Anyone may read their own project's quotas; only administrators others'.
fn authorize(ctx: &Ctx, target: &str) -> ApiResult<()> {
    if target == ctx.rc.project_id {
        Ok(())
    } else {
        ctx.require_admin("volume_extension:quotas:show")
    }
}

async fn show(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<QuotaPath>,
    params: Params,
) -> ApiResult<Json<Value>> {
    authorize(&ctx, &p.target)?;
    let with_usage = params
        .get("usage")
        .map(|u| validate::boolean("usage", &Value::from(u)))
        .transpose()?
        .unwrap_or(false);
    let used = match with_usage {
        true => usage_of(&s.db, &p.target).await?,
        false => Usage::default(),
    };
    let types = s.db.list_volume_types(false).await?;
    Ok(Json(quota_set_view(
        &p.target,
        &quotas(&s.cfg.quotas, &types, &used),
        with_usage,
    )))
}

async fn defaults(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<QuotaPath>,
) -> ApiResult<Json<Value>> {
    authorize(&ctx, &p.target)?;
    let types = s.db.list_volume_types(false).await?;
    let defaults = quotas(&s.cfg.quotas, &types, &Usage::default());
    Ok(Json(quota_set_view(&p.target, &defaults, false)))
}

#[cfg(test)]
mod tests {
    use scoria_core::model::Metadata;

    use super::*;

    fn gold() -> VolumeType {
        VolumeType {
            id: "t-gold".into(),
            name: "gold".into(),
            description: None,
            is_public: true,
            extra_specs: Metadata::new(),
            created_at: "2026-01-01T00:00:00.000000".into(),
            updated_at: None,
        }
    }

    fn used() -> Usage {
        let gold = TypeUsage {
            volumes: 1,
            snapshots: 1,
            gigabytes: 3,
        };
        Usage {
            volumes: 2,
            snapshots: 1,
            gigabytes: 5,
            by_type: HashMap::from([("t-gold".to_string(), gold)]),
        }
    }

    #[test]
    fn quota_set_lists_global_and_per_type_limits() {
        let view = quota_set_view(
            "p1",
            &quotas(&QuotaDefaults::default(), &[gold()], &used()),
            false,
        );
        let set = &view["quota_set"];
        assert_eq!(set["id"], "p1");
        assert_eq!(set["volumes"], 10);
        assert_eq!(set["gigabytes"], 1000);
        assert_eq!(set["per_volume_gigabytes"], -1);
        assert_eq!(set["volumes_gold"], -1);
        assert_eq!(set["gigabytes_gold"], -1);
        assert_eq!(set["snapshots_gold"], -1);
        assert_eq!(set.as_object().unwrap().len(), 1 + 7 + 3);
    }

    #[test]
    fn usage_view_wraps_every_value_but_the_id() {
        let view = quota_set_view(
            "p1",
            &quotas(&QuotaDefaults::default(), &[gold()], &used()),
            true,
        );
        let set = &view["quota_set"];
        assert_eq!(set["id"], "p1");
        assert_eq!(
            set["volumes"],
            json!({"limit": 10, "in_use": 2, "reserved": 0})
        );
        assert_eq!(
            set["gigabytes"],
            json!({"limit": 1000, "in_use": 5, "reserved": 0})
        );
        assert_eq!(
            set["backups"],
            json!({"limit": 10, "in_use": 0, "reserved": 0})
        );
        assert_eq!(
            set["gigabytes_gold"],
            json!({"limit": -1, "in_use": 3, "reserved": 0})
        );
        assert_eq!(
            set["snapshots_gold"],
            json!({"limit": -1, "in_use": 1, "reserved": 0})
        );
    }

    #[test]
    fn unused_types_count_zero() {
        let rows = quotas(&QuotaDefaults::default(), &[gold()], &Usage::default());
        assert!(rows.contains(&quota("volumes_gold", UNLIMITED, 0)));
    }
}
