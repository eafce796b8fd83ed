//! The `file` driver's options, read from its backend section.

use std::path::PathBuf;

use scoria_core::config::{BackendConfig, OptionDoc};
use serde::Deserialize;

use crate::iscsi::TgtTarget;
use crate::options::from_options;
use crate::{DriverError, DriverResult};

/// The options the file driver reads itself; `target_helper = tgtadm` hands
/// the target options to [`TgtTarget::new`].
#[derive(Debug, Clone, Deserialize)]
pub struct FileConfig {
    /// Directory holding the volumes' raw files.
    pub file_volumes_dir: PathBuf,
    /// The one pool's name; `volume_backend_name` when unset.
    #[serde(default)]
    pub file_pool_name: Option<String>,
    /// Percentage of the capacity kept free from new volumes.
    #[serde(default)]
    pub reserved_percentage: f64,
    /// A number of at least 1.0, or `auto`.
    #[serde(default = "default_ratio")]
    pub max_over_subscription_ratio: String,
    /// How volumes are exported.
    #[serde(default)]
    pub target_helper: TargetHelper,
}

/// `target_helper`: how hosts reach a volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHelper {
    /// The file's path on this host (`driver_volume_type` `local`).
    #[default]
    Local,
    /// iSCSI through tgtd, see [`crate::iscsi`].
    Tgtadm,
}

fn default_ratio() -> String {
    "20.0".into()
}

/// The backend-section options the driver reads, its own and the iSCSI target's.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "file_volumes_dir",
        default: "",
        cinder: None,
        help: "Directory holding the volumes' raw files (required).",
    },
    OptionDoc {
        name: "file_pool_name",
        default: "",
        cinder: None,
        help: "Name of the one pool the backend reports; empty means volume_backend_name.",
    },
    OptionDoc {
        name: "reserved_percentage",
        default: "0",
        cinder: Some("reserved_percentage"),
        help: "Percentage of the capacity kept free from new volumes (0 to 100).",
    },
    OptionDoc {
        name: "max_over_subscription_ratio",
        default: "20.0",
        cinder: Some("max_over_subscription_ratio"),
        help: "Thin-provisioning over-subscription ratio, a number of at least 1.0 or 'auto'.",
    },
    OptionDoc {
        name: "target_helper",
        default: "local",
        cinder: Some("target_helper"),
        help: "How volumes are exported: 'local' (a device path on this host) or 'tgtadm' (iSCSI through tgtd).",
    },
    OptionDoc {
        name: "tgtadm_path",
        default: "tgtadm",
        cinder: None,
        help: "The tgtadm command used with target_helper = tgtadm.",
    },
    OptionDoc {
        name: "target_ip_address",
        default: "127.0.0.1",
        cinder: Some("target_ip_address"),
        help: "Address initiators reach the iSCSI targets on.",
    },
    OptionDoc {
        name: "target_port",
        default: "3260",
        cinder: Some("target_port"),
        help: "Port initiators reach the iSCSI targets on.",
    },
    OptionDoc {
        name: "target_prefix",
        default: "iqn.2010-10.org.openstack:",
        cinder: Some("target_prefix"),
        help: "Prefix of the iSCSI target names; the volume id follows it.",
    },
];

/// The options of [`crate::iscsi`], listed in [`OPTIONS`] after the driver's own.
#[cfg(test)]
const TARGET_OPTIONS: [&str; 4] = [
    "tgtadm_path",
    "target_ip_address",
    "target_port",
    "target_prefix",
];

impl FileConfig {
    /// Reads and checks the options of `config`; touches no files.
    pub fn from_config(config: &BackendConfig) -> DriverResult<Self> {
        let mut file: Self = from_options(config)?;
        let invalid = |key: &str, value: &dyn std::fmt::Debug, want: &str| {
            DriverError::InvalidConfig(format!(
                "backend {}: {key} = {value:?} must be {want}",
                config.name
            ))
        };
        file.file_volumes_dir = std::path::absolute(&file.file_volumes_dir).map_err(|e| {
            invalid(
                "file_volumes_dir",
                &file.file_volumes_dir,
                &format!("a usable path ({e})"),
            )
        })?;
        if !(0.0..=100.0).contains(&file.reserved_percentage) {
            return Err(invalid(
                "reserved_percentage",
                &file.reserved_percentage,
                "a number from 0 to 100",
            ));
        }
        let ratio = &file.max_over_subscription_ratio;
        if !(ratio.eq_ignore_ascii_case("auto") || ratio.parse::<f64>().is_ok_and(|r| r >= 1.0)) {
            return Err(invalid(
                "max_over_subscription_ratio",
                ratio,
                "'auto' or a number of at least 1.0",
            ));
        }
        Ok(file)
    }

    /// The iSCSI target for `target_helper = tgtadm`; `None` for `local`.
    pub fn iscsi_target(&self, config: &BackendConfig) -> DriverResult<Option<TgtTarget>> {
        match self.target_helper {
            TargetHelper::Local => Ok(None),
            TargetHelper::Tgtadm => TgtTarget::new(config).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::field_names;

    #[test]
    fn option_docs_list_every_option_read() {
        let documented: Vec<_> = OPTIONS.iter().map(|o| o.name).collect();
        let read: Vec<_> = field_names::<FileConfig>()
            .iter()
            .chain(&TARGET_OPTIONS)
            .copied()
            .collect();
        assert_eq!(documented, read);
    }
}
