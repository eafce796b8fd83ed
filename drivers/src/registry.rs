//! Driver names mapped to constructors.
//!
//! A backend section names its driver with `volume_driver = <name>`; this
//! table turns that name into a driver, wrapped in the layers of
//! [`crate::layers`]. Adding a driver means adding one row, behind the
//! driver's cargo feature: a release build has `file` only, test builds add
//! `fake`.

use std::sync::Arc;

use scoria_core::config::{BackendConfig, OptionDoc};

#[cfg(feature = "fake")]
use crate::fake::FakeDriver;
#[cfg(feature = "file")]
use crate::file::FileDriver;
use crate::{layers, DriverError, DriverResult, VolumeDriver};

/// Builds a driver from its backend section, without touching the backend.
type Constructor = fn(&BackendConfig) -> DriverResult<Arc<dyn VolumeDriver>>;

/// Every known driver: (registry name, constructor, the options it reads).
const DRIVERS: &[(&str, Constructor, &[OptionDoc])] = &[
    #[cfg(feature = "file")]
    (FileDriver::NAME, FileDriver::create, FileDriver::OPTIONS),
    #[cfg(feature = "fake")]
    (FakeDriver::NAME, FakeDriver::create, FakeDriver::OPTIONS),
];

/// The registry names, in table order.
const NAMES: [&str; DRIVERS.len()] = {
    let mut names = [""; DRIVERS.len()];
    let mut i = 0;
    while i < DRIVERS.len() {
        names[i] = DRIVERS[i].0;
        i += 1;
    }
    names
};

/// Creates the driver named by `config.driver`, wrapped in its layers. The
/// driver is not set up yet: call [`VolumeDriver::setup`] before using it.
pub fn create(config: &BackendConfig) -> DriverResult<Arc<dyn VolumeDriver>> {
    let (_, constructor, _) = DRIVERS
        .iter()
        .find(|(name, _, _)| *name == config.driver)
        .ok_or_else(|| {
            DriverError::InvalidConfig(format!(
                "backend {}: unknown volume_driver {:?}; known drivers: {}",
                config.name,
                config.driver,
                NAMES.join(", ")
            ))
        })?;
    layers::wrap(config, constructor(config)?)
}

/// The names [`create`] accepts.
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// The backend-section options each driver reads, by registry name, for the
/// configuration reference.
pub fn option_docs() -> impl Iterator<Item = (&'static str, &'static [OptionDoc])> {
    DRIVERS.iter().map(|(name, _, docs)| (*name, *docs))
}

/// The backend-section options of the layers, which every backend reads
/// whatever its driver, for the configuration reference.
pub fn layer_option_docs() -> impl Iterator<Item = &'static OptionDoc> {
    layers::OPTIONS.iter().flat_map(|docs| docs.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(driver: &str) -> BackendConfig {
        BackendConfig {
            name: "b1".into(),
            driver: driver.into(),
            volume_backend_name: "b1".into(),
            options: [(
                "file_volumes_dir".to_string(),
                "/tmp/scoria-registry-test".to_string(),
            )]
            .into(),
        }
    }

    #[test]
    fn known_names_build_their_driver() {
        assert!(names().contains(&"file"));
        for name in names() {
            assert_eq!(create(&config(name)).unwrap().name(), *name);
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let Err(DriverError::InvalidConfig(message)) = create(&config("nope")) else {
            panic!("an unknown driver must be a configuration error");
        };
        assert!(message.contains("\"nope\""), "{message}");
        assert!(message.contains("file"), "{message}");
    }

    #[test]
    fn layer_options_are_read_for_every_driver() {
        let mut bad = config("file");
        bad.options
            .insert("driver_operation_timeout".into(), "soon".into());
        let Err(DriverError::InvalidConfig(message)) = create(&bad) else {
            panic!("a bad layer option must be a configuration error");
        };
        assert!(message.contains("driver_operation_timeout"), "{message}");
        assert!(layer_option_docs().any(|doc| doc.name == "driver_operation_timeout"));
    }
}
