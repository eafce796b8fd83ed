//! A deadline per driver operation, on every backend.
//!
//! `driver_operation_timeout` (seconds, `0` for none) bounds every operation;
//! `driver_operation_timeouts` overrides it per operation as
//! `operation:seconds` pairs, e.g. `initialize_connection:60,stats:30`. A call
//! that misses its deadline is abandoned and fails with a backend error that is
//! not temporary: the backend may still finish the work, so a create is not
//! retried elsewhere.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use scoria_core::config::{BackendConfig, OptionDoc};

use super::{operation_map, Layer, Operation};
use crate::{DriverError, DriverResult};

/// The options this layer reads.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "driver_operation_timeout",
        default: "0",
        cinder: None,
        help: "Seconds any one driver operation may take before it fails (0: no deadline).",
    },
    OptionDoc {
        name: "driver_operation_timeouts",
        default: "",
        cinder: None,
        help: "Per-operation deadlines overriding driver_operation_timeout, as operation:seconds pairs \
               (e.g. initialize_connection:60,stats:30; 0 removes the deadline).",
    },
];

/// Fails a driver call that takes longer than its operation's deadline.
#[derive(Debug, Clone, Default)]
pub struct TimeoutLayer {
    every: Option<Duration>,
    per_operation: HashMap<Operation, Option<Duration>>,
}

/// Whole seconds, `0` meaning no deadline.
fn deadline(raw: &str) -> Option<Option<Duration>> {
    let secs = raw.parse::<u64>().ok()?;
    Some((secs > 0).then(|| Duration::from_secs(secs)))
}

impl TimeoutLayer {
    /// Reads the layer's options from a backend section.
    pub fn from_config(config: &BackendConfig) -> DriverResult<Self> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).unwrap_or("");
        let every = match option("driver_operation_timeout") {
            "" => None,
            raw => deadline(raw).ok_or_else(|| {
                DriverError::InvalidConfig(format!(
                    "backend {}: driver_operation_timeout = {raw:?} must be whole seconds",
                    config.name
                ))
            })?,
        };
        let per_operation = operation_map(
            config,
            "driver_operation_timeouts",
            option("driver_operation_timeouts"),
            deadline,
            "operation:seconds",
        )?;
        Ok(Self {
            every,
            per_operation: per_operation.into_iter().collect(),
        })
    }

    /// The deadline of `op`, if it has one.
    pub fn deadline(&self, op: Operation) -> Option<Duration> {
        self.per_operation.get(&op).copied().unwrap_or(self.every)
    }
}

impl Layer for TimeoutLayer {
    async fn around<T: Send>(
        &self,
        op: Operation,
        call: impl Future<Output = DriverResult<T>> + Send,
    ) -> DriverResult<T> {
        let Some(limit) = self.deadline(op) else {
            return call.await;
        };
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(DriverError::Backend {
                message: format!("{op} did not finish within {} s", limit.as_secs()),
                temporary: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(options: &[(&str, &str)]) -> BackendConfig {
        BackendConfig {
            name: "b1".into(),
            driver: "file".into(),
            volume_backend_name: "b1".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn deadlines_default_to_none_and_are_overridden_per_operation() {
        let none = TimeoutLayer::from_config(&config(&[])).unwrap();
        assert!(Operation::ALL.iter().all(|op| none.deadline(*op).is_none()));
        let layer = TimeoutLayer::from_config(&config(&[
            ("driver_operation_timeout", "600"),
            ("driver_operation_timeouts", "stats:30, extend_volume:0"),
        ]))
        .unwrap();
        assert_eq!(
            layer.deadline(Operation::Stats),
            Some(Duration::from_secs(30))
        );
        assert_eq!(layer.deadline(Operation::ExtendVolume), None);
        assert_eq!(
            layer.deadline(Operation::CreateVolume),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn bad_values_name_the_option_and_the_value() {
        for (key, value) in [
            ("driver_operation_timeout", "soon"),
            ("driver_operation_timeouts", "stats:-1"),
            ("driver_operation_timeouts", "create:5"),
            ("driver_operation_timeouts", "stats"),
        ] {
            let Err(DriverError::InvalidConfig(message)) =
                TimeoutLayer::from_config(&config(&[(key, value)]))
            else {
                panic!("{key} = {value} must be refused");
            };
            assert!(
                message.contains("b1") && message.contains(key) && message.contains(value),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_late_call_fails_and_is_not_temporary() {
        let layer = TimeoutLayer::from_config(&config(&[("driver_operation_timeouts", "stats:1")]))
            .unwrap();
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let err = layer.around(Operation::Stats, slow).await.unwrap_err();
        assert!(!err.is_temporary(), "{err}");
        assert!(
            err.to_string().contains("stats did not finish within 1 s"),
            "{err}"
        );
        let quick = async { Ok(7) };
        assert_eq!(layer.around(Operation::Stats, quick).await.unwrap(), 7);
    }
}
