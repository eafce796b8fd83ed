//! The image files the image phase uploads, the disk-write limit and the
//! reflink probe.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use tokio::process::Command;
use uuid::Uuid;

use super::Throughput;

/// The virtual size of the images: 1 GiB.
pub const IMAGE_BYTES: u64 = 1 << 30;
/// The images are made of blocks of 4 MiB…
const BLOCK: usize = 4 << 20;
/// …of which every fourth holds zeros, the others random data.
const ZERO_EVERY: u64 = 4;

/// A scratch folder in the system temporary folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new, empty folder `scoria-bench-images-<uuid>`.
    pub fn new() -> Result<Scratch> {
        let dir =
            std::env::temp_dir().join(format!("scoria-bench-images-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `sync` twice: the data other steps left in the page cache (Glance
/// does not sync what it stores) goes to disk now rather than during the
/// next timed step. Twice, because a filesystem on a loop device hands its
/// data to the page cache of the filesystem below, which the first `sync`
/// may already have passed.
pub async fn settle() {
    for _ in 0..2 {
        let _ = Command::new("sync").stdin(Stdio::null()).status().await;
    }
}

/// Writes a raw image of [`IMAGE_BYTES`] to `path`: 4 MiB blocks, three of
/// random data, then one of zeros, and so on; the file is synced to disk.
pub async fn make_raw(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_raw(&path)).await?
}

fn write_raw(path: &Path) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut random = Random::seeded();
    let mut block = vec![0u8; BLOCK];
    for i in 0..IMAGE_BYTES / BLOCK as u64 {
        if i % ZERO_EVERY == ZERO_EVERY - 1 {
            block.fill(0);
        } else {
            random.fill(&mut block);
        }
        file.write_all(&block)?;
    }
    file.sync_all()?;
    Ok(())
}

/// Converts the raw image `raw` into the qcow2 image `qcow2` with
/// `qemu-img convert` (zero blocks stay unallocated), synced to disk.
pub async fn make_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run qemu-img (install qemu-utils)")?;
    if !out.status.success() {
        bail!(
            "qemu-img convert: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    File::open(qcow2)?.sync_all()?;
    Ok(())
}

/// What writing into the volumes' folder showed.
pub struct DiskProbe {
    /// Writing a copy of the raw image, then `fdatasync`.
    pub write: Throughput,
    /// Whether `cp --reflink=always` could clone the file there.
    pub reflink: bool,
}

/// Copies `source` into a new file in `dir` with plain reads and writes
/// (no `copy_file_range`, which could clone), then `fdatasync`, timing
/// both; then tries to clone it with `cp --reflink=always`. Removes both
/// files.
pub async fn probe_disk(dir: &Path, source: &Path) -> Result<DiskProbe> {
    let name = format!(".scoria-bench-probe-{}", Uuid::new_v4().simple());
    let (probe, clone) = (dir.join(&name), dir.join(format!("{name}.clone")));
    let write = {
        let (source, probe) = (source.to_path_buf(), probe.clone());
        tokio::task::spawn_blocking(move || write_copy(&source, &probe)).await?
    };
    let reflink = match &write {
        Ok(_) => Command::new("cp")
            .arg("--reflink=always")
            .arg(&probe)
            .arg(&clone)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success()),
        Err(_) => false,
    };
    let _ = std::fs::remove_file(&clone);
    let _ = std::fs::remove_file(&probe);
    Ok(DiskProbe {
        write: write?,
        reflink,
    })
}

fn write_copy(source: &Path, target: &Path) -> Result<Throughput> {
    let mut from = File::open(source)?;
    let started = Instant::now();
    let mut to =
        File::create(target).with_context(|| format!("cannot create {}", target.display()))?;
    let mut buf = vec![0u8; BLOCK];
    let mut bytes = 0;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    to.sync_data()?;
    Ok(Throughput {
        bytes,
        elapsed: started.elapsed(),
    })
}

/// A small, fast pseudo-random generator (SplitMix64): data that neither
/// compresses nor deduplicates, without a dependency.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Random(now.as_nanos() as u64)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_blocks_differ_and_are_not_zero() {
        let mut r = Random(1);
        let (mut a, mut b) = (vec![0u8; 4096], vec![0u8; 4096]);
        r.fill(&mut a);
        r.fill(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 100);
    }
}
