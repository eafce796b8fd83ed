//! The message bus between api, scheduler and volume managers: `cast` (one
//! consumer of a topic takes the message), `call` (request and reply, with a
//! timeout) and `fanout` (every subscriber gets a copy).
//!
//! Bodies travel as JSON inside a versioned [`Envelope`] on every transport,
//! the in-process one included, so nothing works in one mode and breaks in another.

mod amqp;
pub mod backoff;
mod memory;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use scoria_core::rpc::RPC_VERSION;
use scoria_core::{Error, RequestContext, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use amqp::{Amqp, DEFAULT_PREFETCH};
pub use memory::InProcess;

/// How long a message whose work could not be committed waits before it goes back on its queue.
pub const REQUEUE_DELAY: Duration = Duration::from_secs(1);

/// What travels on the bus: the caller's context and a message body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub context: RequestContext,
    pub body: serde_json::Value,
}

/// The answer to a `call`.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Reply {
    Ok(serde_json::Value),
    Err(Error),
}

/// A raw message handed to a consumer by a transport.
pub struct Delivery {
    pub payload: Vec<u8>,
    pub acker: Box<dyn Acker>,
}

/// Settles one delivery with the transport.
#[async_trait]
pub trait Acker: Send {
    /// The message's work is committed: drop it from the queue.
    async fn ack(self: Box<Self>) -> Result<()>;
    /// The work could not be done now: put the message back for another try.
    async fn requeue(self: Box<Self>) -> Result<()>;
    /// For a `call`: send the reply (the message is acked with it).
    async fn reply(self: Box<Self>, payload: Vec<u8>) -> Result<()>;
}

/// Settling that does nothing, for messages that need none (fanout copies).
struct NoAck;

#[async_trait]
impl Acker for NoAck {
    async fn ack(self: Box<Self>) -> Result<()> {
        Ok(())
    }
    async fn requeue(self: Box<Self>) -> Result<()> {
        Ok(())
    }
    async fn reply(self: Box<Self>, _payload: Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// The error of a `call` nobody answered in time, the same on every transport.
fn no_answer(topic: &str, timeout: Duration) -> Error {
    Error::Unavailable(format!(
        "no answer from {topic} within {} s; is that service running?",
        timeout.as_secs_f64()
    ))
}

/// A stream of deliveries from a queue or a fanout subscription.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery, or `None` when the transport shuts down.
    async fn next(&mut self) -> Option<Delivery>;
}

/// A way of moving bytes between services.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn cast(&self, topic: &str, payload: Vec<u8>) -> Result<()>;
    async fn call(&self, topic: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>>;
    async fn fanout(&self, exchange: &str, payload: Vec<u8>) -> Result<()>;
    /// Consumes a work queue, sharing its messages with other consumers.
    async fn consume(&self, topic: &str) -> Result<Box<dyn Subscription>>;
    /// Receives every message published on a fanout from now on.
    async fn subscribe(&self, exchange: &str) -> Result<Box<dyn Subscription>>;
}

/// The typed face of the bus; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    transport: Arc<dyn Transport>,
}

fn encode<T: Serialize>(ctx: &RequestContext, body: &T) -> Result<Vec<u8>> {
    let env = Envelope {
        version: RPC_VERSION,
        context: ctx.clone(),
        body: serde_json::to_value(body).map_err(|e| Error::Internal(e.to_string()))?,
    };
    serde_json::to_vec(&env).map_err(|e| Error::Internal(e.to_string()))
}

impl Bus {
    /// A bus over the given transport.
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Bus { transport }
    }

    /// A bus whose messages stay inside this process.
    pub fn in_process() -> Self {
        Bus::new(Arc::new(InProcess::default()))
    }

    /// A bus over the RabbitMQ broker at `url` (`amqp://user:password@host:port/vhost`),
    /// with the default prefetch; fails if the broker cannot be reached now.
    pub async fn amqp(url: &str) -> Result<Self> {
        Ok(Bus::new(Arc::new(
            Amqp::connect(url, DEFAULT_PREFETCH).await?,
        )))
    }

    /// Sends `body` to one consumer of `topic`.
    pub async fn cast<T: Serialize>(
        &self,
        topic: &str,
        ctx: &RequestContext,
        body: &T,
    ) -> Result<()> {
        tracing::debug!(topic, "cast");
        self.transport.cast(topic, encode(ctx, body)?).await
    }

    /// Sends `body` to one consumer of `topic` and waits up to `timeout` for its answer.
    pub async fn call<T: Serialize, R: DeserializeOwned>(
        &self,
        topic: &str,
        ctx: &RequestContext,
        body: &T,
        timeout: Duration,
    ) -> Result<R> {
        tracing::debug!(topic, "call");
        let raw = self
            .transport
            .call(topic, encode(ctx, body)?, timeout)
            .await?;
        let reply: Reply = serde_json::from_slice(&raw)
            .map_err(|e| Error::Internal(format!("malformed reply from {topic}: {e}")))?;
        match reply {
            Reply::Ok(v) => serde_json::from_value(v)
                .map_err(|e| Error::Internal(format!("unexpected reply from {topic}: {e}"))),
            Reply::Err(e) => Err(e),
        }
    }

    /// Publishes `body` to every subscriber of `exchange`.
    pub async fn fanout<T: Serialize>(
        &self,
        exchange: &str,
        ctx: &RequestContext,
        body: &T,
    ) -> Result<()> {
        self.transport.fanout(exchange, encode(ctx, body)?).await
    }

    /// Consumes a work queue.
    pub async fn consume(&self, topic: &str) -> Result<Inbox> {
        Ok(Inbox {
            sub: self.transport.consume(topic).await?,
        })
    }

    /// Subscribes to a fanout.
    pub async fn subscribe(&self, exchange: &str) -> Result<Inbox> {
        Ok(Inbox {
            sub: self.transport.subscribe(exchange).await?,
        })
    }
}

/// Typed deliveries of one queue or subscription.
pub struct Inbox {
    sub: Box<dyn Subscription>,
}

impl Inbox {
    /// The next message; undecodable ones are logged and dropped.
    pub async fn next(&mut self) -> Option<Incoming> {
        loop {
            let delivery = self.sub.next().await?;
            match serde_json::from_slice::<Envelope>(&delivery.payload) {
                Ok(env) if env.version == RPC_VERSION => {
                    return Some(Incoming {
                        env,
                        acker: delivery.acker,
                    })
                }
                Ok(env) => {
                    tracing::error!(version = env.version, "dropping message of unknown version")
                }
                Err(e) => tracing::error!(error = %e, "dropping undecodable message"),
            }
            let _ = delivery.acker.ack().await;
        }
    }
}

/// One received message.
pub struct Incoming {
    env: Envelope,
    acker: Box<dyn Acker>,
}

impl Incoming {
    /// The sender's context.
    pub fn context(&self) -> &RequestContext {
        &self.env.context
    }

    /// Decodes the body.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.env.body.clone())
            .map_err(|e| Error::Internal(format!("malformed message body: {e}")))
    }

    /// Acknowledges the message after its effect is committed.
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Puts the message back on its queue.
    pub async fn requeue(self) -> Result<()> {
        self.acker.requeue().await
    }

    /// Settles the message by the outcome of its work: acks it once the work is committed;
    /// otherwise logs why and puts it back after [`REQUEUE_DELAY`], in the background, so
    /// that the caller goes on with other messages meanwhile.
    pub async fn settle(self, outcome: Result<()>) {
        match outcome {
            Ok(()) => {
                let _ = self.ack().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "work not committed; requeueing");
                let requeue = async move {
                    tokio::time::sleep(REQUEUE_DELAY).await;
                    let _ = self.requeue().await;
                };
                tokio::spawn(requeue.in_current_span());
            }
        }
    }

    /// Answers a `call`.
    pub async fn reply<R: Serialize>(self, result: Result<R>) -> Result<()> {
        let reply = match result
            .and_then(|r| serde_json::to_value(r).map_err(|e| Error::Internal(e.to_string())))
        {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Err(e),
        };
        let raw = serde_json::to_vec(&reply).map_err(|e| Error::Internal(e.to_string()))?;
        self.acker.reply(raw).await
    }
}
