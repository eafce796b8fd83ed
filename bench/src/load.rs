//! The measured phases: concurrent workers running a job a bounded number of
//! times within a time cap, and what they saw.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::task::JoinSet;

use crate::api::Api;

/// Most requests a request-rate phase makes, whatever its duration.
const MAX_RATE_REQUESTS: usize = 10_000_000;
/// Workers deleting volumes at the end.
const DELETE_CONCURRENCY: usize = 8;

/// The volumes this run created: all of them for the clean-up, the available
/// ones for the show and attach phases; and the attachment each volume has
/// now, if any (a failed or interrupted attach cycle leaves one behind).
#[derive(Default)]
pub struct Volumes {
    created: Mutex<Vec<String>>,
    available: Mutex<Vec<String>>,
    /// Volume id → attachment id.
    attachments: Mutex<HashMap<String, String>>,
}

impl Volumes {
    /// Records a volume made outside the create phases, for the clean-up.
    pub fn record_created(&self, id: &str) {
        self.created.lock().unwrap().push(id.to_string());
    }

    fn available(&self) -> Vec<String> {
        self.available.lock().unwrap().clone()
    }
}

/// What one phase measured.
#[derive(Debug)]
pub struct Phase {
    /// What was done, e.g. `create→available`.
    pub name: String,
    /// Short identifier used in figure names, e.g. `create_c8`.
    pub key: String,
    /// What one success is: `volumes`, `requests` or `cycles`.
    pub unit: &'static str,
    pub concurrency: usize,
    /// Time of each success, shortest first.
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Phase {
    fn new(key: &str, name: &str, unit: &'static str, concurrency: usize) -> Phase {
        Phase {
            name: name.to_string(),
            key: format!("{key}_c{concurrency}"),
            unit,
            concurrency,
            latencies: Vec::new(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        }
    }

    fn record(mut self, results: Vec<Result<Duration>>, elapsed: Duration) -> Phase {
        for result in results {
            match result {
                Ok(latency) => self.latencies.push(latency),
                Err(e) => {
                    self.errors += 1;
                    self.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        self.latencies.sort();
        self.elapsed = elapsed;
        self
    }

    /// Successes per second over the whole phase.
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The nearest-rank percentile `p` (0–100) of the latencies, in ms.
    pub fn percentile_ms(&self, p: f64) -> Option<f64> {
        let n = self.latencies.len();
        let rank = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.latencies.get(rank - 1).map(|d| d.as_secs_f64() * 1e3)
    }

    /// The longest latency, in ms.
    pub fn max_ms(&self) -> Option<f64> {
        self.latencies.last().map(|d| d.as_secs_f64() * 1e3)
    }
}

/// One job of a phase.
#[derive(Clone, Copy)]
struct Turn {
    /// 0, 1, … over the whole phase.
    index: usize,
    /// The worker running it, 0..concurrency.
    worker: usize,
    /// 0, 1, … over that worker's jobs.
    nth: usize,
}

/// Runs `job(turn)` for indexes 0, 1, … on `concurrency` workers until
/// `count` jobs have started or `cap` has passed, and returns every result.
async fn run<T, F, Fut>(concurrency: usize, count: usize, cap: Duration, job: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(Turn) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + cap;
    // A JoinSet aborts the workers when this future is dropped (Ctrl-C).
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let (next, job) = (next.clone(), job.clone());
        workers.spawn(async move {
            let mut results = Vec::new();
            for nth in 0.. {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count || Instant::now() >= deadline {
                    break;
                }
                results.push(job(Turn { index, worker, nth }).await);
            }
            results
        });
    }
    let mut all = Vec::new();
    while let Some(results) = workers.join_next().await {
        all.extend(results?);
    }
    Ok(all)
}

/// Creates `count` volumes, `concurrency` at a time, timing each from the
/// POST to the GET that shows it available.
pub async fn create(
    api: &Api,
    volumes: &Arc<Volumes>,
    concurrency: usize,
    count: usize,
    cap: Duration,
) -> Result<Phase> {
    let (api, volumes) = (api.clone(), volumes.clone());
    let started = Instant::now();
    let results = run(concurrency, count, cap, move |_| {
        create_one(api.clone(), volumes.clone())
    })
    .await?;
    Ok(
        Phase::new("create", "create→available", "volumes", concurrency)
            .record(results, started.elapsed()),
    )
}

async fn create_one(api: Api, volumes: Arc<Volumes>) -> Result<Duration> {
    let started = Instant::now();
    let id = api.create().await?;
    volumes.created.lock().unwrap().push(id.clone());
    api.wait_available(&id).await?;
    let latency = started.elapsed();
    volumes.available.lock().unwrap().push(id);
    Ok(latency)
}

/// Creates volumes until at least `want` of this run's are available.
pub async fn top_up(api: &Api, volumes: &Arc<Volumes>, want: usize, cap: Duration) -> Result<()> {
    let missing = want.saturating_sub(volumes.available().len());
    if missing > 0 {
        create(api, volumes, 8, missing, cap).await?;
    }
    Ok(())
}

/// GETs `/volumes/{id}` of this run's available volumes, round robin, for `duration`.
pub async fn show(
    api: &Api,
    volumes: &Volumes,
    concurrency: usize,
    duration: Duration,
) -> Result<Phase> {
    let paths: Arc<Vec<String>> = Arc::new(
        volumes
            .available()
            .iter()
            .map(|id| format!("/volumes/{id}"))
            .collect(),
    );
    if paths.is_empty() {
        bail!("no available volume to show");
    }
    rate(
        api,
        "show",
        "GET /volumes/{id}",
        concurrency,
        duration,
        move |i| paths[i % paths.len()].clone(),
    )
    .await
}

/// GETs `/volumes/detail?limit=<limit>` for `duration`.
pub async fn list(
    api: &Api,
    limit: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<Phase> {
    let path = format!("/volumes/detail?limit={limit}");
    let name = format!("GET {path}");
    rate(
        api,
        "list_detail",
        &name,
        concurrency,
        duration,
        move |_| path.clone(),
    )
    .await
}

async fn rate(
    api: &Api,
    key: &str,
    name: &str,
    concurrency: usize,
    duration: Duration,
    path: impl Fn(usize) -> String + Clone + Send + 'static,
) -> Result<Phase> {
    let api = api.clone();
    let started = Instant::now();
    let results = run(concurrency, MAX_RATE_REQUESTS, duration, move |turn| {
        let (api, path) = (api.clone(), path(turn.index));
        async move {
            let t = Instant::now();
            api.fetch(&path).await.map(|()| t.elapsed())
        }
    })
    .await?;
    Ok(Phase::new(key, name, "requests", concurrency).record(results, started.elapsed()))
}

/// Runs attach cycles (create an attachment with a connector, complete it,
/// delete it; see [`attach_cycle`]) on this run's available volumes for
/// `duration`, timing each cycle. Worker `w` of `concurrency` takes the
/// volumes at positions `w`, `w + concurrency`, … in turn, so no two workers
/// ever attach the same volume.
pub async fn attach(
    api: &Api,
    volumes: &Arc<Volumes>,
    concurrency: usize,
    duration: Duration,
) -> Result<Phase> {
    let available = volumes.available();
    if available.len() < concurrency {
        bail!(
            "attach at concurrency {concurrency} needs as many available volumes; there are {}",
            available.len()
        );
    }
    let mut own = vec![Vec::new(); concurrency];
    for (i, id) in available.into_iter().enumerate() {
        own[i % concurrency].push(id);
    }
    let own = Arc::new(own);
    let (api, volumes) = (api.clone(), volumes.clone());
    let started = Instant::now();
    let results = run(concurrency, MAX_RATE_REQUESTS, duration, move |turn| {
        let (api, volumes, own) = (api.clone(), volumes.clone(), own.clone());
        async move {
            let mine = &own[turn.worker];
            attach_turn(&api, &volumes, &mine[turn.nth % mine.len()]).await
        }
    })
    .await?;
    Ok(
        Phase::new("attach", "attach+complete+detach", "cycles", concurrency)
            .record(results, started.elapsed()),
    )
}

/// One attach cycle on `volume_id`, timed. An attachment an earlier cycle
/// left on the volume is deleted first, untimed; when that fails, so does
/// this turn.
async fn attach_turn(api: &Api, volumes: &Volumes, volume_id: &str) -> Result<Duration> {
    let left = volumes.attachments.lock().unwrap().get(volume_id).cloned();
    if let Some(left) = left {
        api.delete_attachment(&left)
            .await
            .context("deleting the attachment an earlier cycle left behind")?;
        volumes.attachments.lock().unwrap().remove(volume_id);
    }
    let started = Instant::now();
    attach_cycle(api, volumes, volume_id).await?;
    Ok(started.elapsed())
}

/// Attaches a volume to a new server on this host and detaches it again:
/// `POST /attachments` with a connector (200, `attaching`, with
/// `connection_info.driver_volume_type`), `os-complete` (204), `DELETE`
/// (200). The attachment is deleted even when completing it failed; one that
/// could not be deleted stays in [`Volumes`].
async fn attach_cycle(api: &Api, volumes: &Volumes, volume_id: &str) -> Result<()> {
    let (id, attachment) = api.create_attachment(volume_id).await?;
    volumes
        .attachments
        .lock()
        .unwrap()
        .insert(volume_id.to_string(), id.clone());
    let exported = attachment["status"] == "attaching"
        && attachment["connection_info"]["driver_volume_type"].is_string();
    let completed = if exported {
        api.complete_attachment(&id).await
    } else {
        Err(anyhow!(
            "POST /attachments: not attaching with a connection_info.driver_volume_type: {attachment}"
        ))
    };
    let deleted = api.delete_attachment(&id).await;
    if deleted.is_ok() {
        volumes.attachments.lock().unwrap().remove(volume_id);
    }
    completed.and(deleted)
}

/// Deletes the attachments failed or interrupted attach cycles left behind;
/// returns how many there were and the failures.
pub async fn delete_attachments(api: &Api, volumes: &Volumes) -> (usize, Vec<String>) {
    let left = std::mem::take(&mut *volumes.attachments.lock().unwrap());
    let mut failures = Vec::new();
    for id in left.values() {
        if let Err(e) = api.delete_attachment(id).await {
            failures.push(format!("{e:#}"));
        }
    }
    (left.len(), failures)
}

/// Deletes every volume this run created, waiting until each is gone.
pub async fn delete_all(api: &Api, volumes: &Volumes, cap: Duration) -> Result<Phase> {
    let ids = Arc::new(std::mem::take(&mut *volumes.created.lock().unwrap()));
    let (api, count) = (api.clone(), ids.len());
    let started = Instant::now();
    let results = run(DELETE_CONCURRENCY, count, cap, move |turn| {
        let (api, ids) = (api.clone(), ids.clone());
        async move {
            let t = Instant::now();
            api.delete(&ids[turn.index]).await.map(|()| t.elapsed())
        }
    })
    .await?;
    Ok(
        Phase::new("delete", "delete", "volumes", DELETE_CONCURRENCY)
            .record(results, started.elapsed()),
    )
}
