//! The image phase: a 1 GiB raw image and a qcow2 of it in Glance; the
//! limits of this machine (writing into the volumes' filesystem, Glance
//! serving the image); then image→volume and volume→image throughput, a
//! create from the image-volume cache, and the volume process's memory
//! during the copies, each next to its floor.

mod files;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::api::Api;
use crate::glance::Glance;
use crate::load::Volumes;
use crate::progress;
use crate::rss::Sampler;

use files::IMAGE_BYTES;

/// How often a volume is polled during a copy (a copy takes seconds; this
/// keeps the polling off the CPU the copy needs).
const COPY_POLL: Duration = Duration::from_millis(20);
/// How often a volume is polled during the cached create (a few ms).
const CLONE_POLL: Duration = Duration::from_millis(2);
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

    fn of_image(elapsed: Duration) -> Throughput {
        Throughput {
            bytes: IMAGE_BYTES,
            elapsed,
        }
    }
}

/// The Glance images the phase made, for the clean-up.
#[derive(Default)]
pub struct Made {
    /// The images uploaded from files, whose cached volumes go too.
    sources: Mutex<Vec<String>>,
    /// The images volumes were uploaded into.
    uploads: Mutex<Vec<String>>,
}

/// Where and what the image phase measures.
pub struct Setup<'a> {
    pub api: &'a Api,
    pub glance: &'a Glance,
    /// The volumes made are recorded here, for the clean-up.
    pub volumes: &'a Volumes,
    pub made: &'a Made,
    /// The folder of the file backend's volumes, if known; else the disk
    /// limit is measured in the system temporary folder.
    pub volumes_dir: Option<&'a Path>,
    /// The Scoria processes whose memory is sampled during the copies.
    pub processes: &'a [(String, u32)],
    /// The longest wait for one copy.
    pub cap: Duration,
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
    /// Limit of volume→image: `PUT /v2/images/{id}/file` of the raw image
    /// from a file.
    pub glance_receive: Throughput,
    /// Size of the qcow2 image in Glance.
    pub qcow2_bytes: u64,
    /// Create from the raw image → available (1 GiB in the time taken).
    pub raw_to_volume: Throughput,
    pub qcow2_to_volume: Throughput,
    /// `os-volume_upload_image` → volume available and image active.
    pub volume_to_raw: Throughput,
    pub volume_to_qcow2: Throughput,
    /// A second create from the raw image, served by the cache.
    pub cached_create: Duration,
    /// Peak `VmRSS` (KiB) of each Scoria process during the copies.
    pub rss_peaks: Vec<(String, u64)>,
}

/// Runs the image phase.
pub async fn run(setup: &Setup<'_>) -> Result<ImageFigures> {
    let scratch = files::Scratch::new()?;
    let (raw_file, qcow2_file) = (scratch.0.join("bench.raw"), scratch.0.join("bench.qcow2"));
    progress("images: making a 1 GiB raw image (3/4 random, 1/4 zeros) and a qcow2 of it");
    files::make_raw(&raw_file).await?;
    files::make_qcow2(&raw_file, &qcow2_file).await?;
    let qcow2_bytes = std::fs::metadata(&qcow2_file)?.len();
    progress("images: uploading the qcow2 image to Glance");
    let (qcow2_image, _) = upload(setup, "qcow2", &qcow2_file).await?;
    progress("images: limit 1, Glance receiving the raw image (its upload)");
    let (raw_image, glance_receive) = upload(setup, "raw", &raw_file).await?;
    report(glance_receive, "");

    let disk_dir = setup
        .volumes_dir
        .map_or_else(std::env::temp_dir, Path::to_path_buf);
    progress(&format!(
        "images: limit 2, writing 1 GiB into {} with fdatasync",
        disk_dir.display()
    ));
    files::settle().await;
    let disk = files::probe_disk(&disk_dir, &raw_file).await?;
    drop(scratch);
    let reflink = if disk.reflink {
        ", reflink"
    } else {
        ", no reflink"
    };
    report(disk.write, reflink);
    progress("images: limit 3, Glance serving the raw image");
    files::settle().await;
    let started = Instant::now();
    let bytes = setup.glance.download(&raw_image).await?;
    let glance_serve = Throughput {
        bytes,
        elapsed: started.elapsed(),
    };
    report(glance_serve, "");

    let pids = setup.processes.iter().map(|(_, pid)| *pid).collect();
    let sampler = Sampler::start(pids);
    let copies = copies(setup, &raw_image, &qcow2_image).await;
    let peaks = sampler.stop().await;
    let copies = copies?;
    let names = setup.processes.iter().map(|(name, _)| name.clone());
    Ok(ImageFigures {
        disk_dir,
        reflink: disk.reflink,
        disk_write: disk.write,
        glance_serve,
        glance_receive,
        qcow2_bytes,
        raw_to_volume: copies.raw_to_volume,
        qcow2_to_volume: copies.qcow2_to_volume,
        volume_to_raw: copies.volume_to_raw,
        volume_to_qcow2: copies.volume_to_qcow2,
        cached_create: copies.cached_create,
        rss_peaks: names.zip(peaks).collect(),
    })
}

/// The timed copies.
struct Copies {
    raw_to_volume: Throughput,
    qcow2_to_volume: Throughput,
    cached_create: Duration,
    volume_to_raw: Throughput,
    volume_to_qcow2: Throughput,
}

/// Runs the copies, each after a `sync` (see [`files::settle`]).
async fn copies(setup: &Setup<'_>, raw_image: &str, qcow2_image: &str) -> Result<Copies> {
    progress("images: raw image → volume");
    files::settle().await;
    let (volume, raw_to_volume) = to_volume(setup, raw_image, COPY_POLL).await?;
    report(Throughput::of_image(raw_to_volume), "");
    progress("images: qcow2 image → volume");
    files::settle().await;
    let (_, qcow2_to_volume) = to_volume(setup, qcow2_image, COPY_POLL).await?;
    report(Throughput::of_image(qcow2_to_volume), "");
    progress("images: raw image → volume again (from the image-volume cache)");
    files::settle().await;
    let (_, cached_create) = to_volume(setup, raw_image, CLONE_POLL).await?;
    progress(&format!(
        "images: {:.1} ms",
        cached_create.as_secs_f64() * 1e3
    ));
    progress("images: volume → raw image");
    files::settle().await;
    let volume_to_raw = to_image(setup, &volume, "raw").await?;
    report(Throughput::of_image(volume_to_raw), "");
    progress("images: volume → qcow2 image");
    files::settle().await;
    let volume_to_qcow2 = to_image(setup, &volume, "qcow2").await?;
    report(Throughput::of_image(volume_to_qcow2), "");
    Ok(Copies {
        raw_to_volume: Throughput::of_image(raw_to_volume),
        qcow2_to_volume: Throughput::of_image(qcow2_to_volume),
        cached_create,
        volume_to_raw: Throughput::of_image(volume_to_raw),
        volume_to_qcow2: Throughput::of_image(volume_to_qcow2),
    })
}

/// Shows a figure as it is measured.
fn report(t: Throughput, note: &str) {
    progress(&format!(
        "images: {:.2} s, {:.1} MB/s{note}",
        t.elapsed.as_secs_f64(),
        t.mb_per_s()
    ));
}

/// Makes a Glance image of `file` in `disk_format`; returns its id and
/// how fast Glance took the data (the `PUT` of the file, after a `sync`).
async fn upload(setup: &Setup<'_>, disk_format: &str, file: &Path) -> Result<(String, Throughput)> {
    let name = format!("scoria-bench-{disk_format}");
    let id = setup.glance.create(&name, disk_format).await?;
    setup.made.sources.lock().unwrap().push(id.clone());
    files::settle().await;
    let started = Instant::now();
    setup.glance.upload(&id, file).await?;
    let taken = Throughput {
        bytes: std::fs::metadata(file)?.len(),
        elapsed: started.elapsed(),
    };
    setup.glance.wait_active(&id, setup.cap).await?;
    Ok((id, taken))
}

/// Creates a 1 GiB volume from `image`, timed from the request until the
/// volume shows `available` (polled every `poll`).
async fn to_volume(setup: &Setup<'_>, image: &str, poll: Duration) -> Result<(String, Duration)> {
    let started = Instant::now();
    let id = setup.api.create_from_image(image).await?;
    setup.volumes.record_created(&id);
    setup
        .api
        .wait_available_within(&id, poll, setup.cap)
        .await?;
    Ok((id, started.elapsed()))
}

/// Uploads `volume` into a new image in `disk_format`, timed from the
/// request until the volume is available again and the image active.
async fn to_image(setup: &Setup<'_>, volume: &str, disk_format: &str) -> Result<Duration> {
    let started = Instant::now();
    let name = format!("scoria-bench-upload-{disk_format}");
    let image = setup
        .api
        .upload_to_image(volume, &name, disk_format)
        .await?;
    setup.made.uploads.lock().unwrap().push(image.clone());
    setup
        .api
        .wait_available_within(volume, COPY_POLL, setup.cap)
        .await?;
    setup.glance.wait_active(&image, setup.cap).await?;
    Ok(started.elapsed())
}

/// Deletes the cached volumes of the images made and then the images;
/// reports problems without failing. Run after the volumes are deleted.
pub async fn clean_up(api: &Api, glance: &Glance, made: &Made) {
    let sources = std::mem::take(&mut *made.sources.lock().unwrap());
    let uploads = std::mem::take(&mut *made.uploads.lock().unwrap());
    if sources.is_empty() && uploads.is_empty() {
        return;
    }
    progress("deleting the cached image volumes and the images made");
    for image in &sources {
        match api.volumes_named(&format!("image-{image}")).await {
            Ok(cached) => {
                for id in cached {
                    warn(api.delete(&id).await);
                }
            }
            Err(e) => warn(Err(e)),
        }
    }
    for image in sources.iter().chain(&uploads) {
        warn(glance.delete(image).await);
    }
}

fn warn(result: Result<()>) {
    if let Err(e) = result {
        progress(&format!("clean-up: {e:#}"));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl ImageFigures {
    /// The limit of image→volume: the slower of writing the disk and
    /// Glance serving, in MB/s.
    pub fn limit_mb_per_s(&self) -> f64 {
        self.disk_write.mb_per_s().min(self.glance_serve.mb_per_s())
    }

    /// `t` as a percentage of `limit` MB/s.
    fn pct(t: &Throughput, limit: f64) -> f64 {
        100.0 * t.mb_per_s() / limit
    }

    /// The peak RSS of the volume process (`volume`, or `serve` in the
    /// all-in-one; with --endpoint the highest of the processes given), KiB.
    pub fn volume_rss_peak(&self) -> Option<(String, u64)> {
        let volume = self
            .rss_peaks
            .iter()
            .find(|(name, _)| name == "volume" || name == "serve");
        volume
            .or_else(|| self.rss_peaks.iter().max_by_key(|(_, kib)| *kib))
            .cloned()
    }

    /// Every figure as a name and a value (MB/s; % of the limit, which is
    /// the slower of disk and Glance serving for image→volume, Glance
    /// receiving for volume→image; ms; MiB).
    pub fn figures(&self) -> Vec<(String, f64)> {
        let (to_volume, to_image) = (self.limit_mb_per_s(), self.glance_receive.mb_per_s());
        let mut out: Vec<(String, f64)> = vec![
            ("disk_write_mb_per_s", self.disk_write.mb_per_s()),
            ("glance_serve_mb_per_s", self.glance_serve.mb_per_s()),
            ("glance_receive_mb_per_s", to_image),
            ("raw_to_volume_mb_per_s", self.raw_to_volume.mb_per_s()),
            (
                "raw_to_volume_pct_of_limit",
                Self::pct(&self.raw_to_volume, to_volume),
            ),
            ("qcow2_to_volume_mb_per_s", self.qcow2_to_volume.mb_per_s()),
            (
                "qcow2_to_volume_pct_of_limit",
                Self::pct(&self.qcow2_to_volume, to_volume),
            ),
            ("volume_to_raw_mb_per_s", self.volume_to_raw.mb_per_s()),
            (
                "volume_to_raw_pct_of_limit",
                Self::pct(&self.volume_to_raw, to_image),
            ),
            ("volume_to_qcow2_mb_per_s", self.volume_to_qcow2.mb_per_s()),
            (
                "volume_to_qcow2_pct_of_limit",
                Self::pct(&self.volume_to_qcow2, to_image),
            ),
            ("cached_create_ms", self.cached_create.as_secs_f64() * 1e3),
        ]
        .into_iter()
        .map(|(k, v)| (format!("image_{k}"), v))
        .collect();
        for (name, kib) in &self.rss_peaks {
            out.push((format!("image_{name}_rss_peak_mib"), mib(*kib)));
        }
        out
    }

    /// The floors of issue 9 and whether each is met.
    pub fn checks(&self) -> Vec<Check> {
        let limit = self.limit_mb_per_s();
        let share = |t: &Throughput, floor: f64, name| {
            let ratio = t.mb_per_s() / limit;
            Check {
                name,
                value: format!(
                    "{:.0} MB/s, {:.0} % of {limit:.0}",
                    t.mb_per_s(),
                    ratio * 100.0
                ),
                floor: format!("≥ {:.0} % of the slower limit", floor * 100.0),
                met: Some(ratio >= floor),
            }
        };
        let cached_ms = self.cached_create.as_secs_f64() * 1e3;
        let mut checks = vec![
            share(&self.raw_to_volume, RAW_FLOOR, "raw image → volume"),
            share(&self.qcow2_to_volume, QCOW2_FLOOR, "qcow2 image → volume"),
            Check {
                name: "cached create of the 1 GiB image",
                value: format!("{cached_ms:.1} ms"),
                floor: format!("< {CACHED_CREATE_FLOOR_MS:.0} ms on reflink"),
                met: self.reflink.then_some(cached_ms < CACHED_CREATE_FLOOR_MS),
            },
        ];
        if let Some((name, kib)) = self.volume_rss_peak() {
            checks.push(Check {
                name: "volume process RSS during the copies",
                value: format!("{:.1} MiB ({name})", mib(kib)),
                floor: format!("< {RSS_FLOOR_MIB:.0} MiB"),
                met: Some(mib(kib) < RSS_FLOOR_MIB),
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
        let (to_volume, to_image) = (self.limit_mb_per_s(), self.glance_receive.mb_per_s());
        let rows = [
            (
                "limit: write + fdatasync in the volumes' folder",
                self.disk_write,
                None,
            ),
            (
                "limit: Glance serving the raw image",
                self.glance_serve,
                None,
            ),
            (
                "limit: Glance receiving the raw image",
                self.glance_receive,
                None,
            ),
            ("raw image → volume", self.raw_to_volume, Some(to_volume)),
            (
                "qcow2 image → volume",
                self.qcow2_to_volume,
                Some(to_volume),
            ),
            ("volume → raw image", self.volume_to_raw, Some(to_image)),
            ("volume → qcow2 image", self.volume_to_qcow2, Some(to_image)),
        ];
        println!("  {:<50} {:>9} {:>8} {:>11}", "", "MB/s", "s", "% of limit");
        for (what, t, limit) in rows {
            let pct = limit.map_or(String::new(), |l| format!("{:.0} %", Self::pct(&t, l)));
            println!(
                "  {what:<50} {:>9.1} {:>8.2} {pct:>11}",
                t.mb_per_s(),
                t.elapsed.as_secs_f64()
            );
        }
        println!(
            "  {:<50} {:>9} {:>8.3}",
            "cached create (the raw image again)",
            "",
            self.cached_create.as_secs_f64()
        );
        for (name, kib) in &self.rss_peaks {
            println!(
                "  {:<50} {:>9.1} MiB",
                format!("peak RSS of {name} during the copies"),
                mib(*kib)
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

    /// The figures, the limits' details and the floors as JSON.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks()
            .into_iter()
            .map(|c| json!({"name": c.name, "value": c.value, "floor": c.floor, "met": c.met}))
            .collect();
        json!({
            "image_bytes": IMAGE_BYTES,
            "qcow2_bytes": self.qcow2_bytes,
            "disk_dir": self.disk_dir,
            "reflink": self.reflink,
            "limit_mb_per_s": self.limit_mb_per_s(),
            "figures": self
                .figures()
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect::<serde_json::Map<_, _>>(),
            "floors": checks,
        })
    }
}
