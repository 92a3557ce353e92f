//! The AWS providers through the official SDK, in a real `lifeboat serve` whose clients
//! `AWS_ENDPOINT_URL` points at moto's server mode: RDS replica promotion (with the
//! replica lag CloudWatch reports), Aurora cluster failover, Route 53 UPSERT to INSYNC, and
//! an Auto Scaling group's desired capacity; dry runs that change nothing. moto lacks the
//! global-cluster switchover and failover calls, so `aurora-global` is tested against a
//! loopback stand-in of those RDS Query API actions.

#![cfg(feature = "aws")]

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_autoscaling::types::LifecycleState;
use aws_sdk_rds::config::Credentials;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use common::{Proc, changes, stage};
use serde_json::Value;

fn moto() -> Option<String> {
    for var in ["LIFEBOAT_TEST_AWS_URL", "LIFEBOAT_TEST_S3_URL"] {
        if let Ok(url) = std::env::var(var)
            && !url.is_empty()
        {
            return Some(url);
        }
    }
    common::required(
        "moto's server (LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL; scripts/s3.sh)",
    );
    None
}

async fn sdk(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

/// A name no other test (or earlier run against the same server) uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}{nanos}", std::process::id())
}

/// `lifeboat serve` with workflows `files`, its AWS clients pointed at `endpoint`.
struct Served {
    dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    _proc: Proc,
}

impl Served {
    async fn start(endpoint: &str, files: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        common::write_workflows(dir.path(), files);
        let port = common::free_port();
        let proc = common::serve(
            dir.path(),
            port,
            &[
                ("AWS_ENDPOINT_URL", endpoint),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
        );
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let ready =
            tokio::time::timeout(Duration::from_secs(30), common::until_ready(&client, &base))
                .await;
        if ready.is_err() {
            let log = std::fs::read_to_string(dir.path().join(format!("serve-{port}.log")));
            panic!("serve did not start: {}", log.unwrap_or_default());
        }
        Served {
            dir,
            base,
            client,
            _proc: proc,
        }
    }

    /// Runs `body` to its end; the run as the API shows it.
    async fn run(&self, body: Value) -> Value {
        self.run_until(body, |run| run["finished_at"].is_string())
            .await
    }

    /// Starts `body` and follows it until `done` holds; the run as the API shows it then.
    async fn run_until(&self, body: Value, done: impl Fn(&Value) -> bool) -> Value {
        let created: Value = self
            .client
            .post(format!("{}/api/v1/runs", self.base))
            .json(&body)
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("json");
        let id = created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{created:#}"))
            .to_string();
        let url = format!("{}/api/v1/runs/{id}", self.base);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok(r) = self.client.get(&url).send().await
                && let Ok(run) = r.json::<Value>().await
            {
                if done(&run) {
                    return run;
                }
                last = run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the run did not get there: {last:#}\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }
}

/// Puts a replica lag datapoint for an instance, as RDS would publish it.
async fn lag(conf: &SdkConfig, instance: &str, seconds: f64) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    aws_sdk_cloudwatch::Client::new(conf)
        .put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            MetricDatum::builder()
                .metric_name("ReplicaLag")
                .dimensions(
                    Dimension::builder()
                        .name("DBInstanceIdentifier")
                        .value(instance)
                        .build(),
                )
                .value(seconds)
                .timestamp(SystemTime::now().into())
                .build(),
        )
        .send()
        .await
        .expect("put a lag datapoint");
}

async fn replica_pair(conf: &SdkConfig, s: &str) -> String {
    let rds = aws_sdk_rds::Client::new(conf);
    rds.create_db_instance()
        .db_instance_identifier(format!("src-{s}"))
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin1")
        .master_user_password("password123")
        .send()
        .await
        .expect("create the source instance");
    rds.create_db_instance_read_replica()
        .db_instance_identifier(format!("rep-{s}"))
        .source_db_instance_identifier(format!("src-{s}"))
        .send()
        .await
        .expect("create the replica");
    format!("rep-{s}")
}

async fn aurora_writer(conf: &SdkConfig, cluster: &str) -> Option<String> {
    let out = aws_sdk_rds::Client::new(conf)
        .describe_db_clusters()
        .db_cluster_identifier(cluster)
        .send()
        .await
        .expect("describe");
    out.db_clusters()
        .first()?
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))?
        .db_instance_identifier()
        .map(str::to_string)
}

async fn records(conf: &SdkConfig, zone: &str, name: &str) -> Vec<(String, String, Option<i64>)> {
    let out = aws_sdk_route53::Client::new(conf)
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("list");
    let mut found: Vec<_> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == name)
        .flat_map(|r| {
            r.resource_records().iter().map(|v| {
                (
                    r.r#type().as_str().to_string(),
                    v.value().to_string(),
                    r.weight(),
                )
            })
        })
        .collect();
    found.sort();
    found
}

async fn asg(conf: &SdkConfig, name: &str) -> (i32, i32, i32, usize) {
    let out = aws_sdk_autoscaling::Client::new(conf)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .expect("describe");
    let g = out.auto_scaling_groups().first().expect("the group");
    let up = g
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
        .count();
    (
        g.min_size().unwrap_or(-1),
        g.max_size().unwrap_or(-1),
        g.desired_capacity().unwrap_or(-1),
        up,
    )
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn rds_aurora_route53_and_autoscaling_move_and_dry_runs_change_nothing() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let s = unique("t");

    let rds = aws_sdk_rds::Client::new(&conf);
    let cluster = format!("aur-{s}");
    rds.create_db_cluster()
        .db_cluster_identifier(&cluster)
        .engine("aurora-postgresql")
        .master_username("admin1")
        .master_user_password("password123")
        .send()
        .await
        .expect("create the cluster");
    for i in ["a", "b"] {
        rds.create_db_instance()
            .db_instance_identifier(format!("{cluster}-{i}"))
            .db_cluster_identifier(&cluster)
            .engine("aurora-postgresql")
            .db_instance_class("db.r6g.large")
            .send()
            .await
            .expect("create a cluster instance");
    }

    let r53 = aws_sdk_route53::Client::new(&conf);
    let (domain, zone) = hosted_zone(&conf, &s).await;
    let shop = format!("shop.{domain}");
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name(&shop)
                                .r#type(RrType::Cname)
                                .ttl(60)
                                .resource_records(
                                    ResourceRecord::builder()
                                        .value("lb-b.example.net")
                                        .build()
                                        .expect("record"),
                                )
                                .build()
                                .expect("set"),
                        )
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("the region-b record");

    let scaling = aws_sdk_autoscaling::Client::new(&conf);
    let group = format!("web-{s}");
    scaling
        .create_launch_configuration()
        .launch_configuration_name(&group)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .expect("launch configuration");
    scaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_configuration_name(&group)
        .min_size(1)
        .max_size(3)
        .desired_capacity(1)
        .availability_zones("us-east-1a")
        .send()
        .await
        .expect("the group");

    let targets = format!(
        r#"databases:
  orders: {{ provider: aurora, region: us-east-1, cluster: {cluster}, instance: {cluster}-b }}
clusters:
  web-region-a: {{ provider: autoscaling, group: {group} }}
endpoints:
  {shop}:
    provider: route53
    hosted_zone_id: "{zone}"
    ttl: 60
    regions: {{ region-a: {{ CNAME: [lb-a.example.net] }}, region-b: {{ CNAME: [lb-b.example.net] }} }}
"#
    );
    let workflow = format!(
        r#"name: aws-failover
stages:
  prescale:
    agent: capacity
    spec: {{ cluster: web-region-a, replicas: 4 }}
  failover-aurora:
    agent: database
    after: []
    spec: {{ cluster: orders, role: writer }}
  dial:
    agent: dial
    after: [prescale, failover-aurora]
    spec: {{ endpoint: {shop}, region: region-a }}
"#
    );
    let served = Served::start(
        &endpoint,
        &[
            ("aws.yaml", &workflow),
            (
                "groups.yaml",
                "groups:\n  orders:\n    workflows: { failover: aws-failover }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await;

    let drill = served
        .run(serde_json::json!({ "group": "orders", "dry_run": true }))
        .await;
    assert_eq!(drill["state"], "succeeded", "{drill:#}\n{}", served.log());
    assert_eq!(
        changes(stage(&drill, "prescale")),
        [
            format!("web-region-a ({group}) desired capacity: 1 → 4"),
            format!("{group} minimum: 1 → 4"),
            format!("{group} maximum: 3 → 4"),
        ]
    );
    assert_eq!(
        changes(stage(&drill, "failover-aurora")),
        [format!("orders writer: {cluster}-a → {cluster}-b")]
    );
    assert_eq!(
        changes(stage(&drill, "dial")),
        [format!("{shop} CNAME: lb-b.example.net → lb-a.example.net")]
    );
    assert_eq!(
        asg(&conf, &group).await,
        (1, 3, 1, 1),
        "the drill scaled nothing"
    );
    assert_eq!(
        aurora_writer(&conf, &cluster).await.as_deref(),
        Some(format!("{cluster}-a").as_str())
    );
    assert_eq!(
        records(&conf, &zone, &shop).await,
        [("CNAME".to_string(), "lb-b.example.net".to_string(), None)]
    );

    let run = served.run(serde_json::json!({ "group": "orders" })).await;
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", served.log());
    assert_eq!(asg(&conf, &group).await, (4, 4, 4, 4));
    assert_eq!(
        aurora_writer(&conf, &cluster).await.as_deref(),
        Some(format!("{cluster}-b").as_str())
    );
    assert_eq!(
        records(&conf, &zone, &shop).await,
        [("CNAME".to_string(), "lb-a.example.net".to_string(), None)]
    );
    let dialed = stage(&run, "dial")["message"].as_str().unwrap_or("");
    assert!(dialed.contains("INSYNC"), "{dialed}");

    // Again: what moved stays put.
    let again = served.run(serde_json::json!({ "group": "orders" })).await;
    assert_eq!(again["state"], "succeeded", "{again:#}");
    for name in ["prescale", "failover-aurora", "dial"] {
        let message = stage(&again, name)["message"].as_str().unwrap_or("");
        assert!(message.ends_with("nothing to do"), "{name}: {message}");
        assert!(changes(stage(&again, name)).is_empty(), "{name}");
    }
}

/// A hosted zone of its own for a test: its domain and id.
async fn hosted_zone(conf: &SdkConfig, s: &str) -> (String, String) {
    let domain = format!("{s}.example.com");
    let zone = aws_sdk_route53::Client::new(conf)
        .create_hosted_zone()
        .name(&domain)
        .caller_reference(s)
        .send()
        .await
        .expect("create the zone")
        .hosted_zone()
        .map(|z| z.id().to_string())
        .expect("a zone id");
    (domain, zone)
}

/// A service whose group `dial` points `name`, a route53 endpoint with this routing and
/// these regions, at `to` (a parameter a run may override).
async fn dial_service(
    endpoint: &str,
    name: &str,
    zone: &str,
    routing: &str,
    regions: &str,
    to: &str,
) -> Served {
    let targets = format!(
        "endpoints:\n  {name}:\n    provider: route53\n    hosted_zone_id: \"{zone}\"\n    routing: {routing}\n    regions: {regions}\n"
    );
    let workflow = format!(
        "name: dial\nparams: {{ to: {to} }}\nstages:\n  dial:\n    agent: dial\n    spec: {{ endpoint: {name}, region: \"${{to}}\" }}\n"
    );
    Served::start(
        endpoint,
        &[
            ("dial.yaml", &workflow),
            (
                "groups.yaml",
                "groups:\n  dial:\n    workflows: { failover: dial }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await
}

/// Whether moto has the instance promoted: the one effect it shows is that stopping it is
/// allowed (it refuses to stop a read replica).
async fn stoppable(conf: &SdkConfig, instance: &str) -> bool {
    aws_sdk_rds::Client::new(conf)
        .stop_db_instance()
        .db_instance_identifier(instance)
        .send()
        .await
        .is_ok()
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn rds_replicas_are_promoted_only_within_max_lag() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let s = unique("lag");
    let behind = replica_pair(&conf, &format!("{s}a")).await;
    lag(&conf, &behind, 30.0).await;
    let silent = replica_pair(&conf, &format!("{s}b")).await;
    let fresh = replica_pair(&conf, &format!("{s}c")).await;
    lag(&conf, &fresh, 2.0).await;
    let targets = format!(
        "databases:\n  behind: {{ provider: rds, instance: {behind} }}\n  silent: {{ provider: rds, instance: {silent} }}\n  fresh: {{ provider: rds, instance: {fresh} }}\n"
    );
    let workflow = "name: promote\nparams: { db: behind }\nstages:\n  promote:\n    agent: database\n    spec: { cluster: \"${db}\", role: writer, max_lag: 10s }\n    retry: { max_attempts: 1 }\n    timeout: 5s\n";
    let served = Served::start(
        &endpoint,
        &[
            ("promote.yaml", workflow),
            (
                "groups.yaml",
                "groups:\n  db:\n    workflows: { failover: promote }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await;
    let run = served.run(serde_json::json!({ "group": "db" })).await;
    assert_eq!(run["state"], "failed", "{run:#}");
    assert_eq!(
        stage(&run, "promote")["message"],
        format!("{behind}: replica lag 30.0s > 10s (ReplicaLag): not promoted (attempt 1 of 1)")
    );
    assert!(
        changes(stage(&run, "promote")).is_empty(),
        "refused before any change"
    );
    let run = served
        .run(serde_json::json!({ "group": "db", "params": { "db": "silent" } }))
        .await;
    assert_eq!(run["state"], "failed", "{run:#}");
    let message = stage(&run, "promote")["message"].as_str().unwrap_or("");
    assert!(
        message.contains("replica lag unknown: no ReplicaLag datapoint in the last 5 minutes"),
        "{message}"
    );
    assert!(
        !stoppable(&conf, &behind).await,
        "the replica too far behind was not promoted"
    );

    // Within max_lag: a dry run says what would change; the run promotes.
    let drill = served
        .run(serde_json::json!({ "group": "db", "dry_run": true, "params": { "db": "fresh" } }))
        .await;
    assert_eq!(drill["state"], "succeeded", "{drill:#}");
    assert_eq!(
        changes(stage(&drill, "promote")),
        [format!(
            "fresh ({fresh}): read replica of src-{s}c → standalone writer"
        )]
    );
    assert_eq!(
        stage(&drill, "promote")["report"]["checks"][1]["detail"],
        "2.0s ≤ 10s (ReplicaLag)"
    );
    assert!(
        !stoppable(&conf, &fresh).await,
        "the drill promoted nothing"
    );
    let run = served
        .run(serde_json::json!({ "group": "db", "params": { "db": "fresh" } }))
        .await;
    assert!(
        stoppable(&conf, &fresh).await,
        "PromoteReadReplica was called"
    );
    // moto keeps a promoted instance's ReadReplicaSourceDBInstanceIdentifier (real RDS
    // clears it), and that is what the provider waits for before it calls the replica a
    // writer: against moto the wait runs out, which is the safe way to be wrong.
    assert_eq!(
        stage(&run, "promote")["message"],
        format!(
            "timed out waiting until {fresh} is a standalone writer and available (attempt 1 of 1)"
        )
    );
}

/// Re-protect on RDS: the old writer is kept aside under a new identifier, and a read
/// replica of the new writer is made under its own; a dry run changes nothing, and a
/// second run finds it done.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn an_rds_writer_left_behind_is_made_a_read_replica_of_the_new_one() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let s = unique("rp");
    let new = replica_pair(&conf, &s).await;
    let old = format!("src-{s}");
    let targets = format!(
        "databases:\n  old: {{ provider: rds, instance: {old} }}\n  new: {{ provider: rds, instance: {new} }}\n"
    );
    let workflow = "name: reprotect\nstages:\n  reprotect:\n    agent: database\n    spec: { cluster: old, role: replica, source: new }\n    retry: { max_attempts: 1 }\n    timeout: 30s\n";
    let served = Served::start(
        &endpoint,
        &[
            ("reprotect.yaml", workflow),
            (
                "groups.yaml",
                "groups:\n  db:\n    workflows: { failover: reprotect }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await;
    let rds = aws_sdk_rds::Client::new(&conf);
    let source_of = async |id: &str| {
        rds.describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.db_instances()
                    .iter()
                    .find(|i| i.db_instance_identifier() == Some(id))
                    .map(|i| {
                        i.read_replica_source_db_instance_identifier()
                            .map(str::to_string)
                    })
            })
    };
    let drill = served
        .run(serde_json::json!({ "group": "db", "dry_run": true }))
        .await;
    assert_eq!(drill["state"], "succeeded", "{drill:#}");
    assert_eq!(
        source_of(&old).await,
        Some(None),
        "the dry run changed nothing"
    );

    let run = served.run(serde_json::json!({ "group": "db" })).await;
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", served.log());
    assert_eq!(source_of(&old).await, Some(Some(new.clone())));
    let kept = rds
        .describe_db_instances()
        .send()
        .await
        .expect("describe")
        .db_instances()
        .iter()
        .any(|i| {
            i.db_instance_identifier()
                .is_some_and(|n| n.starts_with(&format!("{old}-before-reprotect-")))
        });
    assert!(kept, "the old writer is kept aside");

    let again = served.run(serde_json::json!({ "group": "db" })).await;
    assert_eq!(
        stage(&again, "reprotect")["message"],
        format!("{old} is already a read replica of {new}; nothing to do")
    );
}

/// The data-loss gate on RDS: `ReplicaLag` is the recovery point; over `max_data_loss` the
/// promote stops for a person before anything changes, and a rejection promotes nothing.
#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn an_rds_replica_over_max_data_loss_stops_at_the_gate() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let behind = replica_pair(&conf, &unique("loss")).await;
    lag(&conf, &behind, 20.0).await;
    let targets = format!("databases:\n  behind: {{ provider: rds, instance: {behind} }}\n");
    let workflow = "name: promote\nstages:\n  promote:\n    agent: database\n    spec: { cluster: behind, role: writer, max_data_loss: 5s }\n    retry: { max_attempts: 1 }\n    timeout: 30s\n";
    let served = Served::start(
        &endpoint,
        &[
            ("promote.yaml", workflow),
            (
                "groups.yaml",
                "groups:\n  db:\n    workflows: { failover: promote }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await;
    let run = served
        .run_until(serde_json::json!({ "group": "db" }), |r| {
            r["state"] == "awaiting_approval"
        })
        .await;
    let promote = stage(&run, "promote");
    assert_eq!(promote["report"]["rpo"]["seconds"], 20.0, "{run:#}");
    assert_eq!(promote["report"]["rpo"]["basis"], "measured");
    assert_eq!(
        promote["held"],
        "promoting behind now loses about 20 s of writes (measured)"
    );
    assert!(changes(promote).is_empty(), "nothing changed: {promote:#}");
    let id = run["id"].as_str().unwrap_or_default();
    let rejected = served
        .client
        .post(format!("{}/api/v1/runs/{id}/reject", served.base))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("reject");
    assert_eq!(rejected.status().as_u16(), 200);
    assert!(
        !stoppable(&conf, &behind).await,
        "the replica behind was not promoted"
    );
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn weighted_route53_records_move_all_weight_to_the_region_dialed() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let s = unique("w");
    let (domain, zone) = hosted_zone(&conf, &s).await;
    let api = format!("api.{domain}");
    let regions = format!("{{ {s}-a: {{ A: [192.0.2.10] }}, {s}-b: {{ A: [198.51.100.10] }} }}");
    let served = dial_service(
        &endpoint,
        &api,
        &zone,
        "weighted",
        &regions,
        &format!("{s}-a"),
    )
    .await;
    let run = served.run(serde_json::json!({ "group": "dial" })).await;
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", served.log());
    assert_eq!(
        records(&conf, &zone, &api).await,
        [
            ("A".to_string(), "192.0.2.10".to_string(), Some(100)),
            ("A".to_string(), "198.51.100.10".to_string(), Some(0)),
        ]
    );
    let run = served
        .run(serde_json::json!({ "group": "dial", "params": { "to": format!("{s}-b") } }))
        .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(
        changes(stage(&run, "dial")),
        [
            format!("{api} A {s}-a: 192.0.2.10 weight 100 → 192.0.2.10 weight 0"),
            format!("{api} A {s}-b: 198.51.100.10 weight 0 → 198.51.100.10 weight 100"),
        ]
    );
    assert_eq!(
        records(&conf, &zone, &api).await,
        [
            ("A".to_string(), "192.0.2.10".to_string(), Some(0)),
            ("A".to_string(), "198.51.100.10".to_string(), Some(100)),
        ]
    );
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_AWS_URL or LIFEBOAT_TEST_S3_URL"]
async fn failover_route53_records_make_the_region_dialed_primary() {
    let Some(endpoint) = moto() else {
        return;
    };
    let conf = sdk(&endpoint).await;
    let s = unique("f");
    let (domain, zone) = hosted_zone(&conf, &s).await;
    let app = format!("app.{domain}");
    let regions = format!(
        "{{ {s}-a: {{ CNAME: [lb-a.example.net] }}, {s}-b: {{ CNAME: [lb-b.example.net] }} }}"
    );
    let served = dial_service(
        &endpoint,
        &app,
        &zone,
        "failover",
        &regions,
        &format!("{s}-b"),
    )
    .await;
    let run = served.run(serde_json::json!({ "group": "dial" })).await;
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", served.log());
    assert_eq!(
        changes(stage(&run, "dial")),
        [
            format!("{app} CNAME {s}-a: nothing → lb-a.example.net SECONDARY"),
            format!("{app} CNAME {s}-b: nothing → lb-b.example.net PRIMARY"),
        ]
    );
    let out = aws_sdk_route53::Client::new(&conf)
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .expect("list");
    let roles: Vec<(String, String)> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == app)
        .map(|r| {
            (
                r.set_identifier().unwrap_or("").to_string(),
                r.failover()
                    .map(|f| f.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        roles.contains(&(format!("{s}-b"), "PRIMARY".to_string())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(format!("{s}-a"), "SECONDARY".to_string())),
        "{roles:?}"
    );
}

/// The RDS Query API actions an `aurora-global` promote uses, over one global cluster of
/// two members; every call is recorded.
mod global_api {
    use super::*;
    use axum::extract::State;
    use axum::http::StatusCode;

    #[derive(Default)]
    pub struct Global {
        pub writer: String,
        pub calls: Vec<HashMap<String, String>>,
        /// Describes left that still show the move in progress.
        pub moving: u32,
    }

    pub type Shared = Arc<Mutex<Global>>;

    pub const A: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-a";
    pub const B: &str = "arn:aws:rds:us-west-2:123456789012:cluster:orders-b";

    fn cluster(g: &Global) -> String {
        let member = |arn: &str| {
            format!(
                "<GlobalClusterMember><DBClusterArn>{arn}</DBClusterArn><IsWriter>{}</IsWriter></GlobalClusterMember>",
                g.writer == arn
            )
        };
        let status = if g.moving > 0 {
            "switching-over"
        } else {
            "available"
        };
        format!(
            "<GlobalClusterIdentifier>orders</GlobalClusterIdentifier><Status>{status}</Status><GlobalClusterMembers>{}{}</GlobalClusterMembers>",
            member(A),
            member(B)
        )
    }

    async fn handle(State(shared): State<Shared>, body: String) -> (StatusCode, String) {
        let params: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let Ok(mut g) = shared.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
        };
        let action = params.get("Action").cloned().unwrap_or_default();
        g.calls.push(params.clone());
        let ns = "http://rds.amazonaws.com/doc/2014-10-31/";
        let result = match action.as_str() {
            "DescribeGlobalClusters" => {
                let body = format!(
                    "<GlobalClusters><GlobalClusterMember>{}</GlobalClusterMember></GlobalClusters>",
                    cluster(&g)
                );
                g.moving = g.moving.saturating_sub(1);
                body
            }
            "SwitchoverGlobalCluster" | "FailoverGlobalCluster" => {
                g.writer = params
                    .get("TargetDbClusterIdentifier")
                    .cloned()
                    .unwrap_or_default();
                g.moving = 2;
                format!("<GlobalCluster>{}</GlobalCluster>", cluster(&g))
            }
            other => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!(
                        "<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>{other}</Message></Error><RequestId>x</RequestId></ErrorResponse>"
                    ),
                );
            }
        };
        (
            StatusCode::OK,
            format!(
                "<{action}Response xmlns=\"{ns}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></{action}Response>"
            ),
        )
    }

    pub async fn start(writer: &str) -> (String, Shared) {
        let shared: Shared = Arc::new(Mutex::new(Global {
            writer: writer.to_string(),
            ..Global::default()
        }));
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), shared)
    }
}

#[tokio::test]
async fn aurora_global_switches_over_or_fails_over_with_allow_data_loss() {
    let (endpoint, shared) = global_api::start(global_api::A).await;
    let targets = format!(
        "databases:\n  orders-global:\n    provider: aurora-global\n    region: us-east-1\n    global_cluster: orders\n    members: {{ region-a: \"{}\", region-b: \"{}\" }}\n",
        global_api::A,
        global_api::B
    );
    let workflow = "name: global\nparams: { to: region-b, lossy: false }\nstages:\n  promote:\n    agent: database\n    spec: { cluster: orders-global, role: writer, member: \"${to}\", allow_data_loss: \"${lossy}\" }\n";
    let served = Served::start(
        &endpoint,
        &[
            ("global.yaml", workflow),
            (
                "groups.yaml",
                "groups:\n  orders:\n    workflows: { failover: global }\n",
            ),
            ("targets.yaml", &targets),
        ],
    )
    .await;

    let drill = served
        .run(serde_json::json!({ "group": "orders", "dry_run": true }))
        .await;
    assert_eq!(
        changes(stage(&drill, "promote")),
        ["orders-global primary: region-a → region-b"],
        "{drill:#}"
    );
    assert!(
        shared
            .lock()
            .expect("state")
            .calls
            .iter()
            .all(|c| c["Action"] == "DescribeGlobalClusters"),
        "a dry run only describes"
    );

    let run = served.run(serde_json::json!({ "group": "orders" })).await;
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", served.log());
    assert_eq!(
        stage(&run, "promote")["message"],
        "orders's primary moved from region-a to region-b by switchover"
    );
    assert_eq!(
        changes(stage(&run, "promote")),
        ["orders-global primary: region-a → region-b"]
    );
    let moves = |g: &global_api::Global| -> Vec<(String, Option<String>)> {
        g.calls
            .iter()
            .filter(|c| {
                c.get("Action")
                    .is_some_and(|a| a != "DescribeGlobalClusters")
            })
            .map(|c| (c["Action"].clone(), c.get("AllowDataLoss").cloned()))
            .collect()
    };
    assert_eq!(
        moves(&shared.lock().expect("state")),
        [("SwitchoverGlobalCluster".to_string(), None)]
    );

    let run = served
        .run(
            serde_json::json!({ "group": "orders", "params": { "to": "region-a", "lossy": true } }),
        )
        .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(
        moves(&shared.lock().expect("state")).last(),
        Some(&(
            "FailoverGlobalCluster".to_string(),
            Some("true".to_string())
        ))
    );

    // Already the primary: nothing is called but the describe.
    let before = moves(&shared.lock().expect("state")).len();
    let run = served
        .run(serde_json::json!({ "group": "orders", "params": { "to": "region-a" } }))
        .await;
    assert_eq!(
        stage(&run, "promote")["message"],
        "region-a is already the primary of global cluster orders; nothing to do"
    );
    assert_eq!(moves(&shared.lock().expect("state")).len(), before);
}
