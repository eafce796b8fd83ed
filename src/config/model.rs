//! The sections of Scoria's configuration file as typed structs, and every
//! option's default, cinder.conf equivalent and help, in one table per
//! section. A section is read by filling in the documented default of each
//! option the files leave unset, then parsing the whole section with serde:
//! the defaults below are the only ones there are.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use scoria_api::KeystoneOptions;
use scoria_core::config::{OptionDoc, Options};
use scoria_glance::{GlanceOptions, ServiceUserOptions};
use scoria_volume_manager::images::InternalTenantOptions;
use scoria_volume_manager::nova::{CredentialOptions, NovaOptions};
use serde::{Deserialize, Deserializer};

/// An option of the reference whose cinder.conf name is its own.
const fn cinder(name: &'static str, default: &'static str, help: &'static str) -> OptionDoc {
    OptionDoc {
        name,
        default,
        cinder: Some(name),
        help,
    }
}

/// Whole seconds.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// How the api authenticates its callers (`auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthStrategyName {
    /// Keystone tokens, validated with `[keystone_authtoken]`.
    Keystone,
    /// `X-Auth-Token: user:project` is trusted as given (tests, development).
    Noauth,
}

/// The `[DEFAULT]` options of the services.
#[derive(Debug, Clone, Deserialize)]
pub struct DefaultSection {
    pub host: Option<String>,
    pub storage_availability_zone: String,
    #[serde(default)]
    pub enabled_backends: Vec<String>,
    pub transport_url: Option<String>,
    pub auth_strategy: AuthStrategyName,
    pub osapi_volume_listen: IpAddr,
    pub osapi_volume_listen_port: u16,
    pub public_endpoint: Option<String>,
    #[serde(deserialize_with = "seconds")]
    pub backend_stats_polling_interval: Duration,
    #[serde(deserialize_with = "seconds")]
    pub report_interval: Duration,
    #[serde(deserialize_with = "seconds")]
    pub service_down_time: Duration,
    #[serde(deserialize_with = "seconds")]
    pub rpc_response_timeout: Duration,
    pub scheduler_max_attempts: NonZeroU32,
    pub capacity_weight_multiplier: f64,
    #[serde(deserialize_with = "seconds")]
    pub scheduler_driver_init_wait_time: Duration,
    pub executor_thread_pool_size: NonZeroUsize,
    pub image_conversion_dir: Option<String>,
    pub enable_force_upload: bool,
}

impl Options for DefaultSection {
    const OPTIONS: &'static [OptionDoc] = &[
        cinder("host", "", "Name of this node in service hosts (`host@backend`); the machine's host name when unset."),
        cinder("storage_availability_zone", "nova", "Availability zone of the services, and of volumes created without one."),
        cinder("enabled_backends", "", "Comma-separated names of the backend sections whose volume services run."),
        cinder("transport_url", "", "The RabbitMQ broker, `rabbit://user:password@host:port/vhost` (deployment mode)."),
        cinder("auth_strategy", "keystone", "How the api authenticates callers: `keystone` or `noauth`."),
        cinder("osapi_volume_listen", "127.0.0.1", "Address the api listens on (`scoria api`)."),
        cinder("osapi_volume_listen_port", "8776", "Port the api listens on (`scoria api`)."),
        cinder("public_endpoint", "", "Base URL of the api in links it returns; the request's address when unset."),
        cinder("backend_stats_polling_interval", "10", "Seconds between a volume service's capacity reports to the schedulers."),
        cinder("report_interval", "10", "Seconds between a scheduler's heartbeats and refreshes of its pool list."),
        cinder("service_down_time", "60", "Seconds of silence after which a service counts as down."),
        cinder("rpc_response_timeout", "60", "Seconds a call to another service may take."),
        cinder("scheduler_max_attempts", "3", "Backends tried for one volume before it goes to error (at least 1)."),
        cinder("capacity_weight_multiplier", "1.0", "Positive spreads volumes over the freest pools, negative stacks them."),
        cinder("scheduler_driver_init_wait_time", "10", "Seconds a scheduler waits for the first capacity report before placing a volume."),
        cinder("executor_thread_pool_size", "16", "Operations one volume service runs at once."),
        cinder("image_conversion_dir", "", "Where images that need random access are converted; `<data dir>/conversion` for `scoria serve`, the system temporary folder otherwise."),
        cinder("enable_force_upload", "false", "Allow `os-volume_upload_image` with `force` of an attached (`in-use`) volume."),
    ];
}

/// The `[DEFAULT]` quota defaults of projects without their own.
#[derive(Debug, Clone, Deserialize)]
pub struct Quotas {
    pub quota_volumes: i64,
    pub quota_snapshots: i64,
    pub quota_gigabytes: i64,
    pub quota_backups: i64,
    pub quota_backup_gigabytes: i64,
    pub quota_groups: i64,
    pub per_volume_size_limit: i64,
}

impl Options for Quotas {
    const OPTIONS: &'static [OptionDoc] = &[
        cinder(
            "quota_volumes",
            "10",
            "Volumes a project may have (-1: no limit).",
        ),
        cinder(
            "quota_snapshots",
            "10",
            "Snapshots a project may have (-1: no limit).",
        ),
        cinder(
            "quota_gigabytes",
            "1000",
            "GiB of volumes and snapshots a project may have (-1: no limit).",
        ),
        cinder(
            "quota_backups",
            "10",
            "Backups a project may have (-1: no limit).",
        ),
        cinder(
            "quota_backup_gigabytes",
            "1000",
            "GiB of backups a project may have (-1: no limit).",
        ),
        cinder(
            "quota_groups",
            "10",
            "Volume groups a project may have (-1: no limit).",
        ),
        cinder(
            "per_volume_size_limit",
            "-1",
            "Largest volume, in GiB (-1: no limit).",
        ),
    ];
}

impl From<&Quotas> for scoria_api::QuotaDefaults {
    fn from(q: &Quotas) -> Self {
        scoria_api::QuotaDefaults {
            volumes: q.quota_volumes,
            snapshots: q.quota_snapshots,
            gigabytes: q.quota_gigabytes,
            backups: q.quota_backups,
            backup_gigabytes: q.quota_backup_gigabytes,
            groups: q.quota_groups,
            per_volume_gigabytes: q.per_volume_size_limit,
        }
    }
}

/// The `[database]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSection {
    pub connection: Option<String>,
}

impl Options for DatabaseSection {
    const OPTIONS: &'static [OptionDoc] = &[cinder(
        "connection",
        "",
        "The database, `postgresql://user:password@host/name` or `sqlite:////path` (SQLAlchemy spellings accepted; deployment mode).",
    )];
}

/// The options every backend section has; the rest belong to its driver.
#[derive(Debug, Clone, Deserialize)]
pub struct BackendSection {
    pub volume_driver: Option<String>,
    pub volume_backend_name: Option<String>,
}

impl Options for BackendSection {
    const OPTIONS: &'static [OptionDoc] = &[
        cinder("volume_driver", "", "The driver's registry name (required; Cinder takes a class path here)."),
        cinder("volume_backend_name", "", "Backend name reported to the schedulers and matched by volume types; the section name when unset."),
    ];
}

/// Every fixed section and the option groups it documents, in the order of
/// the reference; backend sections are documented by [`BackendSection`] and
/// their driver.
pub const SECTIONS: &[(&str, &[&[OptionDoc]])] = &[
    (
        "DEFAULT",
        &[
            DefaultSection::OPTIONS,
            Quotas::OPTIONS,
            InternalTenantOptions::OPTIONS,
            GlanceOptions::OPTIONS,
        ],
    ),
    ("database", &[DatabaseSection::OPTIONS]),
    (
        "keystone_authtoken",
        &[CredentialOptions::OPTIONS, KeystoneOptions::OPTIONS],
    ),
    ("nova", &[NovaOptions::OPTIONS, CredentialOptions::OPTIONS]),
    (
        "service_user",
        &[ServiceUserOptions::OPTIONS, CredentialOptions::OPTIONS],
    ),
];

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde::de::{self, Visitor};

    use super::*;

    /// Captures the field names a derived `Deserialize` asks for.
    struct Fields<'a>(&'a Cell<&'static [&'static str]>);

    impl<'de> de::Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(de::Error::custom("fields captured"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    fn documents_every_field<T: Options>() {
        let fields = Cell::new(&[][..]);
        let _ = T::deserialize(Fields(&fields));
        let mut fields = fields.get().to_vec();
        let mut documented: Vec<_> = T::OPTIONS.iter().map(|d| d.name).collect();
        fields.sort();
        documented.sort();
        assert_eq!(fields, documented, "{}", std::any::type_name::<T>());
    }

    #[test]
    fn each_field_is_documented_once() {
        documents_every_field::<DefaultSection>();
        documents_every_field::<Quotas>();
        documents_every_field::<DatabaseSection>();
        documents_every_field::<BackendSection>();
        documents_every_field::<KeystoneOptions>();
        documents_every_field::<CredentialOptions>();
        documents_every_field::<NovaOptions>();
    }

    #[test]
    fn quota_defaults_are_the_apis() {
        let quotas = scoria_api::QuotaDefaults::default();
        let ours = scoria_api::QuotaDefaults::from(&crate::config::Config::defaults().quotas);
        assert_eq!(
            format!("{quotas:?}"),
            format!("{ours:?}"),
            "the api's built-in quotas"
        );
    }
}
