//! Resident memory of a process, from `/proc/<pid>/status`, read once or
//! sampled in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::task::JoinHandle;

/// How often a [`Sampler`] reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Resident memory of one process at one moment, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Current resident set (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set since the process started (`VmHWM`).
    pub peak_kib: u64,
}

/// The memory of process `pid` now.
pub fn read(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    Ok(Memory {
        rss_kib: field_kib(&status, "VmRSS:")?,
        peak_kib: field_kib(&status, "VmHWM:")?,
    })
}

/// The value of a `Name:   1234 kB` line.
fn field_kib(status: &str, name: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no {name} line in /proc status"))
}

/// Reads the `VmRSS` of some processes every 20 ms in the background and
/// keeps the highest value of each.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<Vec<u64>>>,
}

impl Sampler {
    /// Starts sampling processes `pids`.
    pub fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut peaks = vec![0; pids.len()];
            loop {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    if let Ok(m) = read(*pid) {
                        *peak = m.rss_kib.max(*peak);
                    }
                }
                if stopped.load(Ordering::Relaxed) {
                    return peaks;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Sampler {
            stop,
            task: Some(task),
        }
    }

    /// Takes a last sample and returns the peak `VmRSS` of each process
    /// (KiB, in the order given; 0 for a process never read).
    pub async fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
