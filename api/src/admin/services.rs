//! The operator's view of running services: `/os-services` (list, enable,
//! disable), `/os-availability-zone` and `/scheduler-stats/get_pools`.
//!
//! A service is up while its last heartbeat is younger than
//! `service_down_time`; a backend is up while its last stats report is.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use scoria_core::extra_specs::{self, capabilities_satisfy};
use scoria_core::model::{Metadata, Service, VOLUME_BINARY};
use scoria_core::stats::StatsReport;
use scoria_core::time::Timestamp;
use scoria_core::Error;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::http::context::Ctx;
use crate::http::extract::{JsonBody, Params};
use crate::http::fault::{bad_request, ApiError, ApiResult};
use crate::http::validate::{self, MAX_TEXT};
use crate::http::version::ApiVersion;
use crate::ApiState;

/// Routes of this module, relative to `/v3`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/os-services", get(list))
        .route("/os-services/{action}", put(update))
        .route("/os-availability-zone", get(zones))
        .route("/scheduler-stats/get_pools", get(pools))
}

/// The longest `service_down_time` honoured (a century), so the cutoff stays a valid date.
const MAX_DOWN_TIME_SECS: u64 = 100 * 365 * 24 * 3600;

/// Tells live timestamps from stale ones.
struct Liveness {
    /// Timestamps at or after this one are recent enough.
    cutoff: Timestamp,
}

impl Liveness {
    fn new(down_time: Duration) -> Self {
        let secs = down_time.as_secs().min(MAX_DOWN_TIME_SECS) as i64;
        Liveness {
            cutoff: Timestamp::from_now(-secs),
        }
    }

    fn is_fresh(&self, timestamp: Timestamp) -> bool {
        timestamp >= self.cutoff
    }

    fn is_up(&self, svc: &Service) -> bool {
        self.is_fresh(svc.updated_at)
    }

    /// `up` while the service is up and its driver's `report` is recent, else `down`.
    fn backend_state(&self, svc: &Service, report: Option<&StatsReport>) -> &'static str {
        let reporting = report.is_some_and(|r| self.is_fresh(r.timestamp));
        if self.is_up(svc) && reporting {
            "up"
        } else {
            "down"
        }
    }
}

fn liveness(s: &ApiState) -> Liveness {
    Liveness::new(s.cfg.service_down_time)
}

/// The stats report a volume service stored with its heartbeat.
fn report_of(svc: &Service) -> Option<StatsReport> {
    let stats = svc.stats.clone()?;
    serde_json::from_value(stats)
        .inspect_err(|e| tracing::warn!(host = %svc.host, error = %e, "unreadable stats report"))
        .ok()
}

fn status(svc: &Service) -> &'static str {
    if svc.disabled {
        "disabled"
    } else {
        "enabled"
    }
}

/// Whether a service on `host` (`node` or `node@backend`) matches the
/// `host` filter, which may name just the node.
fn on_host(host: &str, wanted: &str) -> bool {
    host.strip_prefix(wanted)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('@') || rest.starts_with('#'))
}

fn service_view(svc: &Service, live: &Liveness, version: ApiVersion) -> Value {
    let mut v = json!({
        "binary": svc.binary,
        "host": svc.host,
        "zone": svc.availability_zone,
        "status": status(svc),
        "state": if live.is_up(svc) { "up" } else { "down" },
        "updated_at": svc.updated_at,
        "disabled_reason": svc.disabled_reason,
    });
    if version.at_least(7) {
        v["cluster"] = Value::Null;
    }
    if svc.binary == VOLUME_BINARY {
        v["replication_status"] = "disabled".into();
        v["active_backend_id"] = Value::Null;
        v["frozen"] = false.into();
        if version.at_least(49) {
            v["backend_state"] = live.backend_state(svc, report_of(svc).as_ref()).into();
        }
    }
    v
}

async fn list(State(s): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:services:index")?;
    let live = liveness(&s);
    let services = s.db.list_services(None, params.get("binary")).await?;
    let views: Vec<Value> = services
        .iter()
        .filter(|svc| params.get("host").is_none_or(|h| on_host(&svc.host, h)))
        .map(|svc| service_view(svc, &live, ctx.version))
        .collect();
    Ok(Json(json!({ "services": views })))
}

#[derive(Deserialize)]
struct ActionPath {
    action: String,
}

/// What an `os-services/{action}` does: disable or enable, and whether a
/// reason is given.
fn parse_action(action: &str) -> ApiResult<(bool, bool)> {
    match action {
        "enable" => Ok((false, false)),
        "disable" => Ok((true, false)),
        "disable-log-reason" => Ok((true, true)),
        "freeze" | "thaw" | "failover_host" | "failover" | "set-log" | "get-log" => Err(ApiError(
            Error::Unsupported(format!("Scoria does not implement os-services/{action}.")),
        )),
        other => Err(bad_request(format!(
            "Invalid input received: Unknown action '{other}'; use enable, disable or disable-log-reason."
        ))),
    }
}

/// A non-blank string field of the request body.
fn required(body: &Map<String, Value>, key: &str) -> ApiResult<String> {
    validate::opt_string(body, key, MAX_TEXT)?
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| bad_request(format!("Missing required element '{key}' in request body.")))
}

/// The binary named by `binary` or its deprecated alias `service`.
fn binary_of(body: &Map<String, Value>) -> ApiResult<String> {
    required(body, "binary")
        .or_else(|_| required(body, "service"))
        .map_err(|_| bad_request("Missing required element 'binary' in request body."))
}

async fn update(
    State(s): State<ApiState>,
    ctx: Ctx,
    Path(p): Path<ActionPath>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    ctx.require_admin("volume_extension:services:update")?;
    let (disable, with_reason) = parse_action(&p.action)?;
    let host = required(&body, "host")?;
    let binary = binary_of(&body)?;
    let reason = with_reason
        .then(|| required(&body, "disabled_reason"))
        .transpose()?;
    let svc =
        s.db.set_service_disabled(&binary, &host, disable, reason.clone())
            .await?;
    let mut out = json!({
        "host": svc.host,
        "service": svc.binary,
        "binary": svc.binary,
        "status": status(&svc),
        "disabled": svc.disabled,
    });
    if let Some(reason) = reason {
        out["disabled_reason"] = reason.into();
    }
    Ok(Json(out))
}

/// One entry per zone of the volume services, available when an enabled
/// service in it is up.
fn zone_views(services: &[Service], live: &Liveness) -> Vec<Value> {
    let mut zones: BTreeMap<&str, bool> = BTreeMap::new();
    for svc in services.iter().filter(|svc| svc.binary == VOLUME_BINARY) {
        let serving = !svc.disabled && live.is_up(svc);
        *zones.entry(svc.availability_zone.as_str()).or_default() |= serving;
    }
    zones
        .into_iter()
        .map(|(name, available)| json!({"zoneName": name, "zoneState": {"available": available}}))
        .collect()
}

async fn zones(State(s): State<ApiState>) -> ApiResult<Json<Value>> {
    let services = s.db.list_services(None, Some(VOLUME_BINARY)).await?;
    Ok(Json(
        json!({ "availabilityZoneInfo": zone_views(&services, &liveness(&s)) }),
    ))
}

/// A pool as `get_pools` shows it.
struct Pool {
    /// `host@backend#pool`.
    name: String,
    capabilities: Map<String, Value>,
}

/// The pools of one volume service, from its latest stats report.
fn pools_of(svc: &Service, live: &Liveness) -> Vec<Pool> {
    let Some(report) = report_of(svc) else {
        return Vec::new();
    };
    let state = live.backend_state(svc, Some(&report));
    report
        .stats
        .pools
        .iter()
        .map(|pool| {
            let mut caps = report.stats.pool_capabilities(pool);
            caps.insert("timestamp".into(), report.timestamp.to_string().into());
            caps.entry("backend_state").or_insert_with(|| state.into());
            Pool {
                name: report.backend.in_pool(&pool.pool_name).to_string(),
                capabilities: caps,
            }
        })
        .collect()
}

/// The pools the schedulers place volumes on: those of enabled volume
/// services that are up, sorted by name.
fn schedulable_pools(services: &[Service], live: &Liveness) -> Vec<Pool> {
    let mut pools: Vec<Pool> = services
        .iter()
        .filter(|svc| svc.binary == VOLUME_BINARY && !svc.disabled && live.is_up(svc))
        .flat_map(|svc| pools_of(svc, live))
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    pools
}

/// What `get_pools` is filtered by, from 3.28: the pool's `name`, the extra
/// specs of a `volume_type` (3.35) and, for any other key, the capability of
/// that name (a value or an extra-spec style operator expression).
#[derive(Debug, Default)]
struct PoolFilter {
    name: Option<String>,
    type_specs: Option<Metadata>,
    capabilities: Vec<(String, String)>,
}

impl PoolFilter {
    fn keeps(&self, pool: &Pool) -> bool {
        self.name.as_ref().is_none_or(|n| pool.name == *n)
            && self
                .type_specs
                .as_ref()
                .is_none_or(|specs| capabilities_satisfy(&pool.capabilities, specs).is_ok())
            && self.capabilities.iter().all(|(key, wanted)| {
                pool.capabilities
                    .get(key)
                    .is_some_and(|cap| extra_specs::matches(cap, wanted))
            })
    }
}

async fn pool_filter(s: &ApiState, ctx: &Ctx, params: &Params) -> ApiResult<PoolFilter> {
    let mut filter = PoolFilter::default();
    if !ctx.version.at_least(28) {
        return Ok(filter);
    }
    for (key, value) in &params.0 {
        match key.as_str() {
            "detail" => {}
            "name" => filter.name = Some(value.clone()),
            "volume_type" if !ctx.version.at_least(35) => {}
            "volume_type" => {
                filter.type_specs = Some(s.db.find_volume_type(value).await?.extra_specs)
            }
            _ => filter.capabilities.push((key.clone(), value.clone())),
        }
    }
    Ok(filter)
}

async fn pools(State(s): State<ApiState>, ctx: Ctx, params: Params) -> ApiResult<Json<Value>> {
    ctx.require_admin("scheduler_extension:scheduler_stats:get_pools")?;
    let detail = params
        .get("detail")
        .map(|d| validate::boolean("detail", &Value::from(d)))
        .transpose()?
        .unwrap_or(false);
    let filter = pool_filter(&s, &ctx, &params).await?;
    let services = s.db.list_services(None, Some(VOLUME_BINARY)).await?;
    let views: Vec<Value> = schedulable_pools(&services, &liveness(&s))
        .into_iter()
        .filter(|p| filter.keeps(p))
        .map(|p| match detail {
            true => json!({"name": p.name, "capabilities": p.capabilities}),
            false => json!({"name": p.name}),
        })
        .collect();
    Ok(Json(json!({ "pools": views })))
}

#[cfg(test)]
mod tests {
    use scoria_core::capacity::Capacity;
    use scoria_core::stats::{BackendStats, Capabilities, PoolStats};

    use super::*;

    const DOWN_TIME: Duration = Duration::from_secs(60);

    fn service(binary: &str, host: &str, zone: &str, seconds_ago: i64) -> Service {
        Service {
            id: format!("{binary}-{host}"),
            binary: binary.into(),
            host: host.into(),
            availability_zone: zone.into(),
            disabled: false,
            disabled_reason: None,
            updated_at: Timestamp::from_now(-seconds_ago),
            created_at: Timestamp::from_now(-3600),
            stats: None,
        }
    }

    fn with_report(mut svc: Service, pools: &[&str], report_age: i64) -> Service {
        let pool = |name: &str| PoolStats {
            pool_name: name.into(),
            total_capacity_gb: Capacity::Gb(100.0),
            free_capacity_gb: Capacity::Gb(80.0),
            allocated_capacity_gb: 20.0,
            provisioned_capacity_gb: None,
            reserved_percentage: 0.0,
            max_over_subscription_ratio: "20.0".into(),
            thin_provisioning_support: true,
            thick_provisioning_support: false,
            multiattach: true,
            online_extend_support: true,
            qos_support: false,
            total_volumes: 2,
            location_info: None,
            extra: Map::new(),
        };
        let report = StatsReport {
            backend: svc.host.parse().unwrap(),
            availability_zone: svc.availability_zone.clone(),
            timestamp: Timestamp::from_now(-report_age),
            capabilities: Capabilities {
                native_clone: true,
                thin_provisioning: true,
                multiattach: true,
                online_extend: true,
                local_attach: true,
                min_volume_gb: 1,
                ..Default::default()
            },
            stats: BackendStats {
                volume_backend_name: "file".into(),
                vendor_name: "Scoria".into(),
                driver_version: "1.0".into(),
                storage_protocol: "file".into(),
                pools: pools.iter().map(|p| pool(p)).collect(),
            },
        };
        svc.stats = Some(serde_json::to_value(report).unwrap());
        svc
    }

    #[test]
    fn up_and_down_follow_the_heartbeat() {
        let live = Liveness::new(DOWN_TIME);
        let fresh = service(VOLUME_BINARY, "n1@file", "nova", 5);
        let stale = service(VOLUME_BINARY, "n2@file", "nova", 120);
        assert!(live.is_up(&fresh));
        assert!(!live.is_up(&stale));
        let v = service_view(&stale, &live, ApiVersion::v3(0));
        assert_eq!(v["state"], "down");
        assert_eq!(v["status"], "enabled");
        assert_eq!(v["frozen"], false);
        assert!(v.get("cluster").is_none());
        assert_eq!(
            service_view(&fresh, &live, ApiVersion::v3(7))["cluster"],
            Value::Null
        );
    }

    #[test]
    fn scheduler_rows_have_no_replication_fields() {
        let live = Liveness::new(DOWN_TIME);
        let v = service_view(
            &service("cinder-scheduler", "n1", "nova", 0),
            &live,
            ApiVersion::v3(49),
        );
        assert_eq!(v["state"], "up");
        assert!(v.get("replication_status").is_none() && v.get("backend_state").is_none());
    }

    #[test]
    fn backend_state_needs_a_recent_report() {
        let live = Liveness::new(DOWN_TIME);
        let state = |svc: &Service| live.backend_state(svc, report_of(svc).as_ref());
        let bare = service(VOLUME_BINARY, "n1@file", "nova", 0);
        assert_eq!(state(&bare), "down");
        assert_eq!(state(&with_report(bare.clone(), &["p"], 1)), "up");
        assert_eq!(state(&with_report(bare, &["p"], 600)), "down");
        let huge = Liveness::new(Duration::from_secs(u64::MAX));
        assert!(huge.is_up(&service(VOLUME_BINARY, "n1@file", "nova", 86400)));
    }

    #[test]
    fn host_filter_matches_the_node() {
        assert!(on_host("n1@file", "n1"));
        assert!(on_host("n1", "n1"));
        assert!(on_host("n1@file", "n1@file"));
        assert!(!on_host("n10@file", "n1"));
        assert!(!on_host("n1@file", "n1@fil"));
    }

    #[test]
    fn zones_are_available_when_a_service_serves() {
        let live = Liveness::new(DOWN_TIME);
        let mut disabled = service(VOLUME_BINARY, "n3@file", "west", 0);
        disabled.disabled = true;
        let services = [
            service(VOLUME_BINARY, "n1@file", "nova", 120),
            service(VOLUME_BINARY, "n2@file", "nova", 0),
            disabled,
            service("cinder-scheduler", "n4", "east", 0),
        ];
        let zones = zone_views(&services, &live);
        assert_eq!(
            zones,
            [
                json!({"zoneName": "nova", "zoneState": {"available": true}}),
                json!({"zoneName": "west", "zoneState": {"available": false}}),
            ]
        );
    }

    #[test]
    fn pools_come_from_live_enabled_backends() {
        let live = Liveness::new(DOWN_TIME);
        let mut disabled = with_report(service(VOLUME_BINARY, "n3@file", "nova", 0), &["x"], 0);
        disabled.disabled = true;
        let services = [
            with_report(service(VOLUME_BINARY, "n1@file", "nova", 0), &["b", "a"], 0),
            with_report(service(VOLUME_BINARY, "n2@file", "nova", 120), &["y"], 120),
            disabled,
        ];
        let pools = schedulable_pools(&services, &live);
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["n1@file#a", "n1@file#b"]);
        let caps = &pools[0].capabilities;
        assert_eq!(caps["volume_backend_name"], "file");
        assert_eq!(caps["backend_state"], "up");
        assert_eq!(caps["pool_name"], "a");
        assert!(caps["timestamp"].is_string());
    }

    #[test]
    fn pool_filters_match_name_type_specs_and_capabilities() {
        let live = Liveness::new(DOWN_TIME);
        let services = [with_report(
            service(VOLUME_BINARY, "n1@file", "nova", 0),
            &["a"],
            0,
        )];
        let pool = schedulable_pools(&services, &live).remove(0);
        let specs = |pairs: &[(&str, &str)]| -> Metadata {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let keeps = |f: PoolFilter| f.keeps(&pool);
        assert!(keeps(PoolFilter::default()));
        assert!(keeps(PoolFilter {
            name: Some("n1@file#a".into()),
            ..Default::default()
        }));
        assert!(!keeps(PoolFilter {
            name: Some("n1@file#b".into()),
            ..Default::default()
        }));
        let typed = |pairs: &[(&str, &str)]| PoolFilter {
            type_specs: Some(specs(pairs)),
            ..Default::default()
        };
        assert!(keeps(typed(&[("volume_backend_name", "file")])));
        assert!(keeps(typed(&[("multiattach", "<is> True")])));
        assert!(!keeps(typed(&[("volume_backend_name", "lvm")])));
        assert!(keeps(typed(&[("qos:iops", "100")])));
        let cap = |k: &str, v: &str| PoolFilter {
            capabilities: vec![(k.into(), v.into())],
            ..Default::default()
        };
        assert!(keeps(cap("storage_protocol", "file")));
        assert!(keeps(cap("thin_provisioning_support", "True")));
        assert!(!keeps(cap("storage_protocol", "iSCSI")));
        assert!(!keeps(cap("no_such_capability", "x")));
    }

    #[test]
    fn actions() {
        assert_eq!(parse_action("disable-log-reason").unwrap(), (true, true));
        assert_eq!(parse_action("enable").unwrap(), (false, false));
        assert!(matches!(
            parse_action("freeze").unwrap_err().0,
            Error::Unsupported(_)
        ));
        assert!(matches!(
            parse_action("bogus").unwrap_err().0,
            Error::BadRequest(_)
        ));
    }
}
