//! The scheduler's in-memory view of every pool: the latest stats report of
//! each backend plus what this scheduler placed since that report.

use std::collections::{BTreeMap, HashMap, HashSet};

use scoria_core::capacity::{
    capacity_factors, effective_ratio, Capacity, CapacityFactors, OverSubscription,
};
use scoria_core::host::Host;
use scoria_core::rpc::RequestSpec;
use scoria_core::stats::{PoolStats, StatsReport};
use scoria_core::time::Timestamp;
use serde_json::{Map, Value};

/// One pool of one backend, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolState {
    /// `host@backend#pool`.
    pub name: Host,
    /// `host@backend`.
    pub backend: String,
    pub availability_zone: String,
    /// Timestamp of the report these stats come from.
    pub timestamp: Timestamp,
    /// The driver's numbers, untouched.
    pub stats: PoolStats,
    /// Backend-wide and pool capabilities merged, matched by extra specs.
    pub capabilities: Map<String, Value>,
    /// The pool's `max_over_subscription_ratio`, parsed.
    pub over_subscription: OverSubscription,
    consumed_gb: f64,
}

impl PoolState {
    fn new(report: &StatsReport, stats: &PoolStats) -> Self {
        let name = report.backend.in_pool(&stats.pool_name);
        let over_subscription =
            parse_ratio(&stats.max_over_subscription_ratio).unwrap_or_else(|| {
                tracing::warn!(
                    pool = %name,
                    value = %stats.max_over_subscription_ratio,
                    "max_over_subscription_ratio is neither a number nor 'auto'; using 1.0"
                );
                OverSubscription::Ratio(1.0)
            });
        PoolState {
            name,
            backend: report.backend.to_string(),
            availability_zone: report.availability_zone.clone(),
            timestamp: report.timestamp,
            capabilities: report.stats.pool_capabilities(stats),
            stats: stats.clone(),
            over_subscription,
            consumed_gb: 0.0,
        }
    }

    /// GiB this scheduler placed here since the report it holds.
    pub fn consumed_gb(&self) -> f64 {
        self.consumed_gb
    }

    /// Total capacity as reported.
    pub fn total(&self) -> Capacity {
        self.stats.total_capacity_gb
    }

    /// Free capacity, less what was placed since the report.
    pub fn free(&self) -> Capacity {
        match self.stats.free_capacity_gb {
            Capacity::Gb(free) => Capacity::Gb(free - self.consumed_gb),
            other => other,
        }
    }

    /// Allocated capacity, plus what was placed since the report.
    pub fn allocated(&self) -> f64 {
        self.stats.allocated_capacity_gb + self.consumed_gb
    }

    /// Provisioned capacity (falling back to allocated), plus what was placed since the report.
    pub fn provisioned(&self) -> f64 {
        self.stats
            .provisioned_capacity_gb
            .unwrap_or(self.stats.allocated_capacity_gb)
            + self.consumed_gb
    }

    /// Whether thin math applies: the request does not ask for
    /// `provisioning:type=thick` and the pool supports thin provisioning.
    pub fn thin_for(&self, spec: &RequestSpec) -> bool {
        let thick = spec
            .extra_specs
            .get("provisioning:type")
            .map(String::as_str)
            == Some("thick");
        !thick && self.stats.thin_provisioning_support
    }

    /// The pool's capacity factors under thin or thick math, or `None` when
    /// total or free capacity is unknown or infinite.
    pub fn factors(&self, thin: bool) -> Option<CapacityFactors> {
        let (total, free) = (self.total().gb()?, self.free().gb()?);
        let ratio = effective_ratio(
            self.over_subscription,
            self.stats.thin_provisioning_support,
            self.total(),
            self.free(),
            self.provisioned(),
        );
        Some(capacity_factors(
            total,
            free,
            self.provisioned(),
            thin,
            ratio,
            self.stats.reserved_percentage,
        ))
    }
}

/// Parses a reported `max_over_subscription_ratio`: a finite number or `auto`.
fn parse_ratio(value: &str) -> Option<OverSubscription> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("auto") {
        return Some(OverSubscription::Auto);
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite())
        .map(OverSubscription::Ratio)
}

/// Every pool the scheduler knows, keyed by `host@backend#pool`.
#[derive(Debug, Clone, Default)]
pub struct PoolBook {
    /// Timestamp of the report held for each backend.
    reports: BTreeMap<String, Timestamp>,
    pools: BTreeMap<String, PoolState>,
}

impl PoolBook {
    /// Replaces a backend's pools with those of `report`, forgetting what was
    /// placed since the previous report (the new one counts it). A report no
    /// newer than the one held is ignored; returns whether it was applied.
    pub fn update(&mut self, report: StatsReport) -> bool {
        if let Some(held) = self.reports.get(report.backend.as_str()) {
            if report.timestamp <= *held {
                tracing::debug!(backend = %report.backend, "ignoring a stale stats report");
                return false;
            }
        }
        self.remove_backend(report.backend.as_str());
        for stats in &report.stats.pools {
            let pool = PoolState::new(&report, stats);
            self.pools.insert(pool.name.to_string(), pool);
        }
        self.reports
            .insert(report.backend.to_string(), report.timestamp);
        true
    }

    /// Records that `size_gb` was placed on `pool` (`host@backend#pool`);
    /// returns false when the pool is unknown.
    pub fn consume(&mut self, pool: &str, size_gb: f64) -> bool {
        match self.pools.get_mut(pool) {
            Some(state) => {
                state.consumed_gb += size_gb;
                true
            }
            None => false,
        }
    }

    /// Accounts for placements made by any scheduler since each pool's report:
    /// `allocated` is the database's sum of volume sizes per pool, and what
    /// exceeds the reported allocation was placed after the report.
    pub fn sync_allocated(&mut self, allocated: &HashMap<String, f64>) {
        for (name, state) in &mut self.pools {
            let now = allocated.get(name).copied().unwrap_or(0.0);
            let since_report = now - state.stats.allocated_capacity_gb;
            state.consumed_gb = state.consumed_gb.max(since_report);
        }
    }

    /// Forgets a backend (`host@backend`) and its pools.
    pub fn remove_backend(&mut self, backend: &str) {
        self.reports.remove(backend);
        self.pools.retain(|_, p| p.backend != backend);
    }

    /// Keeps only the backends in `up`.
    pub fn retain_backends(&mut self, up: &HashSet<String>) {
        self.reports.retain(|b, _| up.contains(b));
        self.pools.retain(|_, p| up.contains(&p.backend));
    }

    /// The pool named `host@backend#pool`.
    pub fn get(&self, pool: &str) -> Option<&PoolState> {
        self.pools.get(pool)
    }

    /// Every pool, in name order.
    pub fn pools(&self) -> impl Iterator<Item = &PoolState> {
        self.pools.values()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use scoria_core::stats::{BackendStats, Capabilities};

    /// A pool with the given total and free GiB and nothing else set.
    pub(crate) fn pool_stats(name: &str, total: Capacity, free: Capacity) -> PoolStats {
        serde_json::from_value(serde_json::json!({
            "pool_name": name,
            "total_capacity_gb": total,
            "free_capacity_gb": free,
        }))
        .unwrap()
    }

    /// A report of `backend` (`host@backend`) with the given pools.
    pub(crate) fn report(backend: &str, timestamp: &str, pools: Vec<PoolStats>) -> StatsReport {
        StatsReport {
            backend: backend.parse().unwrap(),
            availability_zone: "nova".into(),
            timestamp: timestamp.parse().unwrap(),
            capabilities: Capabilities {
                thick_provisioning: true,
                local_attach: true,
                min_volume_gb: 1,
                ..Default::default()
            },
            stats: BackendStats {
                volume_backend_name: backend.parse::<Host>().unwrap().backend_name().into(),
                vendor_name: "Scoria".into(),
                driver_version: "1.0".into(),
                storage_protocol: "file".into(),
                pools,
            },
        }
    }

    /// A pool state built from one report with one pool.
    pub(crate) fn pool(backend: &str, stats: PoolStats) -> PoolState {
        let r = report(backend, "2024-01-01T00:00:00.000000", vec![stats]);
        PoolState::new(&r, &r.stats.pools[0])
    }

    const T1: &str = "2024-01-01T00:00:00.000000";
    const T2: &str = "2024-01-01T00:01:00.000000";

    fn gb(v: f64) -> Capacity {
        Capacity::Gb(v)
    }

    #[test]
    fn placements_of_other_schedulers_count_through_the_database() {
        let mut stats = pool_stats("p", gb(100.0), gb(80.0));
        stats.allocated_capacity_gb = 20.0;
        let mut book = PoolBook::default();
        book.update(report("h@b", T1, vec![stats]));
        // Another scheduler placed 5 GiB since the report; this one placed 2.
        book.consume("h@b#p", 2.0);
        book.sync_allocated(&HashMap::from([("h@b#p".to_string(), 25.0)]));
        assert_eq!(book.get("h@b#p").unwrap().free(), gb(75.0));
        // The database never lowers what this scheduler knows it placed.
        book.sync_allocated(&HashMap::from([("h@b#p".to_string(), 20.0)]));
        assert_eq!(book.get("h@b#p").unwrap().allocated(), 25.0);
    }

    #[test]
    fn update_names_pools_and_merges_capabilities() {
        let mut book = PoolBook::default();
        let stats = pool_stats("p1", gb(100.0), gb(80.0));
        assert!(book.update(report("h@lvm", T1, vec![stats])));
        let p = book.get("h@lvm#p1").unwrap();
        assert_eq!(p.backend, "h@lvm");
        assert_eq!(p.capabilities["volume_backend_name"], "lvm");
        assert_eq!(p.over_subscription, OverSubscription::Ratio(20.0));
    }

    #[test]
    fn stale_reports_are_ignored_and_new_ones_reset_consumption() {
        let mut book = PoolBook::default();
        let stats = pool_stats("p", gb(100.0), gb(80.0));
        book.update(report("h@a", T2, vec![stats.clone()]));
        assert!(book.consume("h@a#p", 5.0));
        assert!(!book.update(report("h@a", T1, vec![stats.clone()])));
        assert!(!book.update(report("h@a", T2, vec![stats.clone()])));
        assert_eq!(book.get("h@a#p").unwrap().consumed_gb(), 5.0);
        let newer = "2024-01-01T00:02:00.000000";
        assert!(book.update(report("h@a", newer, vec![stats])));
        assert_eq!(book.get("h@a#p").unwrap().consumed_gb(), 0.0);
    }

    #[test]
    fn update_drops_pools_missing_from_the_new_report() {
        let mut book = PoolBook::default();
        let (a, b) = (
            pool_stats("a", gb(1.0), gb(1.0)),
            pool_stats("b", gb(1.0), gb(1.0)),
        );
        book.update(report("h@x", T1, vec![a, b.clone()]));
        book.update(report("h@x", T2, vec![b]));
        let names: Vec<_> = book.pools().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["h@x#b"]);
    }

    #[test]
    fn consume_adjusts_the_view_not_the_report() {
        let mut book = PoolBook::default();
        let mut stats = pool_stats("p", gb(100.0), gb(80.0));
        stats.allocated_capacity_gb = 20.0;
        book.update(report("h@a", T1, vec![stats]));
        book.consume("h@a#p", 10.0);
        let p = book.get("h@a#p").unwrap();
        assert_eq!(p.free(), gb(70.0));
        assert_eq!(p.allocated(), 30.0);
        assert_eq!(p.provisioned(), 30.0);
        assert_eq!(p.stats.free_capacity_gb, gb(80.0));
        assert!(!book.consume("h@a#nope", 1.0));
    }

    #[test]
    fn consume_leaves_unknown_and_infinite_free_alone() {
        let mut book = PoolBook::default();
        let u = pool_stats("u", Capacity::Unknown, Capacity::Unknown);
        let i = pool_stats("i", Capacity::Infinite, Capacity::Infinite);
        book.update(report("h@a", T1, vec![u, i]));
        book.consume("h@a#u", 3.0);
        book.consume("h@a#i", 3.0);
        assert_eq!(book.get("h@a#u").unwrap().free(), Capacity::Unknown);
        assert_eq!(book.get("h@a#i").unwrap().free(), Capacity::Infinite);
        assert_eq!(book.get("h@a#i").unwrap().provisioned(), 3.0);
    }

    #[test]
    fn remove_and_retain_backends() {
        let mut book = PoolBook::default();
        for b in ["h@a", "h@b", "h@c"] {
            book.update(report(b, T1, vec![pool_stats("p", gb(1.0), gb(1.0))]));
        }
        book.remove_backend("h@a");
        book.retain_backends(&HashSet::from(["h@b".to_string()]));
        let names: Vec<_> = book.pools().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["h@b#p"]);
        // A forgotten backend's next report is accepted whatever its timestamp.
        assert!(book.update(report("h@c", T1, vec![])));
    }

    #[test]
    fn ratio_parsing() {
        assert_eq!(parse_ratio("auto"), Some(OverSubscription::Auto));
        assert_eq!(parse_ratio(" 1.5 "), Some(OverSubscription::Ratio(1.5)));
        assert_eq!(parse_ratio("NaN"), None);
        assert_eq!(parse_ratio("lots"), None);
        let mut stats = pool_stats("p", gb(1.0), gb(1.0));
        stats.max_over_subscription_ratio = "lots".into();
        assert_eq!(
            pool("h@a", stats).over_subscription,
            OverSubscription::Ratio(1.0)
        );
    }
}
