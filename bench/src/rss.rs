//! Resident memory of a process, from `/proc/<pid>/status`, read once or
//! sampled in the background; and the CPU time it used, from `/proc/<pid>/stat`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::task::JoinHandle;

/// How often a [`Sampler`] reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Clock ticks a second in `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

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

/// The CPU time process `pid` has used so far, user and system, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    stat_cpu_seconds(&stat).ok_or_else(|| anyhow!("no utime/stime in {path}"))
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name, in parentheses, may hold spaces; fields count after it.
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) as f64 / TICKS_PER_S)
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
/// keeps the highest value of each; also counts the CPU time each uses
/// meanwhile.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<Vec<u64>>>,
    pids: Vec<u32>,
    cpu_at_start: Vec<Option<f64>>,
}

/// What a [`Sampler`] saw of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampled {
    /// The highest `VmRSS`, KiB (0 if never read).
    pub peak_rss_kib: u64,
    /// CPU seconds used while sampling, if readable.
    pub cpu_s: Option<f64>,
}

impl Sampler {
    /// Starts sampling processes `pids`.
    pub fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let cpu_at_start = pids.iter().map(|&p| cpu_seconds(p).ok()).collect();
        let sampled = pids.clone();
        let task = tokio::spawn(async move {
            let pids = sampled;
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
            pids,
            cpu_at_start,
        }
    }

    /// Takes a last sample and returns what it saw of each process, in the
    /// order given.
    pub async fn stop(mut self) -> Vec<Sampled> {
        self.stop.store(true, Ordering::Relaxed);
        let peaks = match self.task.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let cpu_now = self.pids.iter().map(|&p| cpu_seconds(p).ok());
        let cpu = self
            .cpu_at_start
            .iter()
            .zip(cpu_now)
            .map(|(start, now)| Some(now? - (*start)?));
        cpu.zip(peaks.into_iter().chain(std::iter::repeat(0)))
            .map(|(cpu_s, peak_rss_kib)| Sampled {
                peak_rss_kib,
                cpu_s,
            })
            .collect()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_after_the_command_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_cpu_seconds(stat), Some(3.0));
        assert!(cpu_seconds(std::process::id()).is_ok());
        assert!(read(std::process::id()).unwrap().rss_kib > 0);
    }
}
