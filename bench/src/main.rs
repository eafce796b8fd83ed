//! `scoria-bench`: measures a Scoria service — create→available latency and
//! create throughput, show and list requests per second, attach cycle latency
//! and cycles per second, the memory of every Scoria process, and with a
//! Glance image→volume and volume→image throughput next to this machine's
//! limits — as an all-in-one, as a deployment (PostgreSQL, RabbitMQ, separate
//! api/scheduler/volume processes) or at a running endpoint.

mod api;
mod glance;
mod images;
mod load;
mod report;
mod rss;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::{Parser, ValueEnum};

use api::Api;
use glance::Glance;
use load::Volumes;
use report::{ProcessMemory, Report};
use target::Target;

/// Volumes present during the list phase (its page size).
const LIST_VOLUMES: usize = 100;
/// Concurrency of the show and list phases.
const RATE_CONCURRENCY: usize = 8;
/// Concurrencies of the attach phases: 1 for latency, 8 for cycles per second.
const ATTACH_CONCURRENCY: [usize; 2] = [1, 8];

#[derive(Parser)]
#[command(
    name = "scoria-bench",
    about = "Measures a Scoria block storage service"
)]
struct Args {
    /// Start Scoria in this shape and measure it.
    #[arg(
        long,
        value_enum,
        required_unless_present = "endpoint",
        conflicts_with = "endpoint"
    )]
    mode: Option<Mode>,
    /// Measure a Scoria already running here instead (noauth, loopback only), e.g. http://127.0.0.1:8776.
    #[arg(long)]
    endpoint: Option<String>,
    /// With --endpoint: the pids of its Scoria processes, for the memory figures.
    #[arg(long, num_args = 1.., requires = "endpoint")]
    pid: Vec<u32>,
    /// The scoria binary started by --mode.
    #[arg(long, default_value = "target/release/scoria")]
    scoria_bin: PathBuf,
    /// Volumes created one at a time.
    #[arg(long, default_value_t = 200)]
    volumes_c1: usize,
    /// Volumes created 8 at a time.
    #[arg(long, default_value_t = 400)]
    volumes_c8: usize,
    /// Volumes created 16 at a time (the throughput phase).
    #[arg(long, default_value_t = 800)]
    volumes_c16: usize,
    /// Seconds each requests-per-second phase and each attach phase runs.
    #[arg(long, default_value_t = 10)]
    rate_seconds: u64,
    /// Upper bound on each create phase, each image copy and the clean-up, in seconds.
    #[arg(long, default_value_t = 300)]
    phase_timeout: u64,
    /// Keep the volumes (and, with --mode, the data directory, database and vhost).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// A Glance for the image phase (unauthenticated, on loopback), e.g.
    /// http://127.0.0.1:9292. With --mode, Scoria is configured to use it,
    /// with the image-volume cache on.
    #[arg(long)]
    glance: Option<String>,
    /// With --mode: keep the volumes in a new folder under this one (e.g. on
    /// a reflink XFS). With --endpoint: the folder of its volumes, where the
    /// disk-write limit is measured (default: the system temporary folder).
    #[arg(long)]
    volumes_dir: Option<PathBuf>,
    /// The phases to run, comma-separated [default: volumes, and images
    /// when --glance is given].
    #[arg(long, value_enum, value_delimiter = ',')]
    phases: Vec<PhaseSet>,
}

/// A group of phases.
#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum PhaseSet {
    /// Creates, show and list rates, attach cycles.
    Volumes,
    /// Image→volume and volume→image against this machine's limits, the
    /// cached create, the volume process's memory during the copies (needs --glance).
    Images,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// `scoria serve`: SQLite and the in-process bus in one process.
    AllInOne,
    /// `scoria api`, `scheduler` and `volume` on PostgreSQL and RabbitMQ.
    Deployment,
}

impl Args {
    fn mode_name(&self) -> &'static str {
        match self.mode {
            Some(Mode::AllInOne) => "all-in-one",
            Some(Mode::Deployment) => "deployment",
            None => "endpoint",
        }
    }

    async fn target(&self) -> Result<Target> {
        let options = target::Options {
            glance: self.glance.clone(),
            volumes_dir: self.volumes_dir.clone(),
        };
        match (self.mode, &self.endpoint) {
            (Some(Mode::AllInOne), _) => Target::all_in_one(&self.scoria_bin, &options).await,
            (Some(Mode::Deployment), _) => Target::deployment(&self.scoria_bin, &options).await,
            (None, Some(root)) => Ok(Target::endpoint(
                root,
                &self.pid,
                self.volumes_dir.as_deref(),
            )),
            (None, None) => Err(anyhow!("give --mode or --endpoint")),
        }
    }

    /// Whether to run `phases` (see `--phases`).
    fn runs(&self, phases: PhaseSet) -> bool {
        if self.phases.is_empty() {
            phases == PhaseSet::Volumes || self.glance.is_some()
        } else {
            self.phases.contains(&phases)
        }
    }

    /// The Glance client, when --glance is given; fails when the image
    /// phase is asked for without it.
    fn glance(&self) -> Result<Option<Glance>> {
        match &self.glance {
            Some(root) => Ok(Some(Glance::new(root)?)),
            None if self.runs(PhaseSet::Images) => Err(anyhow!("--phases images needs --glance")),
            None => Ok(None),
        }
    }
}

fn progress(what: &str) {
    eprintln!("[bench] {what}");
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    args.glance()?;
    progress(&format!("starting ({})", args.mode_name()));
    let mut target = args.target().await?;
    let measured = run(&args, &mut target).await;
    target.stop(args.keep, measured.is_err()).await;
    let report = measured?;
    if args.json {
        println!("{:#}", report.to_json());
    } else {
        report.print();
    }
    Ok(())
}

/// Measures the target, stopping early on Ctrl-C, then deletes the volumes created unless --keep.
async fn run(args: &Args, target: &mut Target) -> Result<Report> {
    let api = Api::new(&target.root)?;
    let glance = args.glance()?;
    let volumes = Arc::new(Volumes::default());
    let made = images::Made::default();
    let measured = tokio::select! {
        r = measure(args, target, &api, glance.as_ref(), &volumes, &made) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if !args.keep {
        clean_up(&api, &volumes, args).await;
        if let Some(glance) = &glance {
            images::clean_up(&api, glance, &made).await;
        }
    }
    measured
}

/// Runs every phase against a started target.
async fn measure(
    args: &Args,
    target: &mut Target,
    api: &Api,
    glance: Option<&Glance>,
    volumes: &Arc<Volumes>,
    made: &images::Made,
) -> Result<Report> {
    progress(&format!("waiting for {} to be ready", api.root()));
    target.wait_ready(api).await?;
    let at_rest = memory_of(target)?;
    let cap = Duration::from_secs(args.phase_timeout);
    let phases = if args.runs(PhaseSet::Volumes) {
        volume_phases(args, api, volumes, cap).await?
    } else {
        Vec::new()
    };
    let images = match glance.filter(|_| args.runs(PhaseSet::Images)) {
        Some(glance) => {
            let setup = images::Setup {
                api,
                glance,
                volumes,
                made,
                volumes_dir: target.volumes_dir.as_deref(),
                processes: &target.processes,
                cap,
            };
            Some(images::run(&setup).await?)
        }
        None => None,
    };
    let memory = memory_report(target, at_rest)?;
    Ok(Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        mode: args.mode_name().to_string(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        endpoint: api.root().to_string(),
        phases,
        memory,
        images,
    })
}

/// Creates, show and list rates, attach cycles.
async fn volume_phases(
    args: &Args,
    api: &Api,
    volumes: &Arc<Volumes>,
    cap: Duration,
) -> Result<Vec<load::Phase>> {
    let mut phases = Vec::new();
    for (concurrency, count) in [
        (1, args.volumes_c1),
        (8, args.volumes_c8),
        (16, args.volumes_c16),
    ] {
        progress(&format!(
            "create→available: {count} volumes, concurrency {concurrency}"
        ));
        phases.push(load::create(api, volumes, concurrency, count, cap).await?);
    }
    load::top_up(api, volumes, LIST_VOLUMES, cap).await?;
    let rate = Duration::from_secs(args.rate_seconds);
    progress(&format!("GET /volumes/{{id}} for {rate:?}"));
    phases.push(load::show(api, volumes, RATE_CONCURRENCY, rate).await?);
    progress(&format!(
        "GET /volumes/detail?limit={LIST_VOLUMES} for {rate:?}"
    ));
    phases.push(load::list(api, LIST_VOLUMES, RATE_CONCURRENCY, rate).await?);
    for concurrency in ATTACH_CONCURRENCY {
        progress(&format!(
            "attach cycles (create with connector, complete, delete) for {rate:?}, concurrency {concurrency}"
        ));
        phases.push(load::attach(api, volumes, concurrency, rate).await?);
    }
    Ok(phases)
}

/// Pairs each process's memory at rest with its memory now.
fn memory_report(target: &Target, at_rest: Vec<rss::Memory>) -> Result<Vec<ProcessMemory>> {
    let now = memory_of(target)?;
    let pairs = target.processes.iter().zip(at_rest.into_iter().zip(now));
    Ok(pairs
        .map(|((name, pid), (at_rest, after_load))| ProcessMemory {
            name: name.clone(),
            pid: *pid,
            at_rest,
            after_load,
        })
        .collect())
}

fn memory_of(target: &Target) -> Result<Vec<rss::Memory>> {
    target
        .processes
        .iter()
        .map(|(_, pid)| rss::read(*pid))
        .collect()
}

/// Deletes the attachments left behind, then the volumes this run created;
/// reports problems without failing the run.
async fn clean_up(api: &Api, volumes: &Volumes, args: &Args) {
    let (left, failures) = load::delete_attachments(api, volumes).await;
    if left > 0 {
        progress(&format!(
            "deleted {} attachments left behind, {} failed",
            left - failures.len(),
            failures.len()
        ));
        if let Some(e) = failures.first() {
            progress(&format!("first failure: {e}"));
        }
    }
    progress("deleting the volumes created");
    match load::delete_all(api, volumes, Duration::from_secs(args.phase_timeout)).await {
        Ok(p) => {
            progress(&format!(
                "deleted {} volumes in {:.1?}, {} failed",
                p.latencies.len(),
                p.elapsed,
                p.errors
            ));
            if let Some(e) = p.first_error {
                progress(&format!("first failure: {e}"));
            }
        }
        Err(e) => progress(&format!("clean-up failed: {e:#}")),
    }
}
