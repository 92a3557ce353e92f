//! The in-process bus: one unbounded queue per (topic, consumer group). A message published
//! before any group subscribed is kept for the first group that does, so start-up order
//! between publishers and consumers does not matter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Bus, Message, Subscription};

#[derive(Default)]
struct Topic {
    groups: HashMap<String, Queue>,
    /// Messages published while no group was listening.
    backlog: Vec<Message>,
}

#[derive(Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<Message>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
}

#[derive(Clone, Default)]
pub struct MemoryBus {
    topics: Arc<Mutex<HashMap<String, Topic>>>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    fn put(&self, topic: &str, key: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        let message = Message {
            topic: topic.to_string(),
            key: key.to_string(),
            payload,
        };
        let mut topics = self
            .topics
            .lock()
            .map_err(|_| anyhow::anyhow!("bus lock poisoned"))?;
        let t = topics.entry(topic.to_string()).or_default();
        if t.groups.is_empty() {
            t.backlog.push(message);
        } else {
            // Dropping closed groups keeps a departed consumer from holding messages.
            t.groups.retain(|_, q| q.tx.send(message.clone()).is_ok());
        }
        Ok(())
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn enqueue(&self, topic: &str, key: &str, payload: Vec<u8>) -> super::Delivery {
        Box::pin(std::future::ready(self.put(topic, key, payload)))
    }

    async fn subscribe(&self, topic: &str, group: &str) -> anyhow::Result<Box<dyn Subscription>> {
        let mut topics = self
            .topics
            .lock()
            .map_err(|_| anyhow::anyhow!("bus lock poisoned"))?;
        let t = topics.entry(topic.to_string()).or_default();
        let queue = t
            .groups
            .entry(group.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                Queue {
                    tx,
                    rx: Arc::new(tokio::sync::Mutex::new(rx)),
                }
            })
            .clone();
        for m in t.backlog.drain(..) {
            let _ = queue.tx.send(m);
        }
        Ok(Box::new(MemorySubscription { rx: queue.rx }))
    }

    async fn ready(&self) -> bool {
        true
    }

    fn keeps_offsets(&self) -> bool {
        false
    }
}

struct MemorySubscription {
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Message> {
        self.rx.lock().await.recv().await
    }

    async fn commit(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn groups_each_see_every_message_and_members_share() {
        let bus = MemoryBus::new();
        bus.publish("t", "k", b"early".to_vec())
            .await
            .expect("publish");
        let mut a1 = bus.subscribe("t", "a").await.expect("sub");
        let mut a2 = bus.subscribe("t", "a").await.expect("sub");
        let mut b = bus.subscribe("t", "b").await.expect("sub");
        assert_eq!(a1.next().await.expect("msg").payload, b"early");
        bus.publish("t", "k", b"one".to_vec())
            .await
            .expect("publish");
        assert_eq!(b.next().await.expect("msg").payload, b"one");
        // One member of group `a` gets it, not both.
        let got = tokio::select! {
            m = a1.next() => m,
            m = a2.next() => m,
        };
        assert_eq!(got.expect("msg").payload, b"one");
    }
}
