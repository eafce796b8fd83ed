//! Resident memory of a process, from `/proc/<pid>/status`.

use anyhow::{anyhow, Context, Result};

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
