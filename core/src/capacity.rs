//! Capacity values and the capacity math the scheduler, the weigher and every
//! non-scheduler path share. The formulas follow Cinder's published behaviour
//! (reserved percentage, thin over-subscription, `unknown`/`infinite`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A capacity as a driver reports it: a number of GiB, or one of Cinder's keywords.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Capacity {
    Gb(f64),
    /// The backend cannot tell (`"unknown"`).
    Unknown,
    /// The backend has no upper limit (`"infinite"`).
    Infinite,
}

impl Capacity {
    /// The number of GiB, if the value is a number.
    pub fn gb(self) -> Option<f64> {
        match self {
            Capacity::Gb(v) => Some(v),
            _ => None,
        }
    }
}

impl Serialize for Capacity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Capacity::Gb(v) => s.serialize_f64(*v),
            Capacity::Unknown => s.serialize_str("unknown"),
            Capacity::Infinite => s.serialize_str("infinite"),
        }
    }
}

impl<'de> Deserialize<'de> for Capacity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(v) => Ok(Capacity::Gb(v)),
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "unknown" => Ok(Capacity::Unknown),
                "infinite" => Ok(Capacity::Infinite),
                other => other
                    .parse::<f64>()
                    .map(Capacity::Gb)
                    .map_err(|_| serde::de::Error::custom(format!("bad capacity '{t}'"))),
            },
        }
    }
}

/// The derived figures for one pool, rounded to two decimals as Cinder rounds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityFactors {
    pub total_capacity: f64,
    pub free_capacity: f64,
    pub reserved_capacity: f64,
    pub total_reserved_available_capacity: f64,
    pub max_over_subscription_ratio: f64,
    pub total_available_capacity: f64,
    pub provisioned_capacity: f64,
    pub calculated_free_capacity: f64,
    pub virtual_free_capacity: f64,
    pub free_percent: f64,
    pub provisioned_ratio: f64,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Computes a pool's capacity factors.
///
/// `thin` is true when the request is thin and the pool supports thin
/// provisioning; `ratio` is the pool's over-subscription ratio (1.0 for thick).
pub fn capacity_factors(
    total: f64,
    free: f64,
    provisioned: f64,
    thin: bool,
    ratio: f64,
    reserved_percentage: f64,
) -> CapacityFactors {
    let reserved = (total * reserved_percentage / 100.0).floor();
    let total_reserved_available = total - reserved;
    let (total_available, calculated_free, virtual_free) = if thin {
        let total_available = total_reserved_available * ratio;
        let calculated_free = total_available - provisioned;
        (total_available, calculated_free, calculated_free)
    } else {
        let calculated_free = total_reserved_available - provisioned;
        (
            total_reserved_available,
            calculated_free,
            free.min(calculated_free),
        )
    };
    let (provisioned_ratio, free_percent) = if total_available > 0.0 {
        (
            provisioned / total_available,
            virtual_free / total_available * 100.0,
        )
    } else {
        (0.0, 0.0)
    };
    CapacityFactors {
        total_capacity: total,
        free_capacity: free,
        reserved_capacity: reserved,
        total_reserved_available_capacity: round2(total_reserved_available),
        max_over_subscription_ratio: ratio,
        total_available_capacity: round2(total_available),
        provisioned_capacity: provisioned,
        calculated_free_capacity: round2(calculated_free),
        virtual_free_capacity: round2(virtual_free),
        free_percent: round2(free_percent),
        provisioned_ratio: round2(provisioned_ratio),
    }
}

/// How a pool's over-subscription ratio is configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverSubscription {
    Ratio(f64),
    /// Derived from current usage (`max_over_subscription_ratio = auto`).
    Auto,
}

/// The ratio initially used by `auto` before anything is provisioned.
pub const INITIAL_AUTO_RATIO: f64 = 20.0;

/// The effective over-subscription ratio of a pool, as Cinder derives it:
/// 1.0 without thin support or with an unknown/infinite total or free.
pub fn effective_ratio(
    setting: OverSubscription,
    thin_support: bool,
    total: Capacity,
    free: Capacity,
    provisioned: f64,
) -> f64 {
    let (Some(total), Some(free)) = (total.gb(), free.gb()) else {
        return 1.0;
    };
    if !thin_support {
        return 1.0;
    }
    match setting {
        OverSubscription::Ratio(r) => r,
        OverSubscription::Auto if provisioned != 0.0 => {
            round2(1.0 + provisioned / (total - free + 1.0))
        }
        OverSubscription::Auto => INITIAL_AUTO_RATIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_serialises_as_cinder_does() {
        assert_eq!(serde_json::to_string(&Capacity::Gb(1.5)).unwrap(), "1.5");
        assert_eq!(
            serde_json::to_string(&Capacity::Infinite).unwrap(),
            "\"infinite\""
        );
        let c: Capacity = serde_json::from_str("\"Unknown\"").unwrap();
        assert_eq!(c, Capacity::Unknown);
        let c: Capacity = serde_json::from_str("\"12.5\"").unwrap();
        assert_eq!(c, Capacity::Gb(12.5));
        assert!(serde_json::from_str::<Capacity>("\"lots\"").is_err());
    }

    #[test]
    fn thick_pool_reserved_percentage() {
        // 100 GiB total, 10% reserved, 80 free, 15 provisioned.
        let f = capacity_factors(100.0, 80.0, 15.0, false, 1.0, 10.0);
        assert_eq!(f.reserved_capacity, 10.0);
        assert_eq!(f.total_available_capacity, 90.0);
        assert_eq!(f.calculated_free_capacity, 75.0);
        assert_eq!(f.virtual_free_capacity, 75.0);
    }

    #[test]
    fn thin_pool_over_subscription() {
        let f = capacity_factors(100.0, 10.0, 500.0, true, 20.0, 5.0);
        assert_eq!(f.total_available_capacity, 1900.0);
        assert_eq!(f.virtual_free_capacity, 1400.0);
        assert_eq!(f.provisioned_ratio, 0.26);
    }

    #[test]
    fn auto_ratio() {
        let r = effective_ratio(
            OverSubscription::Auto,
            true,
            Capacity::Gb(100.0),
            Capacity::Gb(60.0),
            82.0,
        );
        assert_eq!(r, 3.0);
        let r = effective_ratio(
            OverSubscription::Ratio(20.0),
            true,
            Capacity::Infinite,
            Capacity::Gb(1.0),
            0.0,
        );
        assert_eq!(r, 1.0);
    }
}
