//! Choosing a pool for a request: skip what was already tried, filter, weigh,
//! take the heaviest — or explain why nothing fits.

use std::collections::BTreeSet;
use std::fmt;

use scoria_core::host::Host;
use scoria_core::rpc::RequestSpec;

use crate::filters::{first_rejection, Rejection};
use crate::pools::PoolBook;
use crate::weighers::weigh;

/// Scheduler options, named after Cinder's.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// `capacity_weight_multiplier`: positive spreads volumes, negative stacks them.
    pub capacity_weight_multiplier: f64,
    /// `scheduler_max_attempts`: backends tried per volume, at least 1.
    pub max_attempts: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            capacity_weight_multiplier: 1.0,
            max_attempts: 3,
        }
    }
}

/// Where a volume goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// `host@backend#pool`, the volume's `host`.
    pub pool: Host,
    /// `host@backend`, whose volume manager creates it.
    pub backend: String,
}

/// Why no pool was chosen; its `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq)]
pub enum NoValidBackend {
    /// The volume was already tried on `max_attempts` backends.
    TooManyAttempts {
        max_attempts: u32,
        tried: Vec<String>,
    },
    /// Every pool was skipped or filtered out.
    NoPoolFits {
        /// Why each considered pool was turned away, in pool-name order.
        rejections: Vec<Rejection>,
        /// Backends skipped because the volume already failed there.
        already_tried: Vec<String>,
        /// The backend the request is bound to, when it reports no pool.
        missing_source: Option<String>,
    },
}

impl fmt::Display for NoValidBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "No valid backend was found: ")?;
        match self {
            NoValidBackend::TooManyAttempts {
                max_attempts,
                tried,
            } => write!(
                f,
                "exceeded the maximum of {max_attempts} scheduling attempts (tried {})",
                tried.join(", ")
            ),
            NoValidBackend::NoPoolFits {
                rejections,
                already_tried,
                missing_source,
            } => {
                let mut parts: Vec<String> = rejections.iter().map(Rejection::to_string).collect();
                if let Some(source) = missing_source {
                    parts.push(format!(
                        "backend {source}, which holds the source, reports no pool"
                    ));
                }
                if !already_tried.is_empty() {
                    parts.push(format!("already tried: {}", already_tried.join(", ")));
                }
                if parts.is_empty() {
                    parts.push("no backend has reported its stats yet".into());
                }
                write!(f, "{}", parts.join("; "))
            }
        }
    }
}

impl std::error::Error for NoValidBackend {}

/// Chooses a pool for `spec`: pools of backends in `spec.attempts` are
/// skipped, only `spec.source_backend`'s pools are considered when it is set,
/// the rest go through the default filters and the heaviest one wins.
pub fn select(
    book: &PoolBook,
    spec: &RequestSpec,
    cfg: &SchedulerConfig,
) -> Result<Placement, NoValidBackend> {
    if spec.attempts.len() >= cfg.max_attempts as usize {
        return Err(NoValidBackend::TooManyAttempts {
            max_attempts: cfg.max_attempts,
            tried: spec.attempts.clone(),
        });
    }
    let mut candidates = Vec::new();
    let mut rejections = Vec::new();
    let mut already_tried = BTreeSet::new();
    let bound = |backend: &str| spec.source_backend.as_deref().is_none_or(|s| s == backend);
    for pool in book.pools().filter(|p| bound(&p.backend)) {
        if spec.attempts.contains(&pool.backend) {
            already_tried.insert(pool.backend.clone());
        } else if let Some(rejection) = first_rejection(pool, spec) {
            rejections.push(rejection);
        } else {
            candidates.push(pool);
        }
    }
    if let Some(best) = weigh(&candidates, spec, cfg).first() {
        return Ok(Placement {
            pool: best.pool.name.clone(),
            backend: best.pool.backend.clone(),
        });
    }
    let missing_source = spec
        .source_backend
        .clone()
        .filter(|s| !book.pools().any(|p| p.backend == *s));
    Err(NoValidBackend::NoPoolFits {
        rejections,
        already_tried: already_tried.into_iter().collect(),
        missing_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::tests::spec;
    use crate::pools::tests::{pool_stats, report};
    use proptest::prelude::*;
    use scoria_core::capacity::Capacity;
    use scoria_core::stats::PoolStats;

    const T: &str = "2024-01-01T00:00:00.000000";

    fn gb(v: f64) -> Capacity {
        Capacity::Gb(v)
    }

    fn book(backends: &[(&str, f64, f64)]) -> PoolBook {
        let mut book = PoolBook::default();
        for &(backend, total, free) in backends {
            book.update(report(
                backend,
                T,
                vec![pool_stats("p", gb(total), gb(free))],
            ));
        }
        book
    }

    fn place(book: &PoolBook, spec: &RequestSpec) -> Result<String, String> {
        select(book, spec, &SchedulerConfig::default())
            .map(|p| p.pool.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn picks_the_pool_with_most_free_space() {
        let b = book(&[("h@a", 100.0, 10.0), ("h@b", 100.0, 60.0)]);
        let p = select(&b, &spec(1, &[]), &SchedulerConfig::default()).unwrap();
        assert_eq!(
            p,
            Placement {
                pool: "h@b#p".parse().unwrap(),
                backend: "h@b".into()
            }
        );
    }

    #[test]
    fn explains_every_rejection() {
        let b = book(&[("h@a", 100.0, 3.0), ("h@b", 100.0, 60.0)]);
        let s = spec(10, &[("volume_backend_name", "a")]);
        assert_eq!(
            place(&b, &s).unwrap_err(),
            "No valid backend was found: \
             pool h@a#p: CapacityFilter: free capacity 3 GiB is less than the requested 10 GiB; \
             pool h@b#p: CapabilitiesFilter: volume_backend_name is 'b', the type asks for 'a'"
        );
    }

    #[test]
    fn empty_book() {
        assert_eq!(
            place(&PoolBook::default(), &spec(1, &[])).unwrap_err(),
            "No valid backend was found: no backend has reported its stats yet"
        );
    }

    #[test]
    fn skips_backends_already_tried() {
        let b = book(&[("h@a", 100.0, 90.0), ("h@b", 100.0, 60.0)]);
        let mut s = spec(1, &[]);
        s.attempts = vec!["h@a".into()];
        assert_eq!(place(&b, &s).unwrap(), "h@b#p");
        s.attempts.push("h@b".into());
        assert_eq!(
            place(&b, &s).unwrap_err(),
            "No valid backend was found: already tried: h@a, h@b"
        );
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let b = book(&[("h@a", 100.0, 90.0)]);
        let mut s = spec(1, &[]);
        s.attempts = vec!["h@x".into(), "h@y".into(), "h@z".into()];
        assert_eq!(
            place(&b, &s).unwrap_err(),
            "No valid backend was found: exceeded the maximum of 3 scheduling attempts \
             (tried h@x, h@y, h@z)"
        );
    }

    #[test]
    fn source_backend_binds_the_choice() {
        let b = book(&[("h@a", 100.0, 10.0), ("h@b", 100.0, 90.0)]);
        let mut s = spec(1, &[]);
        s.source_backend = Some("h@a".into());
        assert_eq!(place(&b, &s).unwrap(), "h@a#p");
        s.source_backend = Some("h@gone".into());
        assert_eq!(
            place(&b, &s).unwrap_err(),
            "No valid backend was found: backend h@gone, which holds the source, reports no pool"
        );
    }

    #[test]
    fn a_burst_spreads_over_equal_pools() {
        let mut b = book(&[("h@a", 100.0, 100.0), ("h@b", 100.0, 100.0)]);
        let s = spec(1, &[]);
        let mut placed = Vec::new();
        for _ in 0..10 {
            let p = select(&b, &s, &SchedulerConfig::default()).unwrap();
            b.consume(p.pool.as_str(), 1.0);
            placed.push(p.backend);
        }
        let on_a = placed.iter().filter(|b| *b == "h@a").count();
        assert_eq!(on_a, 5);
        assert!(placed.windows(2).all(|w| w[0] != w[1]), "{placed:?}");
    }

    fn thick_pool(total: u32, free: u32, provisioned: u32, reserved: u32, thin: bool) -> PoolStats {
        let mut s = pool_stats("p", gb(total.into()), gb(free.into()));
        s.provisioned_capacity_gb = Some(provisioned.into());
        s.reserved_percentage = reserved.into();
        s.thin_provisioning_support = thin;
        s
    }

    proptest! {
        /// A thick request never lands on a pool without room for it by
        /// the driver's free space and by total less reserve less provisioned.
        #[test]
        fn thick_requests_fit(
            total in 1u32..1000, free in 0u32..1000, provisioned in 0u32..1000,
            reserved in 0u32..100, thin in any::<bool>(), size in 1i64..1000,
        ) {
            let mut b = PoolBook::default();
            b.update(report("h@a", T, vec![thick_pool(total, free, provisioned, reserved, thin)]));
            let s = spec(size, &[("provisioning:type", "thick")]);
            let (total, reserved) = (f64::from(total), f64::from(reserved));
            let room = f64::from(free)
                .min(total - (total * reserved / 100.0).floor() - f64::from(provisioned));
            let placed = select(&b, &s, &SchedulerConfig::default()).is_ok();
            prop_assert_eq!(placed, size as f64 <= room);
        }

        /// Consecutive placements with `consume` never overfill a thick pool.
        #[test]
        fn consumption_is_honoured(free in 0u32..50, sizes in prop::collection::vec(1i64..10, 1..20)) {
            let mut b = PoolBook::default();
            b.update(report("h@a", T, vec![thick_pool(100, free, 0, 0, false)]));
            let mut placed = 0;
            for size in sizes {
                if let Ok(p) = select(&b, &spec(size, &[]), &SchedulerConfig::default()) {
                    b.consume(p.pool.as_str(), size as f64);
                    placed += size;
                }
            }
            prop_assert!(placed <= i64::from(free));
        }
    }
}
