//! The in-process transport: tokio channels inside one process.
//!
//! Queues keep messages until a consumer takes them; nothing survives the
//! process, which is why the volume manager recovers unfinished work at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use scoria_core::{Error, Result};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{no_answer, Acker, Delivery, NoAck, Subscription, Transport};

struct Message {
    payload: Vec<u8>,
    reply: Option<oneshot::Sender<Vec<u8>>>,
}

type SharedReceiver = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>;

#[derive(Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<Message>,
    rx: SharedReceiver,
}

/// Queues and fanouts held in memory.
#[derive(Default)]
pub struct InProcess {
    queues: Mutex<HashMap<String, Queue>>,
    fanouts: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

impl InProcess {
    fn queue(&self, topic: &str) -> Queue {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .entry(topic.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                Queue {
                    tx,
                    rx: Arc::new(tokio::sync::Mutex::new(rx)),
                }
            })
            .clone()
    }

    fn exchange(&self, name: &str) -> broadcast::Sender<Vec<u8>> {
        let mut fanouts = self.fanouts.lock().unwrap_or_else(|p| p.into_inner());
        fanouts
            .entry(name.to_string())
            .or_insert_with(|| broadcast::channel(256).0)
            .clone()
    }
}

fn closed(topic: &str) -> Error {
    Error::Unavailable(format!("message queue {topic} is closed"))
}

#[async_trait]
impl Transport for InProcess {
    async fn cast(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        self.queue(topic)
            .tx
            .send(Message {
                payload,
                reply: None,
            })
            .map_err(|_| closed(topic))
    }

    async fn call(&self, topic: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.queue(topic)
            .tx
            .send(Message {
                payload,
                reply: Some(reply),
            })
            .map_err(|_| closed(topic))?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(raw)) => Ok(raw),
            Ok(Err(_)) => Err(Error::Unavailable(format!(
                "{topic} dropped the request without answering"
            ))),
            Err(_) => Err(no_answer(topic, timeout)),
        }
    }

    async fn fanout(&self, exchange: &str, payload: Vec<u8>) -> Result<()> {
        // No subscriber yet is not an error: a fanout reaches whoever listens now.
        let _ = self.exchange(exchange).send(payload);
        Ok(())
    }

    async fn consume(&self, topic: &str) -> Result<Box<dyn Subscription>> {
        let q = self.queue(topic);
        Ok(Box::new(QueueSubscription { rx: q.rx, tx: q.tx }))
    }

    async fn subscribe(&self, exchange: &str) -> Result<Box<dyn Subscription>> {
        Ok(Box::new(FanoutSubscription {
            rx: self.exchange(exchange).subscribe(),
        }))
    }
}

struct QueueSubscription {
    rx: SharedReceiver,
    tx: mpsc::UnboundedSender<Message>,
}

#[async_trait]
impl Subscription for QueueSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let msg = self.rx.lock().await.recv().await?;
        Some(Delivery {
            payload: msg.payload.clone(),
            acker: Box::new(QueueAcker {
                msg,
                tx: self.tx.clone(),
            }),
        })
    }
}

struct QueueAcker {
    msg: Message,
    tx: mpsc::UnboundedSender<Message>,
}

#[async_trait]
impl Acker for QueueAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        Ok(())
    }

    async fn requeue(self: Box<Self>) -> Result<()> {
        self.tx.send(self.msg).map_err(|_| closed("queue"))
    }

    async fn reply(self: Box<Self>, payload: Vec<u8>) -> Result<()> {
        if let Some(reply) = self.msg.reply {
            // The caller may have timed out and gone; that is its business.
            let _ = reply.send(payload);
        }
        Ok(())
    }
}

struct FanoutSubscription {
    rx: broadcast::Receiver<Vec<u8>>,
}

#[async_trait]
impl Subscription for FanoutSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.rx.recv().await {
                Ok(payload) => {
                    return Some(Delivery {
                        payload,
                        acker: Box::new(NoAck),
                    })
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "fanout subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
