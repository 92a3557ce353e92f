//! The Kafka bus (rdkafka). Topics are created at start-up when missing; messages are keyed
//! by run id so one run's messages stay in order on one partition; the producer is
//! idempotent with `acks=all`; consumers of one group share the topic's partitions, and
//! offsets are committed only when the consumer says the message's effect is stored.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::kafka_config::{Security, Watch};
use super::{Bus, EVENTS_TOPIC, Message, PROGRESS_TOPIC, Subscription, work_topic};

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    pub brokers: String,
    pub partitions: i32,
    pub replication: i32,
    /// How long a consumer's fetch may wait for data: the floor of delivery latency.
    pub fetch_wait_ms: u32,
    /// A prefix for every topic and consumer group, so that several installations
    /// (staging, production) can share one cluster. None: the names the README gives.
    pub namespace: Option<String>,
    /// TLS and SASL.
    pub security: Security,
    /// Any other librdkafka property, from `kafka_properties`.
    pub properties: Vec<(String, String)>,
}

impl KafkaSettings {
    pub fn new(brokers: &str) -> Self {
        KafkaSettings {
            brokers: brokers.to_string(),
            partitions: 6,
            replication: 1,
            fetch_wait_ms: 5,
            namespace: None,
            security: Security::default(),
            properties: Vec::new(),
        }
    }

    /// A client's configuration: the brokers, how to reach them, and the extra properties.
    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        self.security.apply(&mut config);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// Where and how, for messages: never a secret.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.brokers, self.security)
    }

    /// The fetch wait of a consumer of `topic` (its name before the namespace).
    fn fetch_wait_for(&self, topic: &str) -> u32 {
        if topic == EVENTS_TOPIC {
            self.fetch_wait_ms.max(EVENTS_FETCH_WAIT_MS)
        } else {
            self.fetch_wait_ms
        }
    }

    /// A topic or group name inside the namespace.
    pub fn name(&self, base: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{base}"),
            None => base.to_string(),
        }
    }
}

/// The fetch wait of a consumer of lifecycle events. Events are read by people and
/// notifiers, to whom a tenth of a second is nothing; a broker that holds every fetch for
/// the whole wait (tansu does) is then asked twenty times less often by each of them, and
/// has that time for the work and progress that move stages. A broker that answers as soon
/// as data arrives (Apache Kafka) delivers them no later for it.
const EVENTS_FETCH_WAIT_MS: u32 = 100;

pub struct KafkaBus {
    settings: KafkaSettings,
    producer: FutureProducer<Watch>,
}

/// How long start-up waits for the cluster to answer before it says why it could not.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Every topic Lifeboat uses, for these agent kinds.
pub fn topics(agents: &[&str]) -> Vec<String> {
    let mut t: Vec<String> = agents.iter().map(|a| work_topic(a)).collect();
    t.push(PROGRESS_TOPIC.to_string());
    t.push(EVENTS_TOPIC.to_string());
    t
}

impl KafkaBus {
    /// Connects, creating any missing topic of `topics`.
    pub async fn connect(settings: KafkaSettings, topics: &[String]) -> anyhow::Result<KafkaBus> {
        let existing = probe(&settings).await?;
        let admin: AdminClient<Watch> = settings
            .client()
            .create_with_context(Watch::default())
            .with_context(|| format!("cannot set up a Kafka client for {}", settings.describe()))?;
        // Only the missing ones: a cluster whose ACLs give no CREATE, with the topics made
        // by its operators, must not fail here.
        let names: Vec<String> = topics
            .iter()
            .map(|t| settings.name(t))
            .filter(|t| !existing.contains(t))
            .collect();
        let new: Vec<NewTopic> = names
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    settings.partitions,
                    TopicReplication::Fixed(settings.replication),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = if new.is_empty() {
            Vec::new()
        } else {
            admin
                .create_topics(&new, &opts)
                .await
                .with_context(|| format!("cannot create topics on {}", settings.describe()))?
        };
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
            }
        }
        let producer: FutureProducer<Watch> = settings
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Latency over batching: a DR step should leave at once.
            .set("linger.ms", "0")
            .set("message.timeout.ms", "30000")
            .create_with_context(Watch::default())
            .context("cannot create the Kafka producer")?;
        Ok(KafkaBus { settings, producer })
    }
}

/// Asks the cluster for its metadata, and says why it could not: a refused login or an
/// untrusted certificate fails the call only by its timeout, and the reason reaches the
/// client's context when the client is polled.
async fn probe(settings: &KafkaSettings) -> anyhow::Result<HashSet<String>> {
    let watch = Watch::default();
    let client: BaseProducer<Watch> = settings
        .client()
        .create_with_context(watch.clone())
        .with_context(|| format!("cannot set up a Kafka client for {}", settings.describe()))?;
    let reached = tokio::task::spawn_blocking(move || {
        let reached = client
            .client()
            .fetch_metadata(None, CONNECT_WAIT)
            .map(|m| m.topics().iter().map(|t| t.name().to_string()).collect());
        if reached.is_err() {
            for _ in 0..5 {
                client.poll(Duration::from_millis(100));
            }
        }
        reached
    })
    .await
    .context("the Kafka metadata probe failed")?;
    match reached {
        Ok(topics) => Ok(topics),
        Err(e) => {
            let why = watch.last_error().unwrap_or_else(|| e.to_string());
            anyhow::bail!("cannot reach Kafka at {}: {why}", settings.describe())
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    fn enqueue(&self, topic: &str, key: &str, payload: Vec<u8>) -> super::Delivery {
        let topic = self.settings.name(topic);
        let queued = self
            .producer
            .send_result(FutureRecord::to(&topic).key(key).payload(&payload));
        match queued {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(anyhow::anyhow!("publish to {topic} failed: {e}")),
                    Err(_) => Err(anyhow::anyhow!(
                        "publish to {topic} failed: the producer closed"
                    )),
                }
            }),
            Err((e, _)) => Box::pin(std::future::ready(Err(anyhow::anyhow!(
                "publish to {topic} failed: {e}"
            )))),
        }
    }

    async fn subscribe(&self, topic: &str, group: &str) -> anyhow::Result<Box<dyn Subscription>> {
        let fetch_wait_ms = self.settings.fetch_wait_for(topic);
        let consumer: StreamConsumer<Watch> = self
            .settings
            .client()
            .set("group.id", self.settings.name(group))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .create_with_context(Watch::default())
            .context("cannot create a Kafka consumer")?;
        let topic = self.settings.name(topic);
        consumer
            .subscribe(&[&topic])
            .with_context(|| format!("cannot subscribe to {topic}"))?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            pending: HashMap::new(),
        }))
    }

    fn keeps_offsets(&self) -> bool {
        true
    }

    async fn ready(&self) -> bool {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

struct KafkaSubscription {
    consumer: StreamConsumer<Watch>,
    /// The next offset to commit, per partition, for messages handed out so far.
    pending: HashMap<(String, i32), i64>,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Option<Message> {
        loop {
            match self.consumer.recv().await {
                Ok(m) => {
                    self.pending
                        .insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                    return Some(Message {
                        topic: m.topic().to_string(),
                        key: m
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default(),
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    });
                }
                Err(e) => {
                    // A broker outage: librdkafka reconnects by itself; keep asking.
                    tracing::warn!(error = %e, "Kafka consume error; retrying.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn commit(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.pending {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async)?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_consumers_of_events_wait_longer() {
        let mut settings = KafkaSettings::new("127.0.0.1:9092");
        settings.fetch_wait_ms = 1;
        assert_eq!(settings.fetch_wait_for(&work_topic("database")), 1);
        assert_eq!(settings.fetch_wait_for(PROGRESS_TOPIC), 1);
        assert_eq!(settings.fetch_wait_for(EVENTS_TOPIC), EVENTS_FETCH_WAIT_MS);
        settings.fetch_wait_ms = 500;
        assert_eq!(settings.fetch_wait_for(EVENTS_TOPIC), 500);
    }
}
