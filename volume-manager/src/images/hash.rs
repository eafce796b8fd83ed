//! The image hash Glance records, computed while the data passes.

use md5::Md5;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A running hash of one of the algorithms Glance records.
pub(crate) enum ImageHash {
    Md5(Md5),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

/// What the data must hash to: the algorithm's name and the hex value.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    pub algo: String,
    pub hex: String,
}

impl Expected {
    /// The image's `os_hash_algo`/`os_hash_value` when Scoria computes that
    /// algorithm, else its md5 `checksum`; `None` when it has neither.
    pub fn of(image: &scoria_glance::Image) -> Option<Expected> {
        let multihash = image
            .os_hash_algo
            .as_deref()
            .zip(image.os_hash_value.as_deref())
            .filter(|(algo, _)| ImageHash::new(algo).is_some());
        match multihash {
            Some((algo, hex)) => Some(Expected {
                algo: algo.to_string(),
                hex: hex.to_ascii_lowercase(),
            }),
            None => image.checksum.as_ref().map(|hex| Expected {
                algo: "md5".into(),
                hex: hex.to_ascii_lowercase(),
            }),
        }
    }

    /// A hasher for this algorithm.
    pub fn hasher(&self) -> ImageHash {
        ImageHash::new(&self.algo).unwrap_or(ImageHash::Md5(Md5::new()))
    }

    /// `Err` with the message a user sees when `got` is not the expected hash.
    pub fn verify(&self, got: &str) -> Result<(), String> {
        if got == self.hex {
            return Ok(());
        }
        Err(format!(
            "the image data's {} hash {got} does not match the {} Glance recorded; the image is corrupt",
            self.algo, self.hex
        ))
    }
}

impl ImageHash {
    /// A hasher for Glance's algorithm name, if Scoria computes it.
    pub fn new(algo: &str) -> Option<Self> {
        Some(match algo {
            "md5" => ImageHash::Md5(Md5::new()),
            "sha256" => ImageHash::Sha256(Sha256::new()),
            "sha384" => ImageHash::Sha384(Sha384::new()),
            "sha512" => ImageHash::Sha512(Sha512::new()),
            _ => return None,
        })
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            ImageHash::Md5(h) => h.update(data),
            ImageHash::Sha256(h) => h.update(data),
            ImageHash::Sha384(h) => h.update(data),
            ImageHash::Sha512(h) => h.update(data),
        }
    }

    /// The hash in lower-case hex.
    pub fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            ImageHash::Md5(h) => h.finalize().to_vec(),
            ImageHash::Sha256(h) => h.finalize().to_vec(),
            ImageHash::Sha384(h) => h.finalize().to_vec(),
            ImageHash::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        let mut h = ImageHash::new("md5").unwrap();
        h.update(b"abc");
        assert_eq!(h.hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut h = ImageHash::new("sha256").unwrap();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ImageHash::new("whirlpool").is_none());
    }
}
