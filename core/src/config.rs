//! Configuration shared by several crates: a backend's section, the
//! documentation of an option, and reading a section into a typed struct.

mod read;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

pub use read::{read, read_options, Error as ConfigError};

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

/// One option of the INI file, as the generated configuration reference
/// lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDoc {
    /// The option's name in its section.
    pub name: &'static str,
    /// Its default as it would be written in the file; `""` when it has none.
    pub default: &'static str,
    /// The cinder.conf option it stands for, when Cinder has one.
    pub cinder: Option<&'static str>,
    /// What it sets, in one sentence.
    pub help: &'static str,
}

impl OptionDoc {
    /// An option cinder.conf spells the same way.
    pub const fn same_as_cinder(
        name: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> OptionDoc {
        OptionDoc {
            name,
            default,
            cinder: Some(name),
            help,
        }
    }
}

/// A group of options read from one section into `Self` with [`read`]; its
/// table gives each option's default (the only place defaults live), its
/// cinder.conf name and its help, for the configuration reference.
pub trait Options: DeserializeOwned {
    /// Every option `Self` reads: one per field, under the field's name.
    const OPTIONS: &'static [OptionDoc];
}

/// One option's value as written, and where (a file and line, an
/// environment variable; empty when unknown), for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub text: String,
    pub origin: String,
}
