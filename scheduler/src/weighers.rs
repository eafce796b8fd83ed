//! Weighing the pools that passed the filters. Each weigher's raw weights are
//! normalised to 0..1, multiplied by its multiplier and summed; the heaviest
//! pool wins.

use scoria_core::rpc::RequestSpec;

use crate::pools::PoolState;
use crate::select::SchedulerConfig;

/// A pool with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighed<'a> {
    pub pool: &'a PoolState,
    pub weight: f64,
}

/// Weighs `pools` and returns them heaviest first; equal weights are ordered
/// by pool name, so the choice is deterministic.
pub fn weigh<'a>(
    pools: &[&'a PoolState],
    spec: &RequestSpec,
    cfg: &SchedulerConfig,
) -> Vec<Weighed<'a>> {
    let multiplier = cfg.capacity_weight_multiplier;
    let weighers = [(
        normalise(&capacity_weights(pools, spec, multiplier)),
        multiplier,
    )];
    let mut weighed: Vec<Weighed<'a>> = pools
        .iter()
        .enumerate()
        .map(|(i, pool)| Weighed {
            pool,
            weight: weighers.iter().map(|(w, m)| w[i] * m).sum(),
        })
        .collect();
    weighed.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| a.pool.name.cmp(&b.pool.name))
    });
    weighed
}

/// The capacity weigher's raw weights: each pool's virtual free capacity
/// (thin or thick math as the request asks). A pool with unknown or infinite
/// capacity weighs -1 when spreading (`multiplier > 0`) and more than every
/// other pool when stacking, so it comes last either way.
pub fn capacity_weights(pools: &[&PoolState], spec: &RequestSpec, multiplier: f64) -> Vec<f64> {
    let raw: Vec<Option<f64>> = pools
        .iter()
        .map(|p| p.factors(p.thin_for(spec)).map(|f| f.virtual_free_capacity))
        .collect();
    let unmeasured = if multiplier > 0.0 {
        -1.0
    } else {
        above_all(raw.iter().flatten().copied())
    };
    raw.into_iter().map(|w| w.unwrap_or(unmeasured)).collect()
}

/// A weight above every one given: the largest plus 100 times the spread,
/// or plus 10000 when they are all equal (0 when there are none).
fn above_all(weights: impl Iterator<Item = f64> + Clone) -> f64 {
    let Some((min, max)) = min_max(weights) else {
        return 0.0;
    };
    let offset = (max - min) * 100.0;
    max + if offset == 0.0 { 10000.0 } else { offset }
}

/// Min–max normalisation to 0..1; all-equal weights become 0.
pub fn normalise(weights: &[f64]) -> Vec<f64> {
    match min_max(weights.iter().copied()) {
        Some((min, max)) if max > min => weights.iter().map(|w| (w - min) / (max - min)).collect(),
        _ => vec![0.0; weights.len()],
    }
}

fn min_max(weights: impl Iterator<Item = f64> + Clone) -> Option<(f64, f64)> {
    let min = weights.clone().reduce(f64::min)?;
    let max = weights.reduce(f64::max)?;
    Some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::tests::spec;
    use crate::pools::tests::{pool, pool_stats};
    use proptest::prelude::*;
    use scoria_core::capacity::Capacity;

    fn gb(v: f64) -> Capacity {
        Capacity::Gb(v)
    }

    fn cfg(multiplier: f64) -> SchedulerConfig {
        SchedulerConfig {
            capacity_weight_multiplier: multiplier,
            ..SchedulerConfig::default()
        }
    }

    fn order(pools: &[PoolState], multiplier: f64) -> Vec<String> {
        let refs: Vec<&PoolState> = pools.iter().collect();
        weigh(&refs, &spec(1, &[]), &cfg(multiplier))
            .into_iter()
            .map(|w| w.pool.name.to_string())
            .collect()
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise(&[10.0, 20.0, 15.0]), [0.0, 1.0, 0.5]);
        assert_eq!(normalise(&[7.0, 7.0]), [0.0, 0.0]);
        assert!(normalise(&[]).is_empty());
    }

    #[test]
    fn spreading_prefers_free_space_and_stacking_the_opposite() {
        let pools = [
            pool("h@a", pool_stats("p", gb(100.0), gb(10.0))),
            pool("h@b", pool_stats("p", gb(100.0), gb(90.0))),
            pool("h@c", pool_stats("p", gb(100.0), gb(50.0))),
        ];
        assert_eq!(order(&pools, 1.0), ["h@b#p", "h@c#p", "h@a#p"]);
        assert_eq!(order(&pools, -1.0), ["h@a#p", "h@c#p", "h@b#p"]);
    }

    #[test]
    fn unmeasured_pools_come_last() {
        let pools = [
            pool(
                "h@a",
                pool_stats("p", Capacity::Infinite, Capacity::Infinite),
            ),
            pool("h@b", pool_stats("p", gb(100.0), gb(10.0))),
            pool("h@c", pool_stats("p", gb(100.0), Capacity::Unknown)),
            pool("h@d", pool_stats("p", gb(100.0), gb(90.0))),
        ];
        assert_eq!(order(&pools, 1.0), ["h@d#p", "h@b#p", "h@a#p", "h@c#p"]);
        assert_eq!(order(&pools, -1.0), ["h@b#p", "h@d#p", "h@a#p", "h@c#p"]);
        let refs: Vec<&PoolState> = pools.iter().collect();
        let raw = capacity_weights(&refs, &spec(1, &[]), -1.0);
        assert_eq!(raw, [8090.0, 10.0, 8090.0, 90.0]);
    }

    #[test]
    fn equal_pools_tie_by_name() {
        let pools = [
            pool("h@b", pool_stats("p", gb(100.0), gb(50.0))),
            pool("h@a", pool_stats("p", gb(100.0), gb(50.0))),
        ];
        assert_eq!(order(&pools, 1.0), ["h@a#p", "h@b#p"]);
    }

    proptest! {
        /// With finite pools and a positive multiplier, the weighed order is
        /// the order by virtual free capacity (ties by name).
        #[test]
        fn order_follows_virtual_free_capacity(
            figures in prop::collection::vec((1u32..10_000, 0u32..10_000, 0u32..20_000, 0u32..50, any::<bool>()), 1..8)
        ) {
            let pools: Vec<PoolState> = figures.iter().enumerate().map(|(i, &(total, free, prov, reserved, thin))| {
                let mut s = pool_stats("p", gb(total.into()), gb(free.min(total).into()));
                s.provisioned_capacity_gb = Some(prov.into());
                s.reserved_percentage = reserved.into();
                s.thin_provisioning_support = thin;
                pool(&format!("h@b{i}"), s)
            }).collect();
            let request = spec(1, &[]);
            let mut expected: Vec<(f64, &str)> = pools.iter().map(|p| {
                (p.factors(p.thin_for(&request)).unwrap().virtual_free_capacity, p.name.as_str())
            }).collect();
            expected.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            let expected: Vec<&str> = expected.into_iter().map(|(_, n)| n).collect();
            prop_assert_eq!(order(&pools, 1.0), expected);
        }
    }
}
