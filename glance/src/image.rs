//! Glance's image record (v2) and what a volume keeps of it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// Keys of Glance's image record that are not image properties.
const CORE_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "os_hidden",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "stores",
];

/// An image as `GET /v2/images/{id}` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub status: String,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Bytes of the image data as stored.
    #[serde(default)]
    pub size: Option<u64>,
    /// Bytes of the disk the data describes (qcow2 and others: larger).
    #[serde(default)]
    pub virtual_size: Option<u64>,
    #[serde(default)]
    pub min_disk: Option<i64>,
    #[serde(default)]
    pub min_ram: Option<i64>,
    #[serde(default)]
    pub disk_format: Option<String>,
    #[serde(default)]
    pub container_format: Option<String>,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub os_hash_algo: Option<String>,
    #[serde(default)]
    pub os_hash_value: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub direct_url: Option<String>,
    #[serde(default)]
    pub locations: Vec<Location>,
    /// Every other key: the image's properties.
    #[serde(flatten)]
    pub rest: BTreeMap<String, Value>,
}

/// One of an image's locations (shown with `show_multiple_locations`).
#[derive(Debug, Clone, Deserialize)]
pub struct Location {
    pub url: String,
}

impl Image {
    /// The image's own properties (`hw_disk_bus`, `cinder_img_volume_type`, …).
    pub fn properties(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.rest
            .iter()
            .filter(|(k, _)| !CORE_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// A property's value as text (strings as they are, others as JSON).
    pub fn property(&self, key: &str) -> Option<String> {
        self.properties()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| as_text(v))
    }

    /// The largest of `size` and `virtual_size`, in bytes: what the volume
    /// must hold.
    pub fn disk_bytes(&self) -> u64 {
        self.size.unwrap_or(0).max(self.virtual_size.unwrap_or(0))
    }

    /// What a volume made from the image keeps as `volume_image_metadata`:
    /// the fixed keys Cinder keeps and every property, all as text.
    pub fn volume_metadata(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .properties()
            .map(|(k, v)| (k.to_string(), as_text(v)))
            .collect();
        let mut put = |k: &str, v: Option<String>| {
            out.insert(k.to_string(), v.unwrap_or_default());
        };
        put("image_id", Some(self.id.clone()));
        put("image_name", self.name.clone());
        put("checksum", self.checksum.clone());
        put("container_format", self.container_format.clone());
        put("disk_format", self.disk_format.clone());
        put("min_disk", Some(self.min_disk.unwrap_or(0).to_string()));
        put("min_ram", Some(self.min_ram.unwrap_or(0).to_string()));
        put("size", self.size.map(|s| s.to_string()));
        out
    }

    /// The `cinder://<volume id>` location of an image kept in a Scoria
    /// volume by glance_store's `cinder` store (`cinder://<store>/<id>` too).
    pub fn cinder_volume(&self) -> Option<String> {
        let urls = self
            .locations
            .iter()
            .map(|l| l.url.as_str())
            .chain(self.direct_url.as_deref());
        for url in urls {
            if let Some(rest) = url.strip_prefix("cinder://") {
                let id = rest.rsplit('/').next().unwrap_or(rest);
                if !id.is_empty() {
                    return Some(id.to_string());
                }
            }
        }
        None
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn volume_metadata_has_the_fixed_keys_and_every_property_as_text() {
        let image: Image = serde_json::from_value(json!({
            "id": "i1", "name": "cirros", "status": "active", "size": 1024,
            "virtual_size": 4096, "min_disk": 1, "min_ram": 64,
            "disk_format": "qcow2", "container_format": "bare",
            "checksum": "abc", "os_hash_algo": "sha512", "os_hash_value": "def",
            "tags": [], "hw_disk_bus": "scsi", "hw_qemu_guest_agent": true,
            "locations": [{"url": "cinder://store1/v-1", "metadata": {}}]
        }))
        .unwrap();
        let m = image.volume_metadata();
        assert_eq!(m["image_id"], "i1");
        assert_eq!(m["image_name"], "cirros");
        assert_eq!(m["size"], "1024");
        assert_eq!(m["min_ram"], "64");
        assert_eq!(m["hw_disk_bus"], "scsi");
        assert_eq!(m["hw_qemu_guest_agent"], "true");
        assert!(!m.contains_key("os_hash_value"));
        assert!(!m.contains_key("tags"));
        assert_eq!(image.disk_bytes(), 4096);
        assert_eq!(image.cinder_volume().as_deref(), Some("v-1"));
    }
}
