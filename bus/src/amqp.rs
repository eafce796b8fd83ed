//! The AMQP transport: RabbitMQ through lapin, with the in-process transport's semantics.
//!
//! Topology:
//! - `cast` and `call` go through the default exchange to a durable queue named after the
//!   topic. Casts are persistent and `cast` returns once the broker has confirmed them;
//!   a call's request lives only as long as its timeout, so a request nobody took in time
//!   is dropped by the broker instead of being carried out late.
//! - Answers come back on a reply queue private to the connection (`scoria-reply-<uuid>`,
//!   exclusive) and are matched to their callers by correlation id.
//! - `fanout` publishes transient messages to a fanout exchange; each subscriber binds an
//!   exclusive, server-named queue of its own to it.
//!
//! Failures: the transport keeps one connection with heartbeats, watched by a supervisor
//! task. When the connection drops, the supervisor reconnects with jittered exponential
//! backoff; queues and exchanges are declared again on the new connection, consumers re-open
//! by themselves and publishes wait for the connection to come back. Messages that were
//! delivered but not acked on the lost connection go back to their queue; acking them on
//! the dead channel fails with a warning and the broker delivers them again.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use scoria_core::{Error, Result};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::{no_answer, Acker, Delivery, NoAck, Subscription, Transport};

/// How many unacked messages one consumer holds at most, unless told otherwise.
pub const DEFAULT_PREFETCH: u16 = 16;
/// Heartbeat interval asked for when the URL does not set one.
const HEARTBEAT_SECS: u16 = 10;
/// How long connecting to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publish, or opening a consumer, waits for the broker to come back.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(30);
/// AMQP's limit on queue and exchange names.
const MAX_NAME: usize = 255;

/// Callers waiting for an answer, by correlation id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>>;

/// RabbitMQ as a [`Transport`]: one connection, re-established by itself when it drops.
pub struct Amqp {
    shared: Arc<Shared>,
}

/// What the transport, its subscriptions and its ackers share.
struct Shared {
    /// The live connection, `None` while reconnecting.
    link: watch::Receiver<Option<Arc<Link>>>,
    pending: Pending,
    prefetch: u16,
    supervisor: JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping the supervisor drops the connection, which lapin then closes.
        self.supervisor.abort();
    }
}

/// One connection to the broker and what was set up on it.
struct Link {
    conn: Connection,
    /// This connection's private reply queue.
    reply_to: ShortString,
    /// The confirm-mode channel that publishes go through; reopened if it fails.
    publisher: tokio::sync::Mutex<Option<Channel>>,
    /// Queues and exchanges declared on this connection.
    declared: Mutex<HashSet<String>>,
}

/// Where a message goes and how it travels.
enum Route<'a> {
    /// To one consumer of a durable work queue; persistent.
    Work(&'a str),
    /// A request to a work queue, answered on this connection's reply queue; the broker
    /// drops it if nobody takes it within `ttl`.
    Request {
        topic: &'a str,
        correlation_id: &'a str,
        ttl: Duration,
    },
    /// The answer to a request.
    Reply {
        reply_to: &'a str,
        correlation_id: &'a str,
    },
    /// To every subscriber of a fanout exchange; transient.
    Fanout(&'a str),
}

impl fmt::Display for Route<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Work(topic) | Route::Request { topic, .. } => write!(f, "queue {topic}"),
            Route::Reply { reply_to, .. } => write!(f, "reply queue {reply_to}"),
            Route::Fanout(exchange) => write!(f, "fanout {exchange}"),
        }
    }
}

impl Amqp {
    /// Connects to the broker at `url` (`amqp://user:password@host:port/vhost`); each consumer
    /// holds at most `prefetch` unacked messages. Fails if the broker cannot be reached now;
    /// later outages are waited out.
    pub async fn connect(url: &str, prefetch: u16) -> Result<Self> {
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e| Error::Internal(format!("invalid AMQP URL: {e}")))?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        let (link, replies) = open(&uri).await?;
        let pending = Pending::default();
        let (tx, rx) = watch::channel(Some(link));
        let supervisor = tokio::spawn(supervise(uri, tx, replies, pending.clone()));
        Ok(Amqp {
            shared: Arc::new(Shared {
                link: rx,
                pending,
                prefetch,
                supervisor,
            }),
        })
    }

    async fn subscription(&self, source: Source) -> Result<Box<dyn Subscription>> {
        let link = self
            .shared
            .link(Some(Instant::now() + PUBLISH_PATIENCE))
            .await;
        let link = link.ok_or_else(|| unreachable_broker(&source))?;
        let consumer = source
            .open(&link, self.shared.prefetch)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot consume {source}: {e}")))?;
        Ok(Box::new(AmqpSubscription {
            shared: self.shared.clone(),
            source,
            consumer: Some(consumer),
        }))
    }
}

/// Opens a connection with its reply queue; returns the consumer of that queue.
async fn open(uri: &AMQPUri) -> Result<(Arc<Link>, Consumer)> {
    let attempt = async {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("scoria pid {}", std::process::id()).into());
        let conn = Connection::connect_uri(uri.clone(), properties).await?;
        let channel = conn.create_channel().await?;
        let reply_to = ShortString::from(format!("scoria-reply-{}", Uuid::new_v4()));
        let options = QueueDeclareOptions::exclusive().auto_delete();
        channel
            .queue_declare(reply_to.clone(), options, FieldTable::default())
            .await?;
        let options = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let replies = channel
            .basic_consume(reply_to.clone(), "".into(), options, FieldTable::default())
            .await?;
        let link = Link {
            conn,
            reply_to,
            publisher: Default::default(),
            declared: Default::default(),
        };
        Ok::<_, lapin::Error>((Arc::new(link), replies))
    };
    let broker = format!(
        "{}:{} (vhost {})",
        uri.authority.host, uri.authority.port, uri.vhost
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(e)) => Err(Error::Unavailable(format!(
            "cannot connect to RabbitMQ at {broker}: {e}"
        ))),
        Err(_) => Err(Error::Unavailable(format!(
            "cannot connect to RabbitMQ at {broker}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Keeps a connection up: hands replies to their callers while it lives, then reconnects.
async fn supervise(
    uri: AMQPUri,
    link: watch::Sender<Option<Arc<Link>>>,
    mut replies: Consumer,
    pending: Pending,
) {
    loop {
        let why = loop {
            match replies.next().await {
                Some(Ok(reply)) => route_reply(reply, &pending),
                Some(Err(e)) => break e.to_string(),
                None => break "reply queue consumer cancelled".to_string(),
            }
        };
        tracing::warn!(error = %why, "lost the RabbitMQ connection; reconnecting");
        if let Some(old) = link.send_replace(None) {
            // The connection may outlive its reply consumer; close it so everything reopens.
            if old.conn.status().connected() {
                let close = old.conn.close(200, "reconnecting".into());
                let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
            }
        }
        let mut backoff = Backoff::reconnect();
        replies = loop {
            backoff.wait().await;
            match open(&uri).await {
                Ok((new, replies)) => {
                    link.send_replace(Some(new));
                    tracing::info!("reconnected to RabbitMQ");
                    break replies;
                }
                Err(e) => {
                    let attempt = backoff.attempts();
                    tracing::warn!(error = %e, attempt, "RabbitMQ still unreachable")
                }
            }
        };
    }
}

/// Hands a reply to the caller waiting for it, if it still is.
fn route_reply(reply: lapin::message::Delivery, pending: &Pending) {
    let id = reply.properties.correlation_id().as_ref();
    match id.and_then(|id| lock(pending).remove(id.as_str())) {
        Some(caller) => {
            let _ = caller.send(reply.data);
        }
        None => tracing::debug!(?id, "dropping a reply nobody waits for any more"),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(Error::Internal(format!(
            "message queue name longer than {MAX_NAME} bytes: {name}"
        )));
    }
    Ok(())
}

fn unreachable_broker(what: impl fmt::Display) -> Error {
    Error::Unavailable(format!(
        "cannot reach {what}: no connection to RabbitMQ; is it running?"
    ))
}

impl Shared {
    /// The live connection; while there is none, waits for the supervisor to bring one
    /// back, until `deadline` if given. `None` if it did not come back in time.
    async fn link(&self, deadline: Option<Instant>) -> Option<Arc<Link>> {
        let mut rx = self.link.clone();
        let live = rx.wait_for(|link| link.as_ref().is_some_and(|l| l.conn.status().connected()));
        let found = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, live).await.ok()?,
            None => live.await,
        };
        found.ok().and_then(|link| link.clone())
    }

    /// Publishes and waits for the broker's confirm, retrying across reconnections until
    /// `deadline`.
    async fn publish(&self, route: &Route<'_>, payload: &[u8], deadline: Instant) -> Result<()> {
        let mut backoff = Backoff::reconnect();
        loop {
            let link = self
                .link(Some(deadline))
                .await
                .ok_or_else(|| unreachable_broker(route))?;
            let failure =
                match tokio::time::timeout_at(deadline, link.publish(route, payload)).await {
                    Ok(Ok(Confirmation::Ack(None))) => return Ok(()),
                    Ok(Ok(Confirmation::Ack(Some(_)))) => {
                        // Unroutable: the queue is gone (deleted, or lost by the broker).
                        lock(&link.declared).clear();
                        "no such queue".to_string()
                    }
                    Ok(Ok(_)) => "the broker refused the message".to_string(),
                    Ok(Err(e)) if e.is_amqp_soft_error() => {
                        return Err(Error::Internal(format!("cannot send to {route}: {e}")))
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "no confirm from the broker".to_string(),
                };
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "cannot send to {route}: {failure}"
                )));
            }
            tracing::warn!(%route, error = %failure, "publish failed; retrying");
            tokio::time::sleep_until(deadline.min(Instant::now() + backoff.next_delay())).await;
        }
    }
}

impl Link {
    /// Declares what `route` needs, publishes, and waits for the broker's confirm.
    async fn publish(&self, route: &Route<'_>, payload: &[u8]) -> lapin::Result<Confirmation> {
        let channel = self.publisher().await?;
        let transient = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(1);
        let (exchange, key, properties, mandatory) = match *route {
            Route::Work(topic) => {
                self.declare(&channel, topic, Kind::Queue).await?;
                ("", topic, transient.with_delivery_mode(2), true)
            }
            Route::Request {
                topic,
                correlation_id,
                ttl,
            } => {
                self.declare(&channel, topic, Kind::Queue).await?;
                let properties = transient
                    .with_reply_to(self.reply_to.clone())
                    .with_correlation_id(correlation_id.into())
                    .with_expiration(ttl.as_millis().max(1).to_string().into());
                ("", topic, properties, true)
            }
            Route::Reply {
                reply_to,
                correlation_id,
            } => {
                let properties = transient.with_correlation_id(correlation_id.into());
                // The caller may be gone with its queue; then the answer has no use.
                ("", reply_to, properties, false)
            }
            Route::Fanout(exchange) => {
                self.declare(&channel, exchange, Kind::Fanout).await?;
                (exchange, "", transient, false)
            }
        };
        let options = BasicPublishOptions {
            mandatory,
            ..Default::default()
        };
        channel
            .basic_publish(exchange.into(), key.into(), options, payload, properties)
            .await?
            .await
    }

    /// The publishing channel, opened in confirm mode when there is no usable one.
    async fn publisher(&self) -> lapin::Result<Channel> {
        let mut slot = self.publisher.lock().await;
        if let Some(channel) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(channel.clone());
        }
        let channel = self.conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Declares a queue or exchange once per connection.
    async fn declare(&self, channel: &Channel, name: &str, kind: Kind) -> lapin::Result<()> {
        let key = format!("{kind:?} {name}");
        if lock(&self.declared).contains(&key) {
            return Ok(());
        }
        kind.declare(channel, name).await?;
        lock(&self.declared).insert(key);
        Ok(())
    }
}

/// The two kinds of named things the transport declares.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A durable work queue.
    Queue,
    /// A fanout exchange.
    Fanout,
}

impl Kind {
    async fn declare(self, channel: &Channel, name: &str) -> lapin::Result<()> {
        match self {
            Kind::Queue => {
                let options = QueueDeclareOptions::durable();
                channel
                    .queue_declare(name.into(), options, FieldTable::default())
                    .await?;
            }
            Kind::Fanout => {
                let options = ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                };
                channel
                    .exchange_declare(
                        name.into(),
                        ExchangeKind::Fanout,
                        options,
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for Amqp {
    async fn cast(&self, topic: &str, payload: Vec<u8>) -> Result<()> {
        check_name(topic)?;
        let deadline = Instant::now() + PUBLISH_PATIENCE;
        self.shared
            .publish(&Route::Work(topic), &payload, deadline)
            .await
    }

    async fn call(&self, topic: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        check_name(topic)?;
        let correlation_id = Uuid::new_v4().to_string();
        let (tx, answer) = oneshot::channel();
        let _waiting = Waiting::register(&self.shared.pending, &correlation_id, tx);
        let deadline = Instant::now() + timeout;
        let request = Route::Request {
            topic,
            correlation_id: &correlation_id,
            ttl: timeout,
        };
        self.shared.publish(&request, &payload, deadline).await?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(raw)) => Ok(raw),
            Ok(Err(_)) | Err(_) => Err(no_answer(topic, timeout)),
        }
    }

    async fn fanout(&self, exchange: &str, payload: Vec<u8>) -> Result<()> {
        check_name(exchange)?;
        let deadline = Instant::now() + PUBLISH_PATIENCE;
        self.shared
            .publish(&Route::Fanout(exchange), &payload, deadline)
            .await
    }

    async fn consume(&self, topic: &str) -> Result<Box<dyn Subscription>> {
        check_name(topic)?;
        self.subscription(Source::Queue(topic.to_string())).await
    }

    async fn subscribe(&self, exchange: &str) -> Result<Box<dyn Subscription>> {
        check_name(exchange)?;
        self.subscription(Source::Fanout(exchange.to_string()))
            .await
    }
}

/// A caller's entry in the pending map, removed when the call ends, answered or not.
struct Waiting<'a> {
    pending: &'a Pending,
    id: &'a str,
}

impl<'a> Waiting<'a> {
    fn register(pending: &'a Pending, id: &'a str, tx: oneshot::Sender<Vec<u8>>) -> Self {
        lock(pending).insert(id.to_string(), tx);
        Waiting { pending, id }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        lock(self.pending).remove(self.id);
    }
}

/// What a subscription reads from.
enum Source {
    /// A work queue, shared with the other consumers of the topic.
    Queue(String),
    /// A fanout exchange, through a queue of this subscription's own.
    Fanout(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Queue(topic) => write!(f, "queue {topic}"),
            Source::Fanout(exchange) => write!(f, "fanout {exchange}"),
        }
    }
}

impl Source {
    /// Starts a consumer on a channel of its own.
    async fn open(&self, link: &Link, prefetch: u16) -> lapin::Result<Consumer> {
        let channel = link.conn.create_channel().await?;
        let no_args = FieldTable::default;
        match self {
            Source::Queue(topic) => {
                Kind::Queue.declare(&channel, topic).await?;
                channel
                    .basic_qos(prefetch, BasicQosOptions::default())
                    .await?;
                let options = BasicConsumeOptions::default();
                channel
                    .basic_consume(topic.as_str().into(), "".into(), options, no_args())
                    .await
            }
            Source::Fanout(exchange) => {
                Kind::Fanout.declare(&channel, exchange).await?;
                let options = QueueDeclareOptions::exclusive().auto_delete();
                let queue = channel.queue_declare("".into(), options, no_args()).await?;
                let name = queue.name().clone();
                channel
                    .queue_bind(
                        name.clone(),
                        exchange.as_str().into(),
                        "".into(),
                        Default::default(),
                        no_args(),
                    )
                    .await?;
                let options = BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                };
                channel
                    .basic_consume(name, "".into(), options, no_args())
                    .await
            }
        }
    }
}

/// Deliveries of one queue or fanout, across reconnections.
struct AmqpSubscription {
    shared: Arc<Shared>,
    source: Source,
    /// `None` after the consumer was lost, until it is reopened.
    consumer: Option<Consumer>,
}

#[async_trait]
impl Subscription for AmqpSubscription {
    async fn next(&mut self) -> Option<Delivery> {
        let mut backoff = Backoff::reconnect();
        loop {
            if self.consumer.is_none() {
                backoff.wait().await;
                let link = self.shared.link(None).await?;
                match self.source.open(&link, self.shared.prefetch).await {
                    Ok(consumer) => {
                        tracing::info!(source = %self.source, "consuming again");
                        self.consumer = Some(consumer);
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.source, error = %e, "cannot consume yet");
                        continue;
                    }
                }
            }
            let consumer = self.consumer.as_mut()?;
            match consumer.next().await {
                Some(Ok(delivery)) => return Some(self.delivery(delivery)),
                Some(Err(e)) => tracing::warn!(source = %self.source, error = %e, "consumer lost"),
                None => tracing::warn!(source = %self.source, "consumer cancelled by the broker"),
            }
            self.consumer = None;
        }
    }
}

impl AmqpSubscription {
    fn delivery(&self, delivery: lapin::message::Delivery) -> Delivery {
        let acker: Box<dyn Acker> = match &self.source {
            Source::Fanout(_) => Box::new(NoAck),
            Source::Queue(topic) => {
                let properties = &delivery.properties;
                let reply = properties.reply_to().as_ref().map(|to| {
                    let id = properties.correlation_id().as_ref();
                    (
                        to.to_string(),
                        id.map(ToString::to_string).unwrap_or_default(),
                    )
                });
                Box::new(AmqpAcker {
                    acker: delivery.acker,
                    topic: topic.clone(),
                    reply,
                    shared: self.shared.clone(),
                })
            }
        };
        Delivery {
            payload: delivery.data,
            acker,
        }
    }
}

/// Settles one work-queue message on the channel it came from.
struct AmqpAcker {
    acker: lapin::Acker,
    topic: String,
    /// For a request: the reply queue and correlation id of its caller.
    reply: Option<(String, String)>,
    shared: Arc<Shared>,
}

impl AmqpAcker {
    /// Turns lapin's outcome into ours. A message whose channel is gone is no emergency:
    /// the broker has put it back on its queue and delivers it again.
    fn settled(&self, action: &str, outcome: lapin::Result<bool>) -> Result<()> {
        let why = match outcome {
            Ok(true) => return Ok(()),
            Ok(false) => "its channel is closed".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(topic = %self.topic, error = %why, "cannot {action} a message; it will be delivered again");
        Err(Error::Unavailable(format!(
            "cannot {action} a message of {}: {why}",
            self.topic
        )))
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        let outcome = self.acker.ack(BasicAckOptions::default()).await;
        self.settled("ack", outcome)
    }

    async fn requeue(self: Box<Self>) -> Result<()> {
        let options = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        let outcome = self.acker.nack(options).await;
        self.settled("requeue", outcome)
    }

    async fn reply(self: Box<Self>, payload: Vec<u8>) -> Result<()> {
        let sent = match &self.reply {
            Some((reply_to, correlation_id)) => {
                let route = Route::Reply {
                    reply_to,
                    correlation_id,
                };
                let deadline = Instant::now() + PUBLISH_PATIENCE;
                self.shared.publish(&route, &payload, deadline).await
            }
            None => Ok(()),
        };
        let acked = self.ack().await;
        sent.and(acked)
    }
}
