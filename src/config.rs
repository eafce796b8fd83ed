//! Configuration for the deployment commands: an INI file with cinder.conf's
//! option names where one exists, overridden by `SCORIA_<SECTION>__<OPTION>`
//! environment variables (e.g. `SCORIA_DATABASE__CONNECTION`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use scoria_core::config::BackendConfig;

/// Sections of an INI file: section name → option → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Ini {
    /// Parses INI text: `[section]` headers, `key = value` lines, `#`/`;` comments.
    pub fn parse(text: &str) -> anyhow::Result<Ini> {
        let mut ini = Ini::default();
        let mut section = "DEFAULT".to_string();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                ini.sections.entry(section.clone()).or_default();
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                anyhow!("line {}: expected 'option = value', got '{line}'", n + 1)
            })?;
            ini.set(&section, key.trim(), value.trim());
        }
        Ok(ini)
    }

    /// Reads a file, then applies `SCORIA_<SECTION>__<OPTION>` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Ini> {
        let mut ini = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                Ini::parse(&text).with_context(|| format!("in {}", p.display()))?
            }
            None => Ini::default(),
        };
        ini.apply_env(std::env::vars());
        Ok(ini)
    }

    fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) {
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("SCORIA_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let section = if section == "DEFAULT" {
                section.to_string()
            } else {
                section.to_lowercase()
            };
            self.set(&section, &key.to_lowercase(), &value);
        }
    }

    fn set(&mut self, section: &str, key: &str, value: &str) {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// An option's value, if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections.get(section)?.get(key).map(String::as_str)
    }

    /// An option's value or `default`.
    pub fn get_or<'a>(&'a self, section: &str, key: &str, default: &'a str) -> &'a str {
        self.get(section, key).unwrap_or(default)
    }

    /// A whole number option, or `default`.
    pub fn number(&self, section: &str, key: &str, default: u64) -> anyhow::Result<u64> {
        match self.get(section, key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .with_context(|| format!("[{section}] {key} = {v} is not a whole number")),
        }
    }

    /// A duration given in seconds, or `default` seconds.
    pub fn seconds(&self, section: &str, key: &str, default: u64) -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(self.number(section, key, default)?))
    }

    /// Every option of a section.
    pub fn section(&self, section: &str) -> BTreeMap<String, String> {
        self.sections.get(section).cloned().unwrap_or_default()
    }
}

/// The backends named by `[DEFAULT] enabled_backends`, each from its own section.
pub fn backends(ini: &Ini) -> anyhow::Result<Vec<BackendConfig>> {
    let names = ini.get("DEFAULT", "enabled_backends").unwrap_or_default();
    let mut out = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mut options = ini.section(name);
        if options.is_empty() {
            bail!("enabled_backends names '{name}' but there is no [{name}] section");
        }
        let driver = options.remove("volume_driver").ok_or_else(|| {
            anyhow!(
                "[{name}] needs volume_driver (one of: {})",
                scoria_drivers::registry::names().join(", ")
            )
        })?;
        let volume_backend_name = options
            .remove("volume_backend_name")
            .unwrap_or_else(|| name.to_string());
        out.push(BackendConfig {
            name: name.to_string(),
            driver,
            volume_backend_name,
            options,
        });
    }
    Ok(out)
}

/// The database URL from `[database] connection`, accepting SQLAlchemy spellings
/// such as `postgresql+psycopg2://` and `sqlite:////path`.
pub fn database_url(ini: &Ini) -> anyhow::Result<String> {
    let url = ini.get("database", "connection").ok_or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "
[DEFAULT]
transport_url = rabbit://guest:guest@127.0.0.1:5672/
enabled_backends = fast, big
# a comment
[database]
connection = postgresql+psycopg2://postgres@127.0.0.1/scoria

[fast]
volume_driver = file
volume_backend_name = FAST
file_volumes_dir = /srv/fast
[big]
volume_driver = file
file_volumes_dir = /srv/big
";

    #[test]
    fn parses_cinder_style_options() {
        let ini = Ini::parse(SAMPLE).unwrap();
        assert_eq!(
            ini.get("DEFAULT", "transport_url"),
            Some("rabbit://guest:guest@127.0.0.1:5672/")
        );
        assert_eq!(
            database_url(&ini).unwrap(),
            "postgres://postgres@127.0.0.1/scoria"
        );
        let b = backends(&ini).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].volume_backend_name, "FAST");
        assert_eq!(b[1].volume_backend_name, "big");
        assert_eq!(
            b[1].options.get("file_volumes_dir").map(String::as_str),
            Some("/srv/big")
        );
    }

    #[test]
    fn environment_overrides_file() {
        let mut ini = Ini::parse(SAMPLE).unwrap();
        ini.apply_env(
            [(
                "SCORIA_DATABASE__CONNECTION".to_string(),
                "sqlite:////tmp/x.db".to_string(),
            )]
            .into_iter(),
        );
        assert_eq!(database_url(&ini).unwrap(), "sqlite:///tmp/x.db");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(Ini::parse("[a]\nno equals sign")
            .unwrap_err()
            .to_string()
            .contains("line 2"));
        let ini = Ini::parse("[DEFAULT]\nenabled_backends = x\n").unwrap();
        assert!(backends(&ini).unwrap_err().to_string().contains("[x]"));
    }
}
