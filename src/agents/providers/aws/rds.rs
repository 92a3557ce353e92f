//! Amazon RDS and Aurora:
//! - `rds`: promote a read replica to a standalone writer, then wait until it is available;
//! - `aurora`: promote a cross-region replica cluster, or fail a cluster over to a named
//!   instance, then wait until it is available;
//! - `aurora-global`: switch a global database's primary to a member (planned), or fail
//!   over to it with `allow_data_loss`, then wait.
//!
//! A demote has no meaning here: another member's promotion is what fences the old writer.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbInstance, GlobalCluster};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::lag::{self, Metric};
use super::{config, failure, wait_until};
use crate::agents::providers::capability::{Database, Demote, Promote, Provider, Reprotect};
use crate::agents::providers::data_loss;
use crate::agents::work::{Failure, Work};
use crate::domain::{Basis, RecoveryPoint};
use crate::workflow::{SpecError, Target, kinds};

pub const RDS: Provider<dyn Database> = Provider {
    name: "rds",
    check: |f| kinds::parse::<RdsTarget>(f).map(drop),
    build: |t| Ok(Arc::new(Rds(parse(t)?))),
};

pub const AURORA: Provider<dyn Database> = Provider {
    name: "aurora",
    check: |f| kinds::parse::<AuroraTarget>(f).map(drop),
    build: |t| Ok(Arc::new(Aurora(parse(t)?))),
};

pub const AURORA_GLOBAL: Provider<dyn Database> = Provider {
    name: "aurora-global",
    check: check_global,
    build: |t| Ok(Arc::new(AuroraGlobal(parse(t)?))),
};

fn parse<T: for<'de> Deserialize<'de>>(t: &Target) -> Result<T, Failure> {
    kinds::parse(&t.fields).map_err(Failure::bad_spec)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RdsTarget {
    #[serde(default)]
    region: Option<String>,
    instance: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuroraTarget {
    #[serde(default)]
    region: Option<String>,
    cluster: String,
    /// The instance a failover makes the writer; a replica cluster is promoted instead.
    #[serde(default)]
    instance: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalTarget {
    #[serde(default)]
    region: Option<String>,
    global_cluster: String,
    /// Each member cluster's ARN, by the name a stage's `member` uses.
    members: IndexMap<String, String>,
}

fn check_global(fields: &Value) -> Result<(), SpecError> {
    let t: GlobalTarget = kinds::parse(fields)?;
    if t.members.is_empty() {
        return Err(SpecError::at(
            &["members"],
            "list at least one member cluster",
        ));
    }
    Ok(())
}

fn no_demote(kind: &str, name: &str, d: &Demote) -> Result<String, Failure> {
    if d.unreachable_ok {
        return Ok(format!(
            "{name}: a {kind} writer is fenced by promoting another; nothing to do here"
        ));
    }
    Err(Failure::permanent(format!(
        "database `{name}`: a {kind} target cannot be demoted; promoting the other side fences it"
    )))
}

pub struct Rds(RdsTarget);

/// The instance, or `None` when there is none of that identifier.
async fn find_instance(client: &Client, id: &str) -> Result<Option<DbInstance>, Failure> {
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .db_instances()
            .iter()
            .find(|i| i.db_instance_identifier() == Some(id))
            .cloned()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
        {
            Ok(None)
        }
        Err(e) => Err(failure(&format!("describe DB instance {id}"), e)),
    }
}

async fn instance(client: &Client, id: &str) -> Result<DbInstance, Failure> {
    let out = client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .map_err(|e| failure(&format!("describe DB instance {id}"), e))?;
    the_one(
        out.db_instances(),
        |i| i.db_instance_identifier(),
        "DB instance",
        id,
    )
}

/// The item a describe call asked for by id. Looked up rather than taken first: some
/// implementations of the API ignore the filter and list everything.
fn the_one<T: Clone>(
    items: &[T],
    id_of: impl Fn(&T) -> Option<&str>,
    what: &str,
    id: &str,
) -> Result<T, Failure> {
    items
        .iter()
        .find(|i| id_of(i) == Some(id))
        .cloned()
        .ok_or_else(|| Failure::permanent(format!("{what} {id} not found")))
}

/// A planned switchover (fence, catch up, promote) is PostgreSQL's and Aurora global
/// database's; RDS and Aurora promote what they have.
fn no_switchover(target: &Target, p: &Promote) -> Result<(), Failure> {
    if p.switchover {
        return Err(Failure::permanent(format!(
            "database `{}`: the {} provider has no planned switchover; promote it without `switchover`",
            target.name, target.provider
        )));
    }
    Ok(())
}

#[async_trait]
impl Database for Rds {
    async fn promote(&self, target: &Target, p: &Promote, work: &Work) -> Result<String, Failure> {
        no_switchover(target, p)?;
        let id = &self.0.instance;
        let conf = config(self.0.region.as_deref()).await;
        let client = Client::new(&conf);
        let before = instance(&client, id).await?;
        let status = before.db_instance_status().unwrap_or("unknown").to_string();
        let Some(source) = before.read_replica_source_db_instance_identifier() else {
            if status != "available" {
                return wait_standalone(&client, id, "(no source)", work).await;
            }
            work.check("role", true, format!("{id} is a standalone writer"))
                .await;
            return Ok(format!(
                "{id} is already a standalone writer; nothing to do"
            ));
        };
        work.check(
            "read replica",
            true,
            format!("{id} replicates {source} ({status})"),
        )
        .await;
        if status != "available" && !work.request.dry_run {
            // An earlier attempt's promotion (or another change) is under way: calling
            // again would be refused; wait for it instead.
            work.say(format!(
                "{id} is {status}: a change is under way; waiting for it"
            ))
            .await;
            return wait_standalone(&client, id, source, work).await;
        }
        let metric = Metric {
            name: "ReplicaLag",
            dimension: "DBInstanceIdentifier",
            id,
            unit_seconds: 1.0,
        };
        lag::check(&conf, &metric, p.max_lag, work).await?;
        data_loss::guard(&target.name, p, work, || {
            lag::recovery_point(&conf, std::slice::from_ref(&metric))
        })
        .await?;
        work.change(
            format!("{} ({id})", target.name),
            format!("read replica of {source}"),
            "standalone writer",
        )
        .await;
        if work.request.dry_run {
            return Ok(format!("would promote {id}; nothing changed"));
        }
        client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| failure(&format!("promote {id}"), e))?;
        work.say(format!("promoting {id}")).await;
        wait_standalone(&client, id, source, work).await
    }

    async fn demote(&self, target: &Target, d: &Demote, _: &Work) -> Result<String, Failure> {
        no_demote("rds", &target.name, d)
    }

    /// RDS cannot turn an instance into a replica: the old writer is renamed aside (kept,
    /// with the writes the failover did not carry), and a read replica of the new writer is
    /// made under its identifier, with its instance class.
    async fn reprotect(
        &self,
        target: &Target,
        r: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        let id = &self.0.instance;
        let source: RdsTarget = parse(&r.source)?;
        let src = &source.instance;
        let conf = config(self.0.region.as_deref()).await;
        let client = Client::new(&conf);
        let writer = instance(&Client::new(&config(source.region.as_deref()).await), src).await?;
        work.check(
            "source",
            writer.db_instance_status() == Some("available"),
            format!(
                "{src} is {}",
                writer.db_instance_status().unwrap_or("unknown")
            ),
        )
        .await;
        // Across regions a replica names its source by ARN.
        let source_ref = match (&self.0.region, &source.region) {
            (a, b) if a == b => src.clone(),
            _ => writer
                .db_instance_arn()
                .map(str::to_string)
                .unwrap_or_else(|| src.clone()),
        };
        let now = find_instance(&client, id).await?;
        if let Some(now) = &now {
            let replicates = now.read_replica_source_db_instance_identifier();
            if replicates == Some(src.as_str()) || replicates == Some(source_ref.as_str()) {
                work.check("role", true, format!("{id} replicates {src}"))
                    .await;
                return Ok(format!(
                    "{id} is already a read replica of {src}; nothing to do"
                ));
            }
        }
        let class = now
            .as_ref()
            .and_then(|i| i.db_instance_class())
            .or(writer.db_instance_class())
            .unwrap_or_default()
            .to_string();
        let aside = format!("{id}-before-reprotect-{}", crate::clock::unix_seconds());
        if now.is_some() {
            work.change(format!("{} ({id})", target.name), id.clone(), aside.clone())
                .await;
        }
        work.change(
            format!("{} ({id})", target.name),
            "not a replica",
            format!("read replica of {src} ({class})"),
        )
        .await;
        if work.request.dry_run {
            return Ok(format!(
                "would keep {id} aside and make {id} a read replica of {src}; nothing changed"
            ));
        }
        if now.is_some() {
            client
                .modify_db_instance()
                .db_instance_identifier(id)
                .new_db_instance_identifier(&aside)
                .apply_immediately(true)
                .send()
                .await
                .map_err(|e| failure(&format!("rename {id} to {aside}"), e))?;
            work.say(format!("renamed {id} to {aside}, kept")).await;
            wait_until(work, &format!("{id} is free"), || async {
                Ok(find_instance(&client, id)
                    .await?
                    .is_none()
                    .then(String::new))
            })
            .await?;
        }
        let mut create = client
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(&source_ref);
        if !class.is_empty() {
            create = create.db_instance_class(&class);
        }
        create
            .send()
            .await
            .map_err(|e| failure(&format!("create read replica {id} of {src}"), e))?;
        work.say(format!("creating {id} as a read replica of {src}"))
            .await;
        wait_until(
            work,
            &format!("{id} is an available read replica of {src}"),
            || async {
                let now = instance(&client, id).await?;
                Ok((now.db_instance_status() == Some("available")
                    && now.read_replica_source_db_instance_identifier().is_some())
                .then(|| {
                    format!(
                        "{id} is a read replica of {src} again; the old {id} is kept as {aside}"
                    )
                }))
            },
        )
        .await
    }
}

/// Waits until the instance is available and no longer names a source: right after the
/// call it may still read `available` as a replica, which is not yet a writer.
async fn wait_standalone(
    client: &Client,
    id: &str,
    source: &str,
    work: &Work,
) -> Result<String, Failure> {
    wait_until(
        work,
        &format!("{id} is a standalone writer and available"),
        || async {
            let now = instance(client, id).await?;
            Ok((now.db_instance_status() == Some("available")
                && now.read_replica_source_db_instance_identifier().is_none())
            .then(|| format!("promoted {id} (was a read replica of {source}); it is available")))
        },
    )
    .await
}

pub struct Aurora(AuroraTarget);

async fn cluster(client: &Client, id: &str) -> Result<DbCluster, Failure> {
    let out = client
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| failure(&format!("describe DB cluster {id}"), e))?;
    the_one(
        out.db_clusters(),
        |c| c.db_cluster_identifier(),
        "DB cluster",
        id,
    )
}

fn writer(c: &DbCluster) -> Option<String> {
    c.db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier().map(str::to_string))
}

#[async_trait]
impl Database for Aurora {
    async fn promote(&self, target: &Target, p: &Promote, work: &Work) -> Result<String, Failure> {
        no_switchover(target, p)?;
        let id = &self.0.cluster;
        let conf = config(self.0.region.as_deref()).await;
        let client = Client::new(&conf);
        let before = cluster(&client, id).await?;
        // A change under way (an earlier attempt's, say) is waited for, not asked again.
        let busy = before.status() != Some("available");
        let metric = Metric {
            name: "AuroraReplicaLag",
            dimension: "DBClusterIdentifier",
            id,
            unit_seconds: 0.001,
        };
        if let Some(source) = before.replication_source_identifier() {
            work.check("replica cluster", true, format!("{id} replicates {source}"))
                .await;
            lag::check(&conf, &metric, p.max_lag, work).await?;
            data_loss::guard(&target.name, p, work, || {
                lag::recovery_point(&conf, std::slice::from_ref(&metric))
            })
            .await?;
            work.change(
                format!("{} ({id})", target.name),
                format!("replica cluster of {source}"),
                "standalone cluster",
            )
            .await;
            if work.request.dry_run {
                return Ok(format!("would promote cluster {id}; nothing changed"));
            }
            if busy {
                work.say(format!(
                    "cluster {id} is busy: a change is under way; waiting for it"
                ))
                .await;
            } else {
                client
                    .promote_read_replica_db_cluster()
                    .db_cluster_identifier(id)
                    .send()
                    .await
                    .map_err(|e| failure(&format!("promote cluster {id}"), e))?;
                work.say(format!("promoting cluster {id}")).await;
            }
            return wait_until(work, &format!("cluster {id} is available"), || async {
                let now = cluster(&client, id).await?;
                Ok((now.status() == Some("available")
                    && now.replication_source_identifier().is_none())
                .then(|| {
                    format!("promoted cluster {id} (was a replica of {source}); it is available")
                }))
            })
            .await;
        }
        let current = writer(&before);
        let Some(wanted) = &self.0.instance else {
            work.check("role", true, format!("{id} is a standalone cluster"))
                .await;
            return Ok(format!("cluster {id} is already a writer; nothing to do"));
        };
        if current.as_deref() == Some(wanted.as_str()) {
            work.check("writer", true, format!("{wanted} is the writer of {id}"))
                .await;
            return Ok(format!(
                "{wanted} is already the writer of {id}; nothing to do"
            ));
        }
        if !before
            .db_cluster_members()
            .iter()
            .any(|m| m.db_instance_identifier() == Some(wanted.as_str()))
        {
            work.check("member", false, format!("{wanted} is not in cluster {id}"))
                .await;
            return Err(Failure::permanent(format!(
                "instance {wanted} is not a member of cluster {id}"
            )));
        }
        work.check("member", true, format!("{wanted} is a reader of {id}"))
            .await;
        lag::check(&conf, &metric, p.max_lag, work).await?;
        data_loss::guard(&target.name, p, work, || {
            lag::recovery_point(&conf, std::slice::from_ref(&metric))
        })
        .await?;
        let from = current.unwrap_or_else(|| "no writer".into());
        work.change(
            format!("{} writer", target.name),
            from.clone(),
            wanted.clone(),
        )
        .await;
        if work.request.dry_run {
            return Ok(format!("would fail {id} over to {wanted}; nothing changed"));
        }
        if busy {
            work.say(format!(
                "cluster {id} is busy: a change is under way; waiting for it"
            ))
            .await;
        } else {
            client
                .failover_db_cluster()
                .db_cluster_identifier(id)
                .target_db_instance_identifier(wanted)
                .send()
                .await
                .map_err(|e| failure(&format!("fail over cluster {id}"), e))?;
            work.say(format!("failing {id} over to {wanted}")).await;
        }
        wait_until(work, &format!("{wanted} is the writer of {id}"), || async {
            let now = cluster(&client, id).await?;
            Ok(
                (now.status() == Some("available") && writer(&now).as_deref() == Some(wanted))
                    .then(|| format!("failed {id} over from {from} to {wanted}; it is available")),
            )
        })
        .await
    }

    async fn demote(&self, target: &Target, d: &Demote, _: &Work) -> Result<String, Failure> {
        no_demote("aurora", &target.name, d)
    }
}

pub struct AuroraGlobal(GlobalTarget);

async fn global(client: &Client, id: &str) -> Result<GlobalCluster, Failure> {
    let out = client
        .describe_global_clusters()
        .global_cluster_identifier(id)
        .send()
        .await
        .map_err(|e| failure(&format!("describe global cluster {id}"), e))?;
    the_one(
        out.global_clusters(),
        |g| g.global_cluster_identifier(),
        "global cluster",
        id,
    )
}

fn global_writer(g: &GlobalCluster) -> Option<String> {
    g.global_cluster_members()
        .iter()
        .find(|m| m.is_writer() == Some(true))
        .and_then(|m| m.db_cluster_arn().map(str::to_string))
}

#[async_trait]
impl Database for AuroraGlobal {
    async fn promote(&self, target: &Target, p: &Promote, work: &Work) -> Result<String, Failure> {
        let t = &self.0;
        let id = &t.global_cluster;
        let Some(member) = p.member.as_deref() else {
            return Err(Failure::permanent(format!(
                "database `{}`: an aurora-global promote needs `member` in the stage's spec ({})",
                target.name,
                t.members.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let Some(arn) = t.members.get(member) else {
            return Err(Failure::permanent(format!(
                "database `{}` has no member `{member}` ({})",
                target.name,
                t.members.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        };
        let conf = config(t.region.as_deref()).await;
        let client = Client::new(&conf);
        let before = global(&client, id).await?;
        let name_of = |a: &str| {
            t.members
                .iter()
                .find(|(_, v)| v.as_str() == a)
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| a.to_string())
        };
        let current = global_writer(&before);
        if current.as_deref() == Some(arn.as_str()) {
            work.check("writer", true, format!("{member} is the primary of {id}"))
                .await;
            return Ok(format!(
                "{member} is already the primary of global cluster {id}; nothing to do"
            ));
        }
        if !before
            .global_cluster_members()
            .iter()
            .any(|m| m.db_cluster_arn() == Some(arn.as_str()))
        {
            work.check("member", false, format!("{arn} is not in {id}"))
                .await;
            return Err(Failure::permanent(format!(
                "global cluster {id} has no member {arn}"
            )));
        }
        work.check("member", true, format!("{member} is a secondary of {id}"))
            .await;
        // The secondary's lag behind the primary, by its cluster id (the ARN's last part).
        let secondary = arn.rsplit(':').next().unwrap_or(arn);
        let metric = Metric {
            name: "AuroraGlobalDBReplicationLag",
            dimension: "DBClusterIdentifier",
            id: secondary,
            unit_seconds: 0.001,
        };
        lag::check(&conf, &metric, p.max_lag, work).await?;
        // A switchover waits until the secondary has everything: only a failover loses
        // what the secondary had not yet received.
        let rpo = [
            Metric {
                name: "AuroraGlobalDBRPOLag",
                ..metric
            },
            metric,
        ];
        data_loss::guard(&target.name, p, work, || async {
            if p.allow_data_loss {
                lag::recovery_point(&conf, &rpo).await
            } else {
                Ok(Some(RecoveryPoint {
                    seconds: Some(0.0),
                    bytes: Some(0),
                    basis: Basis::Measured,
                    limit: None,
                }))
            }
        })
        .await?;
        let from = current
            .as_deref()
            .map(name_of)
            .unwrap_or_else(|| "no primary".into());
        let how = if p.allow_data_loss {
            "failover (allow_data_loss)"
        } else {
            "switchover"
        };
        work.change(format!("{} primary", target.name), from.clone(), member)
            .await;
        if work.request.dry_run {
            return Ok(format!(
                "would move {id}'s primary to {member} by {how}; nothing changed"
            ));
        }
        if before.status() != Some("available") {
            work.say(format!(
                "{id} is busy: a change is under way; waiting for it"
            ))
            .await;
        } else if p.allow_data_loss {
            client
                .failover_global_cluster()
                .global_cluster_identifier(id)
                .target_db_cluster_identifier(arn)
                .allow_data_loss(true)
                .send()
                .await
                .map_err(|e| failure(&format!("fail over global cluster {id}"), e))?;
        } else {
            client
                .switchover_global_cluster()
                .global_cluster_identifier(id)
                .target_db_cluster_identifier(arn)
                .send()
                .await
                .map_err(|e| failure(&format!("switch over global cluster {id}"), e))?;
        }
        work.say(format!("{how} of {id} to {member} started")).await;
        wait_until(
            work,
            &format!("{member} is the primary of {id}"),
            || async {
                let now = global(&client, id).await?;
                Ok((now.status() == Some("available")
                    && global_writer(&now).as_deref() == Some(arn.as_str()))
                .then(|| format!("{id}'s primary moved from {from} to {member} by {how}")))
            },
        )
        .await
    }

    async fn demote(&self, target: &Target, d: &Demote, _: &Work) -> Result<String, Failure> {
        no_demote("aurora-global", &target.name, d)
    }

    /// Nothing to do: after a switchover or failover, Aurora turns the old primary into a
    /// secondary of the new one itself.
    async fn reprotect(
        &self,
        target: &Target,
        r: &Reprotect,
        work: &Work,
    ) -> Result<String, Failure> {
        let detail = format!(
            "global cluster {} re-protects itself: its old primary rejoins as a secondary of {}",
            self.0.global_cluster, r.source.name
        );
        work.check("re-protect", true, detail.clone()).await;
        let _ = target;
        Ok(detail)
    }
}
