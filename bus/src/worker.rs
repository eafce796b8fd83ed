//! Background loops of the services, built the same way: a [`Consumer`] serves a queue with
//! a bound on the messages handled at once and an exit deadline on stop, and [`every`] runs a
//! periodic job. Both end when the service's shutdown signal turns true.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use scoria_core::Result;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::{Inbox, Incoming};

/// How long a stopping service waits for the messages it is handling (oslo.service's
/// `graceful_shutdown_timeout` default).
pub const DEFAULT_EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// Resolves once `shutdown` turns true, or when its sender is gone.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves one queue or subscription.
#[derive(Debug, Clone)]
pub struct Consumer {
    name: &'static str,
    limit: usize,
    exit_deadline: Duration,
}

impl Consumer {
    /// A consumer named `name` in logs, handling at most `limit` messages at once (at least
    /// one) and waiting at most `exit_deadline` for them when it stops.
    pub fn new(name: &'static str, limit: usize, exit_deadline: Duration) -> Self {
        Consumer {
            name,
            limit: limit.max(1),
            exit_deadline,
        }
    }

    /// Hands each message of `inbox` to `handle` in a task of its own, at most `limit` at
    /// once, until `shutdown` turns true or the inbox ends. It then waits up to the exit
    /// deadline for the handlers still running and abandons the rest with a log line: their
    /// messages were not acked, so the broker delivers them again.
    pub async fn serve<F, Fut>(
        &self,
        mut inbox: Inbox,
        mut shutdown: watch::Receiver<bool>,
        handle: F,
    ) where
        F: Fn(Incoming) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(self.limit));
        let mut running = JoinSet::new();
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                _ = stopped(&mut shutdown) => break,
            };
            let msg = tokio::select! {
                msg = inbox.next() => msg,
                _ = stopped(&mut shutdown) => break,
            };
            let Some(msg) = msg else { break };
            let work = handle(msg);
            running.spawn(async move {
                work.await;
                drop(slot);
            });
            while running.try_join_next().is_some() {}
        }
        self.finish(running).await;
    }

    /// Waits up to the exit deadline for `running`, then abandons what is left.
    async fn finish(&self, mut running: JoinSet<()>) {
        if running.is_empty() {
            return;
        }
        tracing::info!(
            consumer = self.name,
            in_flight = running.len(),
            "finishing messages in hand"
        );
        let drained = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.exit_deadline, drained)
            .await
            .is_err()
        {
            tracing::warn!(
                consumer = self.name,
                abandoned = running.len(),
                deadline_secs = self.exit_deadline.as_secs_f64(),
                "abandoning messages still in hand at the exit deadline; they will be delivered again"
            );
            running.abort_all();
        }
    }
}

/// Runs `job` every `period`, the first time at once, until `shutdown` turns true. A failed
/// run is logged and the next one comes on time.
pub async fn every<F, Fut>(
    name: &'static str,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut job: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        if let Err(e) = job().await {
            tracing::error!(job = name, error = %e, "periodic job failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use scoria_core::RequestContext;

    use super::*;
    use crate::Bus;

    const TOPIC: &str = "worker-test";

    async fn queue_of(bus: &Bus, messages: usize) -> Inbox {
        let inbox = bus.consume(TOPIC).await.unwrap();
        let ctx = RequestContext::internal("req-test".into());
        for n in 0..messages {
            bus.cast(TOPIC, &ctx, &n).await.unwrap();
        }
        inbox
    }

    #[tokio::test]
    async fn handles_at_most_limit_messages_at_once() {
        let bus = Bus::in_process();
        let inbox = queue_of(&bus, 6).await;
        let (stop, shutdown) = watch::channel(false);
        let (now, peak, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let counters = (now.clone(), peak.clone(), done.clone());
        let consumer = Consumer::new("test", 2, DEFAULT_EXIT_DEADLINE);
        let serve = consumer.serve(inbox, shutdown, move |msg| {
            let (now, peak, done) = counters.clone();
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                msg.ack().await.unwrap();
            }
        });
        let watch_done = async {
            while done.load(Ordering::SeqCst) < 6 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            stop.send_replace(true);
        };
        tokio::join!(serve, watch_done);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_past_the_exit_deadline_is_abandoned() {
        let bus = Bus::in_process();
        let inbox = queue_of(&bus, 1).await;
        let (stop, shutdown) = watch::channel(false);
        let finished = Arc::new(AtomicUsize::new(0));
        let seen = finished.clone();
        let consumer = Consumer::new("test", 1, Duration::from_secs(1));
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let serve = consumer.serve(inbox, shutdown, move |msg| {
            let seen = seen.clone();
            let started_tx = started_tx.lock().unwrap().take();
            async move {
                if let Some(tx) = started_tx {
                    let _ = tx.send(());
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
                seen.fetch_add(1, Ordering::SeqCst);
                msg.ack().await.unwrap();
            }
        });
        let stopper = async {
            started.await.unwrap();
            stop.send_replace(true);
        };
        let begun = tokio::time::Instant::now();
        tokio::join!(serve, stopper);
        assert!(begun.elapsed() < Duration::from_secs(2));
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn every_runs_at_once_then_each_period_and_survives_failures() {
        let (stop, shutdown) = watch::channel(false);
        let runs = AtomicUsize::new(0);
        let job = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(scoria_core::Error::Internal("failing on purpose".into()))
        };
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            stop.send_replace(true);
        };
        tokio::join!(
            every("test", Duration::from_secs(1), shutdown, job),
            stopper
        );
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
