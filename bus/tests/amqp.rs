//! The bus's semantics, checked by the same test bodies on the in-process transport and on
//! RabbitMQ; then what only RabbitMQ provides: redelivery of what a dead consumer held,
//! expiry of requests nobody took, and carrying on after the broker closes every connection.
//!
//! The RabbitMQ tests need the broker at [`URL`] and `rabbitmqctl` on this machine, and fail
//! when they are missing. Each test uses names of its own and removes them at the end; the
//! failure tests never disturb other users of the broker.

use std::process::Command;
use std::time::Duration;

use scoria_bus::{Bus, Inbox, Incoming};
use scoria_core::{Error, RequestContext};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// The broker on the default vhost.
const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The broker's address, for the relay.
const BROKER: &str = "127.0.0.1:5672";
/// How long a test waits for a message that should come.
const PATIENCE: Duration = Duration::from_secs(30);

fn ctx() -> RequestContext {
    RequestContext::internal("req-test".into())
}

fn unique(what: &str) -> String {
    format!("scoria-test-{what}-{}", Uuid::new_v4())
}

async fn next(inbox: &mut Inbox) -> Incoming {
    tokio::time::timeout(PATIENCE, inbox.next())
        .await
        .expect("no message within the test's patience")
        .expect("the subscription ended")
}

/// Answers calls on `inbox`: twice the number, or an error for zero.
fn serve_doubling(mut inbox: Inbox) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(m) = inbox.next().await {
            let n: u32 = m.body().unwrap();
            let answer = if n == 0 {
                Err(Error::BadRequest("zero".into()))
            } else {
                Ok(n * 2)
            };
            m.reply(answer).await.unwrap();
        }
    })
}

async fn stop(task: JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}

// ---- Test bodies shared by both transports; `name` is unique to the test. ----

async fn cast_reaches_one_consumer_and_requeue_redelivers(bus: &Bus, name: &str) {
    bus.cast(name, &ctx(), &42u32).await.unwrap();
    let mut inbox = bus.consume(name).await.unwrap();
    let m = next(&mut inbox).await;
    assert_eq!(m.body::<u32>().unwrap(), 42);
    m.requeue().await.unwrap();
    let m = next(&mut inbox).await;
    assert_eq!(m.body::<u32>().unwrap(), 42);
    assert_eq!(m.context().request_id, "req-test");
    m.ack().await.unwrap();
    // The acked message is gone: the next one is the next cast.
    bus.cast(name, &ctx(), &7u32).await.unwrap();
    let m = next(&mut inbox).await;
    assert_eq!(m.body::<u32>().unwrap(), 7);
    m.ack().await.unwrap();
}

async fn call_gets_reply_or_error(bus: &Bus, name: &str) {
    let responder = serve_doubling(bus.consume(name).await.unwrap());
    let r: u32 = bus
        .call(name, &ctx(), &21u32, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r, 42);
    let e = bus
        .call::<_, u32>(name, &ctx(), &0u32, Duration::from_secs(5))
        .await;
    assert_eq!(e, Err(Error::BadRequest("zero".into())));
    stop(responder).await;
}

async fn call_without_consumer_times_out(bus: &Bus, name: &str) {
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let e = bus.call::<_, u32>(name, &ctx(), &1u32, timeout).await;
    match e {
        Err(Error::Unavailable(msg)) => assert!(msg.contains("no answer from"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
}

async fn fanout_reaches_every_subscriber(bus: &Bus, name: &str) {
    let mut a = bus.subscribe(name).await.unwrap();
    let mut b = bus.subscribe(name).await.unwrap();
    bus.fanout(name, &ctx(), &"hello").await.unwrap();
    assert_eq!(next(&mut a).await.body::<String>().unwrap(), "hello");
    assert_eq!(next(&mut b).await.body::<String>().unwrap(), "hello");
}

/// Runs each shared body once per transport.
macro_rules! on_both_transports {
    ($($body:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $body() {
                    super::$body(&scoria_bus::Bus::in_process(), &super::unique("t")).await;
                }
            )*
        }

        mod rabbitmq {
            $(
                #[tokio::test]
                async fn $body() {
                    let name = super::unique("t");
                    super::$body(&super::rabbit(super::URL).await, &name).await;
                    super::delete(&[&name]).await;
                }
            )*
        }
    };
}

on_both_transports!(
    cast_reaches_one_consumer_and_requeue_redelivers,
    call_gets_reply_or_error,
    call_without_consumer_times_out,
    fanout_reaches_every_subscriber,
);

// ---- RabbitMQ only. ----

async fn rabbit(url: &str) -> Bus {
    Bus::amqp(url)
        .await
        .unwrap_or_else(|e| panic!("these tests need RabbitMQ at {url}: {e}"))
}

/// Removes test queues and exchanges from the default vhost.
async fn delete(names: &[&str]) {
    let conn = lapin::Connection::connect(URL, Default::default())
        .await
        .expect("RabbitMQ is reachable");
    let channel = conn.create_channel().await.unwrap();
    for name in names {
        let _ = channel
            .queue_delete((*name).into(), Default::default())
            .await;
        let _ = channel
            .exchange_delete((*name).into(), Default::default())
            .await;
    }
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn unacked_message_of_a_dropped_bus_is_redelivered() {
    let name = unique("dropped");
    let sender = rabbit(URL).await;
    let doomed = rabbit(URL).await;
    let mut inbox = doomed.consume(&name).await.unwrap();
    sender.cast(&name, &ctx(), &"precious").await.unwrap();
    let taken = next(&mut inbox).await;
    assert_eq!(taken.body::<String>().unwrap(), "precious");
    // The consumer's process dies before acking.
    drop((taken, inbox, doomed));
    let mut inbox = sender.consume(&name).await.unwrap();
    let m = next(&mut inbox).await;
    assert_eq!(m.body::<String>().unwrap(), "precious");
    m.ack().await.unwrap();
    delete(&[&name]).await;
}

#[tokio::test]
async fn request_nobody_took_in_time_expires() {
    let name = unique("expiry");
    let bus = rabbit(URL).await;
    call_without_consumer_times_out(&bus, &name).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A service started afterwards must not carry out the abandoned request.
    bus.cast(&name, &ctx(), &2u32).await.unwrap();
    let mut inbox = bus.consume(&name).await.unwrap();
    let m = next(&mut inbox).await;
    assert_eq!(m.body::<u32>().unwrap(), 2);
    m.ack().await.unwrap();
    delete(&[&name]).await;
}

/// Closes every connection of a vhost of its own, so that nothing else on the broker suffers.
#[tokio::test]
async fn carries_on_after_the_broker_closes_every_connection() {
    let vhost = unique("vhost");
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let (work, service) = (unique("work"), unique("service"));
    let worker = rabbit(&url).await;
    let client = rabbit(&url).await;
    let mut inbox = worker.consume(&work).await.unwrap();
    let responder = serve_doubling(worker.consume(&service).await.unwrap());
    let timeout = Duration::from_secs(10);
    let r: u32 = client.call(&service, &ctx(), &1u32, timeout).await.unwrap();
    assert_eq!(r, 2);
    client.cast(&work, &ctx(), &"before").await.unwrap();
    let taken = next(&mut inbox).await;
    assert_eq!(taken.body::<String>().unwrap(), "before");

    rabbitmqctl(&["close_all_connections", "-p", &vhost, "test"]);

    // The consumer opened before carries on; the message it held unacked comes back.
    client.cast(&work, &ctx(), &"after").await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let m = next(&mut inbox).await;
        bodies.push(m.body::<String>().unwrap());
        m.ack().await.unwrap();
    }
    bodies.sort();
    assert_eq!(bodies, ["after", "before"]);
    // Its first copy cannot be acked on the lost connection, and says so without panicking.
    assert!(matches!(taken.ack().await, Err(Error::Unavailable(_))));
    let r: u32 = client
        .call(&service, &ctx(), &21u32, timeout)
        .await
        .unwrap();
    assert_eq!(r, 42);

    stop(responder).await;
    drop((inbox, worker, client));
    rabbitmqctl(&["delete_vhost", &vhost]);
}

/// A TCP relay in front of the broker that plays the network, so that a test can partition
/// it without touching the shared broker.
struct Relay {
    port: u16,
    /// Bumped by each partition: connections opened before go silent.
    generation: watch::Sender<u64>,
    acceptor: JoinHandle<()>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = watch::channel(0).0;
        let acceptor = tokio::spawn(relay(listener, generation.subscribe()));
        Relay {
            port,
            generation,
            acceptor,
        }
    }

    /// The broker through the relay, with a one-second heartbeat.
    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f?heartbeat=1", self.port)
    }

    /// Open connections stop passing anything, without closing; new ones are refused.
    async fn partition(&self) {
        self.generation.send_modify(|g| *g += 1);
        self.acceptor.abort();
    }

    /// New connections get through again.
    async fn heal(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.acceptor = tokio::spawn(relay(listener, self.generation.subscribe()));
    }
}

async fn relay(listener: TcpListener, generation: watch::Receiver<u64>) {
    while let Ok((mut client, _)) = listener.accept().await {
        let mut generation = generation.clone();
        tokio::spawn(async move {
            let mut broker = TcpStream::connect(BROKER).await.unwrap();
            let silenced = tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => false,
                _ = generation.changed() => true,
            };
            if silenced {
                // Both sockets stay open and carry nothing.
                std::future::pending::<()>().await
            }
        });
    }
}

/// A network partition: the connection goes silent (only heartbeats can tell), the broker
/// cannot be reached for a while, then can again.
#[tokio::test]
async fn carries_on_after_a_network_partition() {
    let name = unique("partition");
    let mut network = Relay::start().await;
    let bus = rabbit(&network.url()).await;
    let mut inbox = bus.consume(&name).await.unwrap();
    bus.cast(&name, &ctx(), &"before").await.unwrap();
    next(&mut inbox).await.ack().await.unwrap();

    network.partition().await;
    let sender = bus.clone();
    let topic = name.clone();
    let cast = tokio::spawn(async move { sender.cast(&topic, &ctx(), &"during").await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !cast.is_finished(),
        "a cast during the outage waits for the broker"
    );
    network.heal().await;

    cast.await.unwrap().unwrap();
    let mut m = next(&mut inbox).await;
    if m.body::<String>().unwrap() == "before" {
        // Its ack was cut off by the partition: delivery is at least once.
        m.ack().await.unwrap();
        m = next(&mut inbox).await;
    }
    assert_eq!(m.body::<String>().unwrap(), "during");
    m.ack().await.unwrap();
    drop((inbox, bus));
    delete(&[&name]).await;
}
