//! Cinder's default filters. Each one passes a pool or says, in words a user
//! can act on, why it turns the pool away.

use std::fmt;

use scoria_core::capacity::Capacity;
use scoria_core::extra_specs;
use scoria_core::rpc::RequestSpec;

use crate::pools::PoolState;

/// A filter's verdict on one pool: `Err` carries why the pool is turned away.
pub type Verdict = Result<(), String>;

/// A named check of one pool against a request.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    /// Cinder's name for the filter, shown in explanations.
    pub name: &'static str,
    pub check: fn(&PoolState, &RequestSpec) -> Verdict,
}

/// Cinder's default filters, in the order they run.
pub const DEFAULT_FILTERS: [Filter; 3] = [
    Filter {
        name: "AvailabilityZoneFilter",
        check: availability_zone,
    },
    Filter {
        name: "CapacityFilter",
        check: capacity,
    },
    Filter {
        name: "CapabilitiesFilter",
        check: capabilities,
    },
];

/// Why a filter turned a pool away.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `host@backend#pool`.
    pub pool: String,
    pub filter: &'static str,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {}: {}: {}", self.pool, self.filter, self.reason)
    }
}

/// The first of the default filters that turns `pool` away, if any.
pub fn first_rejection(pool: &PoolState, spec: &RequestSpec) -> Option<Rejection> {
    DEFAULT_FILTERS.iter().find_map(|f| {
        (f.check)(pool, spec).err().map(|reason| Rejection {
            pool: pool.name.to_string(),
            filter: f.name,
            reason,
        })
    })
}

/// Passes when no zone was requested or the pool is in the requested one.
pub fn availability_zone(pool: &PoolState, spec: &RequestSpec) -> Verdict {
    match &spec.availability_zone {
        Some(az) if *az != pool.availability_zone => Err(format!(
            "the pool is in availability zone '{}', the request asks for '{az}'",
            pool.availability_zone
        )),
        _ => Ok(()),
    }
}

/// Passes when the pool has room for the requested size, with Cinder's thin
/// and thick math. Unknown or infinite free capacity passes (a failed create
/// is retried elsewhere); so does an unknown or infinite total without reserve.
pub fn capacity(pool: &PoolState, spec: &RequestSpec) -> Verdict {
    let requested = spec.size as f64;
    let thin = pool.thin_for(spec);
    let Some(f) = pool.factors(thin) else {
        return unmeasured(pool);
    };
    if f.total_capacity <= 0.0 {
        return Err(format!("total capacity is {} GiB", f.total_capacity));
    }
    if thin {
        let ratio = f.max_over_subscription_ratio;
        if ratio < 1.0 {
            return Err(format!(
                "max_over_subscription_ratio {ratio} is below 1, so the pool cannot thin-provision"
            ));
        }
        let provisioned_ratio = (f.provisioned_capacity + requested) / f.total_available_capacity;
        if provisioned_ratio > ratio {
            return Err(format!(
                "provisioning {requested} GiB more would bring the provisioned ratio to {provisioned_ratio:.2}, above max_over_subscription_ratio {ratio}"
            ));
        }
    }
    if f.virtual_free_capacity < requested {
        let kind = if thin { "virtual free" } else { "free" };
        return Err(format!(
            "{kind} capacity {} GiB is less than the requested {requested} GiB",
            f.virtual_free_capacity
        ));
    }
    Ok(())
}

/// Cinder's rule when free or total capacity is unknown or infinite: pass,
/// unless only the total is and part of it is reserved.
fn unmeasured(pool: &PoolState) -> Verdict {
    let reserved = pool.stats.reserved_percentage;
    if !matches!(pool.free(), Capacity::Gb(_)) || reserved == 0.0 {
        return Ok(());
    }
    let total = match pool.total() {
        Capacity::Unknown => "unknown",
        _ => "infinite",
    };
    Err(format!(
        "total capacity is {total} and {reserved}% of it is reserved"
    ))
}

/// Passes when the pool's capabilities satisfy the type's extra specs (see
/// [`extra_specs::capabilities_satisfy`]).
pub fn capabilities(pool: &PoolState, spec: &RequestSpec) -> Verdict {
    extra_specs::capabilities_satisfy(&pool.capabilities, &spec.extra_specs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pools::tests::{pool, pool_stats};
    use scoria_core::stats::PoolStats;
    use serde_json::json;

    pub(crate) fn spec(size: i64, specs: &[(&str, &str)]) -> RequestSpec {
        RequestSpec {
            volume_id: "v".into(),
            size,
            volume_type_id: None,
            extra_specs: specs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            availability_zone: None,
            snapshot_id: None,
            source_volid: None,
            source_backend: None,
            image_id: None,
            attempts: vec![],
            attempt_errors: vec![],
        }
    }

    fn gb(v: f64) -> Capacity {
        Capacity::Gb(v)
    }

    fn thick(total: f64, free: f64, provisioned: f64, reserved: f64) -> PoolStats {
        let mut s = pool_stats("p", gb(total), gb(free));
        s.provisioned_capacity_gb = Some(provisioned);
        s.reserved_percentage = reserved;
        s
    }

    fn thin(total: f64, free: f64, provisioned: f64, ratio: &str) -> PoolStats {
        let mut s = thick(total, free, provisioned, 0.0);
        s.thin_provisioning_support = true;
        s.max_over_subscription_ratio = ratio.into();
        s
    }

    fn cap(stats: PoolStats, size: i64) -> Verdict {
        capacity(&pool("h@b", stats), &spec(size, &[]))
    }

    #[test]
    fn availability_zone_filter() {
        let p = pool("h@b", pool_stats("p", gb(1.0), gb(1.0)));
        let mut s = spec(1, &[]);
        assert_eq!(availability_zone(&p, &s), Ok(()));
        s.availability_zone = Some("nova".into());
        assert_eq!(availability_zone(&p, &s), Ok(()));
        s.availability_zone = Some("az2".into());
        let err = availability_zone(&p, &s).unwrap_err();
        assert_eq!(
            err,
            "the pool is in availability zone 'nova', the request asks for 'az2'"
        );
    }

    #[test]
    fn thick_capacity() {
        assert_eq!(cap(thick(100.0, 50.0, 0.0, 0.0), 50), Ok(()));
        assert_eq!(
            cap(thick(100.0, 3.0, 0.0, 0.0), 10).unwrap_err(),
            "free capacity 3 GiB is less than the requested 10 GiB"
        );
        // Reserved 10% of 100 and 85 provisioned leaves 5 though 50 are free.
        assert!(cap(thick(100.0, 50.0, 85.0, 10.0), 6).is_err());
        assert_eq!(cap(thick(100.0, 50.0, 85.0, 10.0), 5), Ok(()));
    }

    #[test]
    fn provisioned_falls_back_to_allocated() {
        let mut s = pool_stats("p", gb(100.0), gb(100.0));
        s.allocated_capacity_gb = 95.0;
        assert!(cap(s, 10).is_err());
    }

    #[test]
    fn unknown_and_infinite() {
        let free_unknown = pool_stats("p", gb(10.0), Capacity::Unknown);
        assert_eq!(cap(free_unknown, 1000), Ok(()));
        let total_infinite = pool_stats("p", Capacity::Infinite, gb(1.0));
        assert_eq!(cap(total_infinite.clone(), 1000), Ok(()));
        let mut reserved = total_infinite;
        reserved.reserved_percentage = 5.0;
        assert_eq!(
            cap(reserved, 1).unwrap_err(),
            "total capacity is infinite and 5% of it is reserved"
        );
    }

    #[test]
    fn empty_pool_fails() {
        assert_eq!(
            cap(thick(0.0, 0.0, 0.0, 0.0), 1).unwrap_err(),
            "total capacity is 0 GiB"
        );
    }

    #[test]
    fn thin_capacity() {
        // 100 GiB at ratio 2: 200 GiB to promise, 150 already promised.
        assert_eq!(cap(thin(100.0, 10.0, 150.0, "2.0"), 50), Ok(()));
        assert_eq!(
            cap(thin(100.0, 10.0, 150.0, "2.0"), 51).unwrap_err(),
            "virtual free capacity 50 GiB is less than the requested 51 GiB"
        );
        assert!(cap(thin(100.0, 10.0, 150.0, "0.5"), 1)
            .unwrap_err()
            .contains("below 1"));
    }

    #[test]
    fn thick_request_on_thin_pool_uses_thick_math() {
        let p = pool("h@b", thin(100.0, 10.0, 50.0, "20"));
        assert_eq!(capacity(&p, &spec(40, &[])), Ok(()));
        let thick_spec = spec(40, &[("provisioning:type", "thick")]);
        assert!(capacity(&p, &thick_spec).is_err());
        let thin_spec = spec(40, &[("provisioning:type", "thin")]);
        assert_eq!(capacity(&p, &thin_spec), Ok(()));
    }

    #[test]
    fn capabilities_filter() {
        let mut s = pool_stats("p", gb(1.0), gb(1.0));
        s.multiattach = true;
        s.extra.insert("tier".into(), json!({"class": "gold"}));
        let p = pool("h@a", s);
        let ok = spec(
            1,
            &[
                ("volume_backend_name", "a"),
                ("multiattach", "<is> True"),
                ("capabilities:tier:class", "gold"),
                ("provisioning:type", "thin"),
                ("vendor:xyz", "anything"),
                ("capabilities:storage_protocol", "<or> iSCSI <or> file"),
            ],
        );
        assert_eq!(capabilities(&p, &ok), Ok(()));
        let wrong = spec(1, &[("volume_backend_name", "b")]);
        assert_eq!(
            capabilities(&p, &wrong).unwrap_err(),
            "volume_backend_name is 'a', the type asks for 'b'"
        );
        let missing = spec(1, &[("capabilities:tier:speed", "fast")]);
        assert_eq!(
            capabilities(&p, &missing).unwrap_err(),
            "the pool does not report tier:speed, the type asks for 'fast'"
        );
        let no_online_extend = spec(1, &[("online_extend_support", "<is> True")]);
        assert_eq!(
            capabilities(&p, &no_online_extend).unwrap_err(),
            "online_extend_support is 'False', the type asks for '<is> True'"
        );
    }

    #[test]
    fn first_rejection_names_the_filter() {
        let p = pool("h@a", pool_stats("p", gb(10.0), gb(2.0)));
        let r = first_rejection(&p, &spec(5, &[("volume_backend_name", "b")])).unwrap();
        assert_eq!(r.filter, "CapacityFilter");
        assert_eq!(
            r.to_string(),
            "pool h@a#p: CapacityFilter: free capacity 2 GiB is less than the requested 5 GiB"
        );
        assert_eq!(first_rejection(&p, &spec(1, &[])), None);
    }
}
