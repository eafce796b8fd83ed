//! Blocking filesystem helpers for the file driver: reflinks, sparse copies,
//! atomic replacement and free-space queries. Linux only.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Size of one copy block; all-zero blocks are skipped so copies stay sparse.
const BLOCK: usize = 1 << 20;

/// Shares `src`'s extents with `dst` (FICLONE); fails where the filesystem cannot.
pub fn reflink(src: &File, dst: &File) -> io::Result<()> {
    // SAFETY: both descriptors are open for the duration of the call and
    // FICLONE takes the source descriptor as its integer argument.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether files in `dir` can be reflinked, found by cloning one probe file into another.
pub fn probe_reflink(dir: &Path) -> io::Result<bool> {
    let probe = dir.join(format!(".reflink-probe-{}", uuid::Uuid::new_v4()));
    let (src_path, dst_path) = (probe.with_extension("src"), probe.with_extension("dst"));
    let result = (|| {
        let src = create_truncated(&src_path)?;
        src.write_all_at(b"scoria reflink probe", 0)?;
        let dst = create_truncated(&dst_path)?;
        Ok(reflink(&src, &dst).is_ok())
    })();
    for path in [&src_path, &dst_path] {
        remove_if_exists(path)?;
    }
    result
}

/// Copies `src` into `dst` without filling holes: only data ranges are read
/// (SEEK_DATA/SEEK_HOLE) and all-zero blocks are not written. `dst` ends up
/// exactly as long as `src`.
pub fn sparse_copy(src: &File, dst: &File) -> io::Result<()> {
    let len = src.metadata()?.len();
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0;
    while let Some((start, end)) = next_data_range(src, pos, len)? {
        let mut offset = start;
        while offset < end {
            let n = usize::try_from(end - offset).map_or(BLOCK, |left| left.min(BLOCK));
            src.read_exact_at(&mut buf[..n], offset)?;
            if buf[..n].iter().any(|&b| b != 0) {
                dst.write_all_at(&buf[..n], offset)?;
            }
            offset += n as u64;
        }
        pos = end;
    }
    dst.set_len(len)
}

/// The next `[start, end)` range holding data at or after `pos`, or `None` at
/// the end. Filesystems without SEEK_DATA report the rest of the file as data.
fn next_data_range(file: &File, pos: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    if pos >= len {
        return Ok(None);
    }
    let start = match seek(file, pos, libc::SEEK_DATA) {
        Ok(start) => start,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Some((pos, len))),
        Err(e) => return Err(e),
    };
    let end = seek(file, start, libc::SEEK_HOLE)?.min(len);
    Ok(Some((start, end)))
}

fn seek(file: &File, pos: u64, whence: libc::c_int) -> io::Result<u64> {
    let pos =
        libc::off_t::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek only moves the offset of a descriptor we own.
    let rc = unsafe { libc::lseek(file.as_raw_fd(), pos, whence) };
    u64::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// Builds `path`'s new content under a temporary name next to it, then renames
/// it into place, so `path` never holds a half-written file.
pub fn replace_atomically(
    path: &Path,
    fill: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    let part = part_path(path);
    let file = create_truncated(&part)?;
    let written = fill(&file).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written {
        remove_if_exists(&part)?;
        return Err(e);
    }
    std::fs::rename(&part, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The temporary name [`replace_atomically`] uses for `path`: hidden, so it is
/// never mistaken for a volume or snapshot.
pub fn part_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.part"))
}

/// Removes a file; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn create_truncated(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Total and available bytes of the filesystem holding `dir`.
#[allow(clippy::useless_conversion)] // statvfs field types differ between targets
pub fn space(dir: &Path) -> io::Result<(u64, u64)> {
    let c_path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain old data; the call fills it or fails.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid out pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = u64::from(st.f_frsize);
    Ok((u64::from(st.f_blocks) * unit, u64::from(st.f_bavail) * unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_copy_keeps_holes_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let (src_path, dst_path) = (dir.path().join("src"), dir.path().join("dst"));
        let src = create_truncated(&src_path).unwrap();
        src.set_len(256 << 20).unwrap();
        src.write_all_at(b"head", 0).unwrap();
        src.write_all_at(b"middle", 100 << 20).unwrap();
        let dst = create_truncated(&dst_path).unwrap();

        sparse_copy(&src, &dst).unwrap();

        let meta = dst.metadata().unwrap();
        assert_eq!(meta.len(), 256 << 20);
        assert!(
            meta.blocks() * 512 <= 8 << 20,
            "copy is not sparse: {} bytes allocated",
            meta.blocks() * 512
        );
        let mut buf = [0u8; 6];
        dst.read_exact_at(&mut buf, 100 << 20).unwrap();
        assert_eq!(&buf, b"middle");
        dst.read_exact_at(&mut buf[..4], 0).unwrap();
        assert_eq!(&buf[..4], b"head");
    }

    #[test]
    fn replace_atomically_leaves_no_part_file_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("volume-x");
        let failed = replace_atomically(&target, |_| Err(io::Error::other("boom")));
        assert!(failed.is_err());
        assert!(!target.exists());
        assert!(!part_path(&target).exists());

        replace_atomically(&target, |f| f.set_len(4096)).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().len(), 4096);
        assert!(!part_path(&target).exists());
    }

    #[test]
    fn probe_reflink_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        probe_reflink(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
