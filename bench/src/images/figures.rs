//! What the image phase measured: the limits, the copies and the memory,
//! checked against the floors of issue 9, as a table or JSON.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::files::IMAGE_BYTES;
use crate::rss::Sampled;

/// Raw image→volume must reach this share of the slower limit…
const RAW_FLOOR: f64 = 0.75;
/// …and qcow2 image→volume this one.
const QCOW2_FLOOR: f64 = 0.50;
/// A cached create must take less than this many ms on a reflink filesystem.
const CACHED_CREATE_FLOOR_MS: f64 = 100.0;
/// The volume process must stay below this RSS during the copies, in MiB.
const RSS_FLOOR_MIB: f64 = 64.0;

/// Bytes moved in some time.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Throughput {
    /// Megabytes (10^6 bytes) a second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The limit a copy is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// The slower of writing the disk and Glance serving.
    ToVolume,
    /// Glance receiving.
    ToImage,
    /// None: a clone, shown in ms.
    None,
}

/// One timed copy of the 1 GiB image.
pub struct Transfer {
    /// The figure's name, e.g. `raw_to_volume`.
    pub key: &'static str,
    /// What it is, e.g. `raw image → volume`.
    pub name: &'static str,
    pub limit: Limit,
    /// From the request until the volume (and the image) were ready.
    pub elapsed: Duration,
    /// The peak `VmRSS` and CPU time of each Scoria process during the copy.
    pub processes: Vec<Sampled>,
}

impl Transfer {
    /// 1 GiB (the image's virtual size) in the time taken.
    pub fn throughput(&self) -> Throughput {
        Throughput {
            bytes: IMAGE_BYTES,
            elapsed: self.elapsed,
        }
    }

    fn ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e3
    }
}

/// One figure next to its floor.
pub struct Check {
    pub name: &'static str,
    /// The figure, as shown.
    pub value: String,
    pub floor: String,
    /// Whether the floor is met; `None` when it does not apply.
    pub met: Option<bool>,
}

/// What the image phase measured.
pub struct ImageFigures {
    /// Where the disk limit was measured.
    pub disk_dir: PathBuf,
    /// Whether that folder's filesystem clones files (reflink).
    pub reflink: bool,
    /// Limit: the raw image written there, then `fdatasync`.
    pub disk_write: Throughput,
    /// Limit: `GET /v2/images/{id}/file` of the raw image, data thrown away.
    pub glance_serve: Throughput,
    /// Limit: `PUT /v2/images/{id}/file` of the raw image from a file.
    pub glance_receive: Throughput,
    /// Size of the qcow2 image in Glance.
    pub qcow2_bytes: u64,
    /// The names of the Scoria processes, in the order of [`Transfer::processes`].
    pub processes: Vec<String>,
    pub copies: Vec<Transfer>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl ImageFigures {
    /// The limit, in MB/s, of copies of kind `limit`.
    pub fn limit_mb_per_s(&self, limit: Limit) -> Option<f64> {
        match limit {
            Limit::ToVolume => Some(self.disk_write.mb_per_s().min(self.glance_serve.mb_per_s())),
            Limit::ToImage => Some(self.glance_receive.mb_per_s()),
            Limit::None => None,
        }
    }

    /// A copy as a percentage of its limit.
    fn pct_of_limit(&self, copy: &Transfer) -> Option<f64> {
        self.limit_mb_per_s(copy.limit)
            .map(|l| 100.0 * copy.throughput().mb_per_s() / l)
    }

    fn copy(&self, key: &str) -> Option<&Transfer> {
        self.copies.iter().find(|c| c.key == key)
    }

    /// Which process is the volume process: `volume`, `serve` in the
    /// all-in-one; with --endpoint the one with the highest peak.
    fn volume_process(&self) -> Option<usize> {
        let named = self
            .processes
            .iter()
            .position(|n| n == "volume" || n == "serve");
        named.or_else(|| (0..self.processes.len()).max_by_key(|&i| self.peak_kib(i)))
    }

    /// The peak RSS of process `i` over all the copies, KiB.
    fn peak_kib(&self, i: usize) -> u64 {
        self.copies
            .iter()
            .filter_map(|c| c.processes.get(i))
            .map(|p| p.peak_rss_kib)
            .max()
            .unwrap_or(0)
    }

    /// Every figure as a name and a value: MB/s, % of the limit and the
    /// volume process's CPU seconds for each copy, ms for the cached create,
    /// the peak RSS of each process in MiB.
    pub fn figures(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            (
                "disk_write_mb_per_s".to_string(),
                self.disk_write.mb_per_s(),
            ),
            ("glance_serve_mb_per_s".into(), self.glance_serve.mb_per_s()),
            (
                "glance_receive_mb_per_s".into(),
                self.glance_receive.mb_per_s(),
            ),
        ];
        for c in &self.copies {
            match self.pct_of_limit(c) {
                Some(pct) => {
                    out.push((format!("{}_mb_per_s", c.key), c.throughput().mb_per_s()));
                    out.push((format!("{}_pct_of_limit", c.key), pct));
                }
                None => out.push((format!("{}_ms", c.key), c.ms())),
            }
            let volume = self.volume_process().and_then(|i| c.processes.get(i));
            if let Some(cpu_s) = volume.and_then(|p| p.cpu_s) {
                out.push((format!("{}_volume_cpu_s", c.key), cpu_s));
            }
        }
        for (i, name) in self.processes.iter().enumerate() {
            out.push((format!("{name}_rss_peak_mib"), mib(self.peak_kib(i))));
        }
        out.into_iter()
            .map(|(k, v)| (format!("image_{k}"), v))
            .collect()
    }

    /// The floors of issue 9 and whether each is met.
    pub fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        for (key, floor) in [
            ("raw_to_volume", RAW_FLOOR),
            ("qcow2_to_volume", QCOW2_FLOOR),
        ] {
            let Some(c) = self.copy(key) else { continue };
            let (Some(pct), Some(limit)) = (self.pct_of_limit(c), self.limit_mb_per_s(c.limit))
            else {
                continue;
            };
            checks.push(Check {
                name: c.name,
                value: format!(
                    "{:.0} MB/s, {pct:.0} % of {limit:.0}",
                    c.throughput().mb_per_s()
                ),
                floor: format!("≥ {:.0} % of the slower limit", floor * 100.0),
                met: Some(pct >= floor * 100.0),
            });
        }
        if let Some(c) = self.copy("cached_create") {
            checks.push(Check {
                name: "cached create of the 1 GiB image",
                value: format!("{:.1} ms", c.ms()),
                floor: format!("< {CACHED_CREATE_FLOOR_MS:.0} ms on reflink"),
                met: self.reflink.then_some(c.ms() < CACHED_CREATE_FLOOR_MS),
            });
        }
        if let Some(i) = self.volume_process() {
            let peak = mib(self.peak_kib(i));
            checks.push(Check {
                name: "volume process RSS during the copies",
                value: format!("{peak:.1} MiB ({})", self.processes[i]),
                floor: format!("< {RSS_FLOOR_MIB:.0} MiB"),
                met: Some(peak < RSS_FLOOR_MIB),
            });
        }
        checks
    }

    /// The table of limits and copies, then the floors.
    pub fn print(&self) {
        let reflink = if self.reflink {
            "reflink"
        } else {
            "no reflink"
        };
        println!(
            "image phase: 1 GiB images (qcow2 {:.0} MiB); MB = 10^6 bytes; volumes' folder {} ({reflink})",
            mib(self.qcow2_bytes / 1024),
            self.disk_dir.display()
        );
        let volume = self.volume_process();
        let process = volume.map_or("", |i| self.processes[i].as_str());
        println!(
            "  {:<48} {:>9} {:>8} {:>11} {:>16} {:>14}",
            "",
            "MB/s",
            "s",
            "% of limit",
            format!("{process} RSS MiB"),
            format!("{process} CPU s")
        );
        let limits = [
            (
                "limit: write + fdatasync in the volumes' folder",
                self.disk_write,
            ),
            ("limit: Glance serving the raw image", self.glance_serve),
            ("limit: Glance receiving the raw image", self.glance_receive),
        ];
        for (what, t) in limits {
            println!(
                "  {what:<48} {:>9.1} {:>8.3}",
                t.mb_per_s(),
                t.elapsed.as_secs_f64()
            );
        }
        for c in &self.copies {
            let (rate, pct) = match self.pct_of_limit(c) {
                Some(pct) => (
                    format!("{:.1}", c.throughput().mb_per_s()),
                    format!("{pct:.0} %"),
                ),
                None => (String::new(), String::new()),
            };
            let sampled = volume.and_then(|i| c.processes.get(i));
            let rss = sampled.map_or(String::new(), |p| format!("{:.1}", mib(p.peak_rss_kib)));
            let cpu = sampled
                .and_then(|p| p.cpu_s)
                .map_or(String::new(), |s| format!("{s:.2}"));
            println!(
                "  {:<48} {rate:>9} {:>8.3} {pct:>11} {rss:>16} {cpu:>14}",
                c.name,
                c.elapsed.as_secs_f64()
            );
        }
        println!("\n{:<40} {:<28} {:<36} met", "floor", "measured", "floor");
        for c in self.checks() {
            let met = match c.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "n/a",
            };
            println!("{:<40} {:<28} {:<36} {met}", c.name, c.value, c.floor);
        }
        println!();
    }

    /// The figures, where the disk limit was measured and the floors, as JSON.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks()
            .into_iter()
            .map(|c| json!({"name": c.name, "value": c.value, "floor": c.floor, "met": c.met}))
            .collect();
        let figures: Map<String, Value> = self
            .figures()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        json!({
            "image_bytes": IMAGE_BYTES,
            "qcow2_bytes": self.qcow2_bytes,
            "disk_dir": self.disk_dir,
            "reflink": self.reflink,
            "figures": figures,
            "floors": checks,
        })
    }
}
