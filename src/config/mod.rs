//! Scoria's configuration: INI files with cinder.conf's option names, read
//! as oslo.config reads them ([`ini`]), then section by section into the
//! typed structs of [`model`], whose tables give every option's default;
//! [`reference`] renders those tables for operators.
//!
//! Sources, later ones winning: each `--config-file` in order, the `*.conf`
//! files of `--config-dir` sorted by name, then `SCORIA_<SECTION>__<OPTION>`
//! environment variables (e.g. `SCORIA_DATABASE__CONNECTION`).

pub mod ini;
pub mod model;
pub mod reference;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use scoria_core::config::{BackendConfig, OptionDoc, Options, Setting};

use ini::{Ini, Value, DEFAULT};
use model::{BackendSection, DatabaseSection, DefaultSection, Quotas};
use scoria_volume_manager::images::InternalTenantOptions;

/// Where the configuration is read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// Files read in order; a later one overrides an earlier one.
    pub files: Vec<PathBuf>,
    /// A directory whose `*.conf` files are read after `files`, by name.
    pub dir: Option<PathBuf>,
}

impl Sources {
    /// One file, or none.
    pub fn file(path: Option<&Path>) -> Self {
        Sources {
            files: path.map(Path::to_path_buf).into_iter().collect(),
            dir: None,
        }
    }

    /// The files to read, in order.
    pub fn paths(&self) -> anyhow::Result<Vec<PathBuf>> {
        let mut paths = self.files.clone();
        if let Some(dir) = &self.dir {
            let entries = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read the config dir {}", dir.display()))?;
            let mut found = Vec::new();
            for entry in entries {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "conf") && path.is_file() {
                    found.push(path);
                }
            }
            found.sort();
            paths.extend(found);
        }
        Ok(paths)
    }
}

/// The configuration of a Scoria process.
#[derive(Debug, Clone)]
pub struct Config {
    ini: Ini,
    pub default: DefaultSection,
    pub quotas: Quotas,
    pub database: DatabaseSection,
    /// `[DEFAULT] cinder_internal_tenant_*`.
    pub internal_tenant: InternalTenantOptions,
}

impl Config {
    /// Reads `sources`, then the `SCORIA_*` environment variables.
    pub fn load(sources: &Sources) -> anyhow::Result<Config> {
        let mut ini = Ini::default();
        for path in sources.paths()? {
            ini.read_file(&path)?;
        }
        ini.apply_env(std::env::vars());
        Config::from_ini(ini)
    }

    /// Every option at its default.
    pub fn defaults() -> Config {
        Config::from_ini(Ini::default()).expect("the documented defaults are valid")
    }

    /// Reads the fixed sections of `ini`.
    pub fn from_ini(ini: Ini) -> anyhow::Result<Config> {
        Ok(Config {
            default: read(&ini, DEFAULT)?,
            quotas: read(&ini, DEFAULT)?,
            internal_tenant: read(&ini, DEFAULT)?,
            database: read(&ini, "database")?,
            ini,
        })
    }

    /// The options `T` reads from `section`.
    pub fn section<T: Options>(&self, section: &str) -> anyhow::Result<T> {
        read(&self.ini, section)
    }

    /// Every option of `section` as text, substitutions made.
    fn options(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        Ok(resolved(&self.ini, section)?
            .into_iter()
            .map(|(k, v)| (k, v.text))
            .collect())
    }

    /// The backends named by `[DEFAULT] enabled_backends`, each from its own section.
    pub fn backends(&self) -> anyhow::Result<Vec<BackendConfig>> {
        self.default
            .enabled_backends
            .iter()
            .map(|name| self.backend(name))
            .collect()
    }

    fn backend(&self, name: &str) -> anyhow::Result<BackendConfig> {
        if !self.ini.has_section(name) {
            bail!("enabled_backends names '{name}' but there is no [{name}] section");
        }
        let section: BackendSection = read(&self.ini, name)?;
        let driver = section.volume_driver.ok_or_else(|| {
            anyhow!(
                "[{name}] needs volume_driver (one of: {})",
                scoria_drivers::registry::names().join(", ")
            )
        })?;
        let mut options = self.options(name)?;
        for common in BackendSection::OPTIONS {
            options.remove(common.name);
        }
        Ok(BackendConfig {
            name: name.to_string(),
            driver,
            volume_backend_name: section
                .volume_backend_name
                .unwrap_or_else(|| name.to_string()),
            options,
        })
    }

    /// The database URL from `[database] connection`, accepting SQLAlchemy
    /// spellings such as `postgresql+psycopg2://` and `sqlite:////path`.
    pub fn database_url(&self) -> anyhow::Result<String> {
        let url = self.database.connection.as_deref().ok_or_else(|| {
            anyhow!("[database] connection is not set (e.g. postgresql://user@host/scoria)")
        })?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| anyhow!("[database] connection '{url}' is not a URL"))?;
        let scheme = scheme.split('+').next().unwrap_or(scheme);
        Ok(match scheme {
            "postgresql" | "postgres" => format!("postgres://{rest}"),
            // SQLAlchemy writes an absolute path with four slashes, sqlx with three.
            "sqlite" => format!("sqlite://{}", rest.strip_prefix('/').unwrap_or(rest)),
            other => bail!(
                "[database] connection: unsupported database '{other}'; use postgresql:// or sqlite://"
            ),
        })
    }
}

/// The options `section` documents: a fixed section's, or a backend's
/// common options and those of the driver it names.
fn documented(ini: &Ini, section: &str) -> Vec<&'static OptionDoc> {
    if let Some((_, groups)) = model::SECTIONS.iter().find(|(name, _)| *name == section) {
        return groups.iter().flat_map(|g| g.iter()).collect();
    }
    let driver = ini.get(section, "volume_driver").map(|v| v.text.trim());
    let driver_docs = scoria_drivers::registry::option_docs()
        .filter(|(name, _)| Some(*name) == driver)
        .flat_map(|(_, docs)| docs.iter());
    BackendSection::OPTIONS
        .iter()
        .chain(scoria_drivers::registry::layer_option_docs())
        .chain(driver_docs)
        .collect()
}

/// `section`'s options, substitutions made (a reference to an option no
/// file sets is its documented default).
fn resolved(ini: &Ini, section: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let default = |s: &str, key: &str| {
        documented(ini, s)
            .into_iter()
            .find(|d| d.name == key && !d.default.is_empty())
            .map(|d| d.default)
    };
    ini.resolved(section, &default)
}

/// Reads `T` from `section`, with the documented defaults of `T`'s options.
fn read<T: Options>(ini: &Ini, section: &str) -> anyhow::Result<T> {
    let settings = resolved(ini, section)?
        .into_iter()
        .map(|(key, v)| {
            let origin = v.origin.to_string();
            (
                key,
                Setting {
                    text: v.text,
                    origin,
                },
            )
        })
        .collect();
    Ok(scoria_core::config::read(section, &settings)?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SAMPLE: &str = "
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/
enabled_backends = fast, big
state_path = /srv
# a comment
[database]
connection = postgresql+psycopg2://postgres@127.0.0.1/scoria

[fast]
volume_driver = file
volume_backend_name = FAST
file_volumes_dir = $state_path/fast
[big]
volume_driver = file
file_volumes_dir = /srv/big
";

    fn config(text: &str) -> anyhow::Result<Config> {
        let mut ini = Ini::default();
        ini.read(Path::new("scoria.conf"), text)?;
        Config::from_ini(ini)
    }

    #[test]
    fn parses_cinder_style_options() {
        let cfg = config(SAMPLE).unwrap();
        assert_eq!(
            cfg.default.transport_url.as_deref(),
            Some("rabbit://guest:guest@127.0.0.1:5672/")
        );
        assert_eq!(
            cfg.database_url().unwrap(),
            "postgres://postgres@127.0.0.1/scoria"
        );
        let b = cfg.backends().unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].volume_backend_name, "FAST");
        assert_eq!(b[1].volume_backend_name, "big");
        assert_eq!(
            b[1].options.get("file_volumes_dir").map(String::as_str),
            Some("/srv/big")
        );
        assert_eq!(b[0].options["file_volumes_dir"], "/srv/fast");
        assert!(!b[0].options.contains_key("volume_driver"));
    }

    #[test]
    fn defaults_come_from_the_tables() {
        let cfg = Config::defaults();
        assert_eq!(cfg.default.storage_availability_zone, "nova");
        assert_eq!(cfg.default.report_interval, Duration::from_secs(10));
        assert_eq!(cfg.default.scheduler_max_attempts.get(), 3);
        assert_eq!(cfg.default.osapi_volume_listen_port, 8776);
        assert_eq!(cfg.quotas.quota_gigabytes, 1000);
        assert!(cfg.default.enabled_backends.is_empty());
        assert!(cfg.backends().unwrap().is_empty());
    }

    #[test]
    fn environment_overrides_file() {
        let mut ini = Ini::default();
        ini.read(Path::new("scoria.conf"), SAMPLE).unwrap();
        ini.apply_env([(
            "SCORIA_DATABASE__CONNECTION".to_string(),
            "sqlite:////tmp/x.db".to_string(),
        )]);
        let cfg = Config::from_ini(ini).unwrap();
        assert_eq!(cfg.database_url().unwrap(), "sqlite:///tmp/x.db");
    }

    #[test]
    fn errors_name_the_problem() {
        let err = config("[DEFAULT]\nenabled_backends = x\n")
            .unwrap()
            .backends()
            .unwrap_err();
        assert!(err.to_string().contains("[x]"));
        let err = config("[DEFAULT]\nenabled_backends = x\n[x]\nfoo = 1\n")
            .unwrap()
            .backends()
            .unwrap_err();
        assert!(err.to_string().contains("[x] needs volume_driver"), "{err}");
        let err = config("[DEFAULT]\n\nreport_interval = soon\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "scoria.conf:3: [DEFAULT] report_interval = soon: not a whole number"
        );
        let err = config("[DEFAULT]\nscheduler_max_attempts = 0\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("scoria.conf:2: [DEFAULT] scheduler_max_attempts = 0: "),
            "{err}"
        );
        let err = config("[DEFAULT]\nauth_strategy = magic\n").unwrap_err();
        assert!(
            err.to_string().contains("not one of keystone, noauth"),
            "{err}"
        );
    }

    #[test]
    fn files_then_the_config_dir_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let first = write(
            "first.ini",
            "[DEFAULT]\nhost = one\nstorage_availability_zone = a\n",
        );
        let second = write("second.ini", "[DEFAULT]\nhost = two\n");
        let confd = dir.path().join("conf.d");
        std::fs::create_dir(&confd).unwrap();
        std::fs::write(
            confd.join("20-zone.conf"),
            "[DEFAULT]\nstorage_availability_zone = c\n",
        )
        .unwrap();
        std::fs::write(
            confd.join("10-zone.conf"),
            "[DEFAULT]\nstorage_availability_zone = b\n",
        )
        .unwrap();
        std::fs::write(confd.join("ignored.txt"), "not ini").unwrap();
        let sources = Sources {
            files: vec![first.clone(), second.clone()],
            dir: Some(confd.clone()),
        };
        assert_eq!(
            sources.paths().unwrap(),
            [
                first,
                second,
                confd.join("10-zone.conf"),
                confd.join("20-zone.conf")
            ]
        );
        let mut ini = Ini::default();
        for p in sources.paths().unwrap() {
            ini.read_file(&p).unwrap();
        }
        let cfg = Config::from_ini(ini).unwrap();
        assert_eq!(cfg.default.host.as_deref(), Some("two"));
        assert_eq!(cfg.default.storage_availability_zone, "c");
        let missing = Sources {
            files: vec![dir.path().join("nope.conf")],
            dir: None,
        };
        assert!(Config::load(&missing)
            .unwrap_err()
            .to_string()
            .contains("nope.conf"));
    }
}
