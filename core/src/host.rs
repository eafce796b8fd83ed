//! `host@backend#pool`, Cinder's address of a volume service and of the pool a volume
//! lives in, parsed once. The text is kept as it came, so the wire and the database see
//! the same strings as before; the parts are read without splitting by hand again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A volume service (`host@backend`) or a pool of one (`host@backend#pool`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host {
    text: String,
    /// Byte offset of the `@`.
    at: usize,
    /// Byte offset of the `#`, when there is a pool.
    hash: Option<usize>,
}

impl Host {
    /// The volume service of `backend` on the machine `host`: `host@backend`.
    pub fn service(host: &str, backend: &str) -> Result<Host, String> {
        let service: Host = format!("{host}@{backend}").parse()?;
        if service.pool().is_some() || service.host() != host {
            return Err(format!(
                "a host name may not hold '@' nor a backend name '#': {service}"
            ));
        }
        Ok(service)
    }

    /// The machine's name.
    pub fn host(&self) -> &str {
        &self.text[..self.at]
    }

    /// The backend's name, the section of its configuration.
    pub fn backend_name(&self) -> &str {
        &self.text[self.at + 1..self.hash.unwrap_or(self.text.len())]
    }

    /// The pool, if this names one.
    pub fn pool(&self) -> Option<&str> {
        self.hash.map(|h| &self.text[h + 1..])
    }

    /// The volume service without the pool: `host@backend`.
    pub fn backend(&self) -> &str {
        &self.text[..self.hash.unwrap_or(self.text.len())]
    }

    /// The same volume service without the pool.
    pub fn without_pool(&self) -> Host {
        Host {
            text: self.backend().to_string(),
            at: self.at,
            hash: None,
        }
    }

    /// The pool `pool` of this volume service: `host@backend#pool`.
    pub fn in_pool(&self, pool: &str) -> Host {
        let backend = self.backend();
        Host {
            text: format!("{backend}#{pool}"),
            at: self.at,
            hash: Some(backend.len()),
        }
    }

    /// The whole text, as stored and sent.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Host {
    type Err = String;

    /// Accepts `host@backend` and `host@backend#pool`, each part non-empty.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a host@backend[#pool]: {s:?}");
        let (service, pool) = match s.split_once('#') {
            Some((service, pool)) => (service, Some(pool)),
            None => (s, None),
        };
        let (host, backend) = service.split_once('@').ok_or_else(bad)?;
        if host.is_empty() || backend.is_empty() || pool.is_some_and(str::is_empty) {
            return Err(bad());
        }
        Ok(Host {
            text: s.to_string(),
            at: host.len(),
            hash: pool.map(|_| service.len()),
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Host {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        s.parse().unwrap()
    }

    #[test]
    fn parts_of_a_pool() {
        let h = host("node1@lvm#fast");
        assert_eq!(
            (h.host(), h.backend_name(), h.backend(), h.pool()),
            ("node1", "lvm", "node1@lvm", Some("fast"))
        );
        assert_eq!(h.to_string(), "node1@lvm#fast");
        assert_eq!(h.without_pool(), host("node1@lvm"));
    }

    #[test]
    fn parts_of_a_service() {
        let h = Host::service("node1", "lvm").unwrap();
        assert_eq!(
            (h.host(), h.backend_name(), h.pool()),
            ("node1", "lvm", None)
        );
        assert_eq!(h.backend(), "node1@lvm");
        assert_eq!(h.in_pool("p"), host("node1@lvm#p"));
        assert_eq!(h.in_pool("p").in_pool("q"), host("node1@lvm#q"));
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for bad in ["", "node", "@lvm", "node@", "node@lvm#", "node#p", "#p"] {
            assert!(bad.parse::<Host>().is_err(), "{bad:?} was accepted");
        }
        assert!(Host::service("node", "lvm#p").is_err());
        assert!(Host::service("a@b", "lvm").is_err());
    }

    #[test]
    fn travels_as_its_string() {
        let h = host("node1@lvm#fast");
        assert_eq!(serde_json::to_string(&h).unwrap(), "\"node1@lvm#fast\"");
        let back: Host = serde_json::from_str("\"node1@lvm#fast\"").unwrap();
        assert_eq!(back, h);
        assert!(serde_json::from_str::<Host>("\"node1\"").is_err());
    }
}
