//! The secure Kafka fixture itself: a real Kafka client (librdkafka) gets through its TLS
//! and SASL fronts with the right credentials, and is turned away with a wrong password or
//! a CA it should not trust. Runs where tansu and stunnel4 are installed.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka_secure::{Front, SecureKafka};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long a client waits for anything here: everything is on loopback.
const WAIT: Duration = Duration::from_secs(5);
/// How long a refused client tries: its first attempt fails within milliseconds.
const REFUSED_WAIT: Duration = Duration::from_secs(2);

/// Creates a topic, produces one message and reads it back, all through `config`.
async fn round_trip(config: &ClientConfig) {
    let topic = format!("secure.{}", uuid::Uuid::now_v7().simple());
    create_topic(config, &topic).await;
    let producer: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "5000")
        .create()
        .expect("a producer");
    producer
        .send(FutureRecord::to(&topic).key("k").payload("hello"), WAIT)
        .await
        .expect("the message is delivered");
    let consumer: StreamConsumer = config
        .clone()
        .set("group.id", format!("group-{topic}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // tansu answers a fetch only once the client's wait is over.
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("a consumer");
    let mut partitions = TopicPartitionList::new();
    partitions
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("partition 0");
    consumer.assign(&partitions).expect("assign");
    let message = tokio::time::timeout(WAIT, consumer.recv())
        .await
        .expect("a message in time")
        .expect("a message");
    assert_eq!(message.payload(), Some(&b"hello"[..]));
}

async fn create_topic(config: &ClientConfig, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = config.create().expect("an admin client");
    let options = AdminOptions::new().request_timeout(Some(WAIT));
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("create topics");
    for result in created {
        result.expect("the topic is created");
    }
}

/// What librdkafka reports to its client context: errors, and log lines at level error
/// or worse.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, line: &str) {
        if (level as i32) <= RDKafkaLogLevel::Error as i32 {
            self.push(format!("log {facility}: {line}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.push(format!("error {error:?}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

impl Errors {
    fn push(&self, line: String) {
        self.0.lock().expect("the error list").push(line);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("the error list").clone()
    }
}

/// Asks for metadata, which needs a working connection: the error it ends with, and what
/// librdkafka reported meanwhile. Panics if the metadata comes.
fn metadata_error(config: &ClientConfig) -> (KafkaError, Vec<String>) {
    let errors = Errors::default();
    let consumer: BaseConsumer<Errors> = config
        .create_with_context(errors.clone())
        .expect("a consumer");
    let started = Instant::now();
    let result = consumer.client().fetch_metadata(None, REFUSED_WAIT);
    let elapsed = started.elapsed();
    let Err(error) = result else {
        panic!("metadata came without a good connection");
    };
    // Error events reach the context only when the client is polled.
    for _ in 0..3 {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let reported = errors.all();
    eprintln!("metadata failed after {elapsed:?}: {error}; reported: {reported:#?}");
    (error, reported)
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn sasl_ssl_with_scram_sha_512_round_trips() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: true }).await else {
        return;
    };
    round_trip(&kafka.client_config("SCRAM-SHA-512")).await;
    let (ok, failed) = kafka.logins();
    assert!(ok > 0 && failed == 0, "logins: {ok} ok, {failed} failed");
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn sasl_plaintext_with_plain_round_trips() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: false }).await else {
        return;
    };
    round_trip(&kafka.client_config("PLAIN")).await;
    let (ok, failed) = kafka.logins();
    assert!(ok > 0 && failed == 0, "logins: {ok} ok, {failed} failed");
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn sasl_plaintext_with_scram_sha_256_logs_in() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: false }).await else {
        return;
    };
    let producer: BaseProducer = kafka
        .client_config("SCRAM-SHA-256")
        .create()
        .expect("a producer");
    producer
        .client()
        .fetch_metadata(None, WAIT)
        .expect("metadata after a SCRAM-SHA-256 login");
    assert!(kafka.logins().0 > 0, "logins: {:?}", kafka.logins());
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn mutual_tls_needs_a_client_certificate() {
    let Some(kafka) = SecureKafka::start(Front::Tls { mutual: true }).await else {
        return;
    };
    round_trip(&kafka.client_config("")).await;

    let mut anonymous = kafka.client_config("");
    anonymous
        .remove("ssl.certificate.location")
        .remove("ssl.key.location");
    let (_, reported) = metadata_error(&anonymous);
    assert!(
        reported.iter().any(|e| e.contains("certificate required")),
        "the client says why: {reported:?}\n{}",
        kafka.logs()
    );
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn a_wrong_password_is_refused() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: true }).await else {
        return;
    };
    let mut config = kafka.client_config("SCRAM-SHA-512");
    config.set("sasl.password", "not the password");
    let (_, reported) = metadata_error(&config);
    let (ok, failed) = kafka.logins();
    assert!(ok == 0 && failed > 0, "logins: {ok} ok, {failed} failed");
    assert!(
        reported.iter().any(|e| e.contains("invalid credentials")),
        "the client says why: {reported:?}"
    );
}

#[tokio::test]
#[ignore = "needs tansu and stunnel4"]
async fn an_untrusted_ca_is_refused() {
    let Some(kafka) = SecureKafka::start(Front::Tls { mutual: false }).await else {
        return;
    };
    let mut config = kafka.client_config("");
    let other_ca = kafka.other_ca().to_str().expect("a UTF-8 path").to_string();
    config.set("ssl.ca.location", other_ca);
    let (_, reported) = metadata_error(&config);
    assert!(
        reported
            .iter()
            .any(|e| e.contains("certificate verify failed")),
        "the client says why: {reported:?}"
    );
}
