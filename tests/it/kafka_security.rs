//! Lifeboat on a Kafka that asks for TLS and SASL, as managed clusters do: a whole run over
//! SASL_SSL with SCRAM-SHA-512, one over mutual TLS, and the one clear error (broker,
//! protocol, mechanism; never the password) that a wrong password, an untrusted CA or a
//! missing client certificate gets. The broker sits behind stunnel and a SASL front
//! (`tests/it/common/kafka_secure.rs`), since the test broker does neither itself.

use crate::common;

use std::time::Duration;

use common::cluster::Cluster;
use common::kafka_secure::{Front, PASSWORD, SecureKafka, USER};

/// A cluster of `serve` and an exec agent on `kafka`, with `security` in every process's
/// environment.
fn cluster(kafka: &SecureKafka, db: &str, security: &[(&'static str, String)]) -> Cluster {
    let mut cluster = Cluster::new(&kafka.brokers(), db, &[("one", 0), ("two", 0)]);
    for (k, v) in security {
        cluster.set_env(k, v.clone());
    }
    cluster.set_env(
        "LIFEBOAT_LISTEN",
        format!("127.0.0.1:{}", common::free_port()),
    );
    cluster
}

fn scram(kafka: &SecureKafka, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("LIFEBOAT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL".into()),
        ("LIFEBOAT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
        ("LIFEBOAT_KAFKA_SASL_USERNAME", USER.into()),
        ("LIFEBOAT_KAFKA_SASL_PASSWORD", password.into()),
        (
            "LIFEBOAT_KAFKA_SSL_CA_LOCATION",
            kafka.ca().display().to_string(),
        ),
    ]
}

/// Runs `lifeboat serve` and `lifeboat agent` as `cluster` sets them up, and returns what
/// each said as it exited 2.
fn refused_starts(cluster: &Cluster) -> Vec<String> {
    [vec!["serve"], vec!["agent", "--agents", "exec"]]
        .iter()
        .map(|args| {
            let (code, said) = cluster.lifeboat(args, Duration::from_secs(60));
            assert_eq!(code, Some(2), "{args:?}: {said}");
            said
        })
        .collect()
}

async fn whole_run(cluster: &mut Cluster) {
    let (_serve, base) = cluster.serve("serve").await;
    let _agent = cluster.agent("agent");
    let id = common::create_run_at(&cluster.client, &base, "shop").await;
    let done = cluster.finished(&base, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "succeeded", "{done:#}\n{}", cluster.logs());
    assert_eq!(cluster.ran(), ["one", "two"]);
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, tansu and stunnel4"]
async fn a_whole_run_over_sasl_ssl_with_scram_sha_512() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: true }).await else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let mut cluster = cluster(&kafka, &db, &scram(&kafka, PASSWORD));
    whole_run(&mut cluster).await;
    let (ok, failed) = kafka.logins();
    assert!(ok >= 2 && failed == 0, "logins: {ok} ok, {failed} failed");
    assert!(
        !cluster.logs().contains(PASSWORD),
        "a log shows the password"
    );
    drop(cluster);
    common::drop_postgres(&db_name).await;
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, tansu and stunnel4"]
async fn a_wrong_password_or_an_untrusted_ca_gets_one_clear_error() {
    let Some(kafka) = SecureKafka::start(Front::Sasl { tls: true }).await else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let wrong = "not-the-password-7c2d";
    let brokers = kafka.brokers();
    for said in refused_starts(&cluster(&kafka, &db, &scram(&kafka, wrong))) {
        for part in [
            format!("cannot reach Kafka at {brokers}"),
            "SASL_SSL".into(),
            "SCRAM-SHA-512 as `lifeboat`".into(),
        ] {
            assert!(said.contains(&part), "{part:?} missing from: {said}");
        }
        assert!(
            said.to_lowercase().contains("authentication"),
            "no reason in: {said}"
        );
        assert!(!said.contains(wrong), "the password was printed: {said}");
    }
    assert!(kafka.logins().1 >= 2, "the front saw no failed login");

    let mut untrusted = scram(&kafka, PASSWORD);
    untrusted.retain(|(k, _)| *k != "LIFEBOAT_KAFKA_SSL_CA_LOCATION");
    untrusted.push((
        "LIFEBOAT_KAFKA_SSL_CA_LOCATION",
        kafka.other_ca().display().to_string(),
    ));
    for said in refused_starts(&cluster(&kafka, &db, &untrusted)) {
        assert!(
            said.contains(&format!("cannot reach Kafka at {brokers}")),
            "{said}"
        );
        assert!(said.to_lowercase().contains("certificate"), "{said}");
        assert!(!said.contains(PASSWORD), "the password was printed: {said}");
    }
    common::drop_postgres(&db_name).await;
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_POSTGRES_URL, tansu and stunnel4"]
async fn a_whole_run_over_mutual_tls_and_none_without_a_client_certificate() {
    let Some(kafka) = SecureKafka::start(Front::Tls { mutual: true }).await else {
        return;
    };
    let Some((db, db_name)) = common::fresh_postgres().await else {
        return;
    };
    let path = |p: &std::path::Path| p.display().to_string();
    let mut tls = vec![
        ("LIFEBOAT_KAFKA_SECURITY_PROTOCOL", "SSL".to_string()),
        ("LIFEBOAT_KAFKA_SSL_CA_LOCATION", path(kafka.ca())),
    ];
    for said in refused_starts(&cluster(&kafka, &db, &tls)) {
        assert!(
            said.contains(&format!("cannot reach Kafka at {} (SSL", kafka.brokers())),
            "{said}"
        );
        assert!(said.contains("certificate required"), "{said}");
    }
    tls.push((
        "LIFEBOAT_KAFKA_SSL_CERTIFICATE_LOCATION",
        path(kafka.client_cert()),
    ));
    tls.push(("LIFEBOAT_KAFKA_SSL_KEY_LOCATION", path(kafka.client_key())));
    let mut cluster = cluster(&kafka, &db, &tls);
    whole_run(&mut cluster).await;
    drop(cluster);
    common::drop_postgres(&db_name).await;
}
