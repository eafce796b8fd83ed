//! Fault injection for tests (cargo feature `fault-injection`): failures and
//! delays around any driver, set by options of the backend section.
//!
//! - `fault_inject`: comma-separated operations that always fail, each
//!   optionally followed by `:temporary` (the default: the volume manager
//!   reschedules a failed create) or `:permanent`; e.g.
//!   `fault_inject = initialize_connection` or `create_volume:permanent`;
//! - `fault_delay_ms`: how long every operation that creates, deletes,
//!   extends, reverts or exports takes (not `setup`, `stats`,
//!   `terminate_connection` nor the local attach calls).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use scoria_core::config::{BackendConfig, OptionDoc};

use super::{operation_map, Layer, Operation};
use crate::{DriverError, DriverResult};

/// The options this layer reads.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "fault_inject",
        default: "",
        cinder: None,
        help: "Test builds only: driver operations that always fail, as operation[:temporary|:permanent] \
               separated by commas.",
    },
    OptionDoc {
        name: "fault_delay_ms",
        default: "0",
        cinder: None,
        help: "Test builds only: milliseconds added to every driver operation that creates, deletes, \
               extends, reverts or exports.",
    },
];

/// The operations `fault_delay_ms` slows down.
const DELAYED: &[Operation] = &[
    Operation::CreateVolume,
    Operation::DeleteVolume,
    Operation::CreateSnapshot,
    Operation::DeleteSnapshot,
    Operation::CreateVolumeFromSnapshot,
    Operation::CreateClonedVolume,
    Operation::ExtendVolume,
    Operation::RevertToSnapshot,
    Operation::InitializeConnection,
];

/// Fails and slows the operations a backend section names.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    /// Failing operation → whether its failure is temporary.
    failing: HashMap<Operation, bool>,
    delay: Duration,
}

/// `temporary` (or nothing) or `permanent`, as "is the failure temporary".
fn kind(raw: &str) -> Option<bool> {
    match raw {
        "" | "temporary" => Some(true),
        "permanent" => Some(false),
        _ => None,
    }
}

impl FaultLayer {
    /// The layer a backend section asks for, or `None` when it sets no fault option.
    pub fn from_config(config: &BackendConfig) -> DriverResult<Option<Self>> {
        let option = |key: &str| config.options.get(key).map(|v| v.trim()).unwrap_or("");
        let failing = operation_map(
            config,
            "fault_inject",
            option("fault_inject"),
            kind,
            "operation, operation:temporary or operation:permanent",
        )?;
        let delay = match option("fault_delay_ms") {
            "" => 0,
            raw => raw.parse::<u64>().map_err(|_| {
                DriverError::InvalidConfig(format!(
                    "backend {}: fault_delay_ms = {raw:?} must be whole milliseconds",
                    config.name
                ))
            })?,
        };
        let layer = Self {
            failing: failing.into_iter().collect(),
            delay: Duration::from_millis(delay),
        };
        Ok((!layer.failing.is_empty() || !layer.delay.is_zero()).then_some(layer))
    }
}

impl Layer for FaultLayer {
    async fn around<T: Send>(
        &self,
        op: Operation,
        call: impl Future<Output = DriverResult<T>> + Send,
    ) -> DriverResult<T> {
        if DELAYED.contains(&op) && !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.failing.get(&op) {
            Some(&temporary) => Err(DriverError::Backend {
                message: format!("injected failure of {op} (fault_inject)"),
                temporary,
            }),
            None => call.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(options: &[(&str, &str)]) -> BackendConfig {
        BackendConfig {
            name: "b1".into(),
            driver: "fake".into(),
            volume_backend_name: "b1".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn no_fault_option_means_no_layer() {
        assert!(FaultLayer::from_config(&config(&[])).unwrap().is_none());
        let empty = config(&[("fault_inject", ""), ("fault_delay_ms", "0")]);
        assert!(FaultLayer::from_config(&empty).unwrap().is_none());
    }

    #[tokio::test]
    async fn named_operations_fail_temporarily_unless_permanent() {
        let layer = FaultLayer::from_config(&config(&[(
            "fault_inject",
            "initialize_connection, create_volume:permanent",
        )]))
        .unwrap()
        .unwrap();
        let ok = || async { Ok(()) };
        let export = layer.around(Operation::InitializeConnection, ok()).await;
        assert!(
            export.as_ref().is_err_and(DriverError::is_temporary),
            "{export:?}"
        );
        let create = layer
            .around(Operation::CreateVolume, ok())
            .await
            .unwrap_err();
        assert!(!create.is_temporary());
        assert!(create
            .to_string()
            .contains("injected failure of create_volume"));
        assert!(layer.around(Operation::DeleteVolume, ok()).await.is_ok());
    }

    #[test]
    fn bad_values_name_the_option_and_the_value() {
        for (key, value) in [
            ("fault_inject", "create_volume:sometimes"),
            ("fault_inject", "explode"),
            ("fault_delay_ms", "slow"),
        ] {
            let Err(DriverError::InvalidConfig(message)) =
                FaultLayer::from_config(&config(&[(key, value)]))
            else {
                panic!("{key} = {value} must be refused");
            };
            assert!(
                message.contains(key) && message.contains(value),
                "{message}"
            );
        }
    }
}
