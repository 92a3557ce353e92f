//! The message bus seam: work requests to agents, progress back, lifecycle events out.
//! `memory` is the embedded deployment's bus; Kafka sits behind the same trait.

pub mod kafka;
pub mod kafka_config;
pub mod memory;
pub mod messages;

use async_trait::async_trait;

pub use messages::*;

#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
}

/// A message's delivery: resolves once the bus has it (or could not take it).
pub type Delivery = std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends a message and waits for the bus to have it.
    async fn publish(&self, topic: &str, key: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        self.enqueue(topic, key, payload).await
    }

    /// Queues a message now, behind those queued before it, without waiting: messages
    /// queued one after another leave in that order, and their deliveries can be awaited
    /// together.
    fn enqueue(&self, topic: &str, key: &str, payload: Vec<u8>) -> Delivery;

    /// Consumers sharing a `group` split the topic's messages between them; each group
    /// sees every message. Delivery is at least once.
    async fn subscribe(&self, topic: &str, group: &str) -> anyhow::Result<Box<dyn Subscription>>;

    /// Whether the bus can take messages now (for `/readyz`).
    async fn ready(&self) -> bool;

    /// Whether consumed positions survive a restart, so that a consumer must commit only
    /// what it has made durable. An in-process bus forgets everything anyway.
    fn keeps_offsets(&self) -> bool;
}

#[async_trait]
pub trait Subscription: Send {
    /// The next message; `None` once the bus is shut down.
    async fn next(&mut self) -> Option<Message>;

    /// Marks everything received so far as handled (a commit, on a bus that keeps offsets).
    async fn commit(&mut self) -> anyhow::Result<()>;
}
