//! The image phase: a 1 GiB raw image and a qcow2 of it in Glance; the
//! limits of this machine (Glance receiving and serving an image, writing
//! into the volumes' filesystem); then image→volume and volume→image
//! throughput, a create from the image-volume cache, and the memory of the
//! Scoria processes during each copy, next to the floors of issue 9.

mod figures;
mod files;

use std::future::Future;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::api::Api;
use crate::glance::Glance;
use crate::load::Volumes;
use crate::progress;
use crate::rss::Sampler;

pub use figures::ImageFigures;
use figures::{Limit, Throughput, Transfer};

/// How often a volume is polled during a copy (a copy takes seconds; this
/// keeps the polling off the CPU the copy needs).
const COPY_POLL: Duration = Duration::from_millis(20);
/// How often a volume is polled during the cached create (a few ms).
const CLONE_POLL: Duration = Duration::from_millis(2);

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
    report(&glance_receive, "");

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
    report(&disk.write, reflink);
    progress("images: limit 3, Glance serving the raw image");
    files::settle().await;
    let started = Instant::now();
    let bytes = setup.glance.download(&raw_image).await?;
    let glance_serve = Throughput {
        bytes,
        elapsed: started.elapsed(),
    };
    report(&glance_serve, "");

    let copies = copies(setup, &raw_image, &qcow2_image).await?;
    Ok(ImageFigures {
        disk_dir,
        reflink: disk.reflink,
        disk_write: disk.write,
        glance_serve,
        glance_receive,
        qcow2_bytes,
        processes: setup.processes.iter().map(|(n, _)| n.clone()).collect(),
        copies,
    })
}

/// The copies, each timed and with the processes' memory sampled.
async fn copies(setup: &Setup<'_>, raw_image: &str, qcow2_image: &str) -> Result<Vec<Transfer>> {
    let mut done = Vec::new();
    let (volume, c) = copy(
        setup,
        ("raw_to_volume", "raw image → volume", Limit::ToVolume),
        to_volume(setup, raw_image, COPY_POLL),
    )
    .await?;
    done.push(c);
    let (_, c) = copy(
        setup,
        ("qcow2_to_volume", "qcow2 image → volume", Limit::ToVolume),
        to_volume(setup, qcow2_image, COPY_POLL),
    )
    .await?;
    done.push(c);
    let (_, c) = copy(
        setup,
        (
            "cached_create",
            "cached create (raw image again)",
            Limit::None,
        ),
        to_volume(setup, raw_image, CLONE_POLL),
    )
    .await?;
    done.push(c);
    for (key, name, format) in [
        ("volume_to_raw", "volume → raw image", "raw"),
        ("volume_to_qcow2", "volume → qcow2 image", "qcow2"),
    ] {
        let (_, c) = copy(
            setup,
            (key, name, Limit::ToImage),
            to_image(setup, &volume, format),
        )
        .await?;
        done.push(c);
    }
    Ok(done)
}

/// Runs `work` after a `sync` (see [`files::settle`]), timing it and
/// sampling the memory and CPU time of the Scoria processes meanwhile.
async fn copy<T>(
    setup: &Setup<'_>,
    (key, name, limit): (&'static str, &'static str, Limit),
    work: impl Future<Output = Result<T>>,
) -> Result<(T, Transfer)> {
    progress(&format!("images: {name}"));
    files::settle().await;
    let sampler = Sampler::start(setup.processes.iter().map(|(_, pid)| *pid).collect());
    let started = Instant::now();
    let out = work.await;
    let elapsed = started.elapsed();
    let processes = sampler.stop().await;
    let out = out?;
    let done = Transfer {
        key,
        name,
        limit,
        elapsed,
        processes,
    };
    match limit {
        Limit::None => progress(&format!("images: {:.1} ms", elapsed.as_secs_f64() * 1e3)),
        _ => report(&done.throughput(), ""),
    }
    Ok((out, done))
}

/// Shows a figure as it is measured.
fn report(t: &Throughput, note: &str) {
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

/// Creates a 1 GiB volume from `image` and waits until it shows
/// `available` (polled every `poll`); returns its id.
async fn to_volume(setup: &Setup<'_>, image: &str, poll: Duration) -> Result<String> {
    let id = setup.api.create_from_image(image).await?;
    setup.volumes.record_created(&id);
    setup
        .api
        .wait_available_within(&id, poll, setup.cap)
        .await?;
    Ok(id)
}

/// Uploads `volume` into a new image in `disk_format` and waits until the
/// volume is available again and the image active.
async fn to_image(setup: &Setup<'_>, volume: &str, disk_format: &str) -> Result<()> {
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
    setup.glance.wait_active(&image, setup.cap).await
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
