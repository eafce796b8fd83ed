//! The image conversion folder of one backend: temporary files for formats
//! that need random access, checked for space first, removed when done and
//! emptied at start-up (a killed process leaves its files behind).

use std::io;
use std::path::{Path, PathBuf};

/// `<image_conversion_dir>/<backend>`.
#[derive(Debug, Clone)]
pub struct Scratch {
    dir: PathBuf,
}

/// A temporary file that is removed when dropped.
pub(crate) struct TempFile {
    pub path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove a temporary image file");
            }
        }
    }
}

impl Scratch {
    /// The folder of `backend` under `root`.
    pub fn new(root: &Path, backend: &str) -> Self {
        let name: String = backend
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Scratch {
            dir: root.join(name),
        }
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes whatever an earlier run left in the folder.
    pub async fn clean(&self) -> io::Result<usize> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(e),
            };
            for entry in entries {
                std::fs::remove_file(entry?.path())?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// A new temporary file name for `volume_id`, after checking that the
    /// folder's filesystem has `bytes` free.
    pub(crate) async fn reserve(
        &self,
        volume_id: &str,
        what: &str,
        bytes: u64,
    ) -> Result<TempFile, String> {
        let dir = self.dir.clone();
        let path = dir.join(format!(
            "{volume_id}.{what}.{}",
            uuid::Uuid::new_v4().simple()
        ));
        let free = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            free_bytes(&dir)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| {
            format!(
                "the image conversion folder {} is not usable: {e}",
                self.dir.display()
            )
        })?;
        if free < bytes {
            return Err(format!(
                "not enough space for the image in the conversion folder {}: it needs {bytes} bytes and {free} are free",
                self.dir.display()
            ));
        }
        Ok(TempFile { path })
    }
}

/// Bytes an unprivileged writer may still use on the filesystem of `dir`.
fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserve_checks_space_and_clean_empties_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let scratch = Scratch::new(root.path(), "host@file#1");
        assert!(scratch.dir().ends_with("host_file_1"));
        let t = scratch.reserve("v1", "download", 1).await.unwrap();
        std::fs::write(&t.path, b"x").unwrap();
        let left = t.path.clone();
        std::mem::forget(t); // as if the process had been killed
        assert!(left.exists());
        assert_eq!(scratch.clean().await.unwrap(), 1);
        assert!(!left.exists());
        let err = scratch
            .reserve("v1", "download", u64::MAX)
            .await
            .err()
            .unwrap();
        assert!(err.contains("not enough space"), "{err}");
        let t = scratch.reserve("v2", "upload", 1).await.unwrap();
        std::fs::write(&t.path, b"x").unwrap();
        let p = t.path.clone();
        drop(t);
        assert!(!p.exists());
    }
}
