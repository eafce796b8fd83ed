//! Configuration shared by several crates.

use std::collections::BTreeMap;

/// One storage backend, as a `[backend]` section of the INI file describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// The section name; the service's host is `host@<name>`.
    pub name: String,
    /// Registry name of the driver (`volume_driver`).
    pub driver: String,
    /// Reported as `volume_backend_name` and matched by volume types.
    pub volume_backend_name: String,
    /// Every other option of the section, as written.
    pub options: BTreeMap<String, String>,
}
