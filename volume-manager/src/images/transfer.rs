//! Moving image data between Glance and files without holding it: a
//! download is hashed by one blocking thread and written by another while
//! the next pieces arrive (bounded queues; the pieces are shared, not
//! copied), an upload is read by one while the previous pieces go out.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use scoria_glance::ImageData;
use tokio::sync::mpsc;

use super::hash::ImageHash;

/// Pieces in flight between the network and the disk.
const QUEUE: usize = 16;
/// Blocks of this size that are all zero are not written (the target reads
/// as zeros already), which keeps sparse images sparse.
const BLOCK: usize = 64 * 1024;
/// Bytes gathered before a write.
const WRITE_BUFFER: usize = 4 << 20;
/// Bytes read from a volume per piece of an upload.
const READ_PIECE: usize = 256 << 10;
/// Pieces read ahead of an upload.
const READ_AHEAD: usize = 4;

/// What a download wrote.
pub(crate) struct Written {
    pub bytes: u64,
    pub hash: String,
}

/// Where a download goes.
pub(crate) enum Sink<'a> {
    /// A volume that reads as zeros: written in place, zero blocks skipped,
    /// never beyond `limit` bytes.
    Volume { path: &'a Path, limit: u64 },
    /// A new temporary file.
    NewFile { path: &'a Path },
}

/// Streams `data` into `sink`, hashing it with `hasher`, and makes it durable.
pub(crate) async fn download(
    mut data: ImageData,
    sink: Sink<'_>,
    hasher: ImageHash,
) -> Result<Written, String> {
    let (path, limit, create) = match sink {
        Sink::Volume { path, limit } => (path.to_path_buf(), limit, false),
        Sink::NewFile { path } => (path.to_path_buf(), u64::MAX, true),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let (to_hash, hash_rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = tokio::task::spawn_blocking(move || write_all(&path, create, limit, rx));
    let hashing = tokio::task::spawn_blocking(move || hash_all(hash_rx, hasher));
    let mut broke: Option<String> = None;
    loop {
        match data.chunk().await {
            Ok(Some(piece)) => {
                if to_hash.send(piece.clone()).await.is_err() || tx.send(piece).await.is_err() {
                    break; // the writer stopped; its error says why
                }
            }
            Ok(None) => break,
            Err(e) => {
                broke = Some(e.to_string());
                break;
            }
        }
    }
    drop(tx);
    drop(to_hash);
    let written = writer.await.map_err(|e| e.to_string())?;
    let hash = hashing.await.map_err(|e| e.to_string())?;
    if let Some(why) = broke {
        return Err(why);
    }
    let bytes = written?;
    Ok(Written { bytes, hash })
}

/// Hashes the pieces of a download as they come.
fn hash_all(mut rx: mpsc::Receiver<Bytes>, mut hasher: ImageHash) -> String {
    while let Some(piece) = rx.blocking_recv() {
        hasher.update(&piece);
    }
    hasher.hex()
}

fn write_all(
    path: &PathBuf,
    create: bool,
    limit: u64,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<u64, String> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(create)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut offset = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
    let flush = |buf: &mut Vec<u8>, at: u64| -> io::Result<()> {
        write_sparse(&file, buf, at)?;
        buf.clear();
        Ok(())
    };
    let io_err = |e: io::Error| format!("writing the image failed: {e}");
    while let Some(piece) = rx.blocking_recv() {
        let end = offset + buf.len() as u64 + piece.len() as u64;
        if end > limit {
            return Err(format!(
                "the image data is larger than the volume ({limit} bytes)"
            ));
        }
        buf.extend_from_slice(&piece);
        if buf.len() >= WRITE_BUFFER {
            let at = offset;
            offset += buf.len() as u64;
            flush(&mut buf, at).map_err(io_err)?;
        }
    }
    let at = offset;
    offset += buf.len() as u64;
    flush(&mut buf, at).map_err(io_err)?;
    if create {
        // A new file must have its full length even when it ends in zeros.
        file.set_len(offset).map_err(io_err)?;
    }
    file.sync_data().map_err(io_err)?;
    Ok(offset)
}

/// Writes `buf` at `at`, leaving out blocks that are all zero.
fn write_sparse(file: &std::fs::File, buf: &[u8], at: u64) -> io::Result<()> {
    let mut start = None;
    let mut pos = 0;
    for block in buf.chunks(BLOCK) {
        let zero = is_zero(block);
        match (zero, start) {
            (false, None) => start = Some(pos),
            (true, Some(s)) => {
                file.write_all_at(&buf[s..pos], at + s as u64)?;
                start = None;
            }
            _ => {}
        }
        pos += block.len();
    }
    if let Some(s) = start {
        file.write_all_at(&buf[s..], at + s as u64)?;
    }
    Ok(())
}

fn is_zero(block: &[u8]) -> bool {
    // SAFETY: every bit pattern of eight bytes is a valid u64.
    let (head, words, tail) = unsafe { block.align_to::<u64>() };
    head.iter().all(|b| *b == 0) && words.iter().all(|w| *w == 0) && tail.iter().all(|b| *b == 0)
}

/// The bytes of `path` as a request body, read by a blocking thread.
pub(crate) fn body_of(path: &Path) -> io::Result<reqwest::Body> {
    let mut file = std::fs::File::open(path)?;
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || loop {
        let mut piece = vec![0u8; READ_PIECE];
        let n = match read_full(&mut file, &mut piece) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        if n == 0 {
            return;
        }
        piece.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
            return;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_blocks_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        let mut buf = vec![0u8; 8 << 20];
        buf[3 << 20] = 7;
        buf[(8 << 20) - 1] = 9;
        write_sparse(&file, &buf, 1 << 20).unwrap();
        file.sync_all().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got[(1 << 20) + (3 << 20)], 7);
        assert_eq!(got[(9 << 20) - 1], 9);
        assert_eq!(got.iter().filter(|b| **b != 0).count(), 2);
        use std::os::unix::fs::MetadataExt;
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(allocated <= 256 << 10, "{allocated} bytes allocated");
    }
}
