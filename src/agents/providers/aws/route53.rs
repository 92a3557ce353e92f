//! `route53`: moves an endpoint by changing its record sets in a hosted zone, in one change
//! batch, then waits until the change is INSYNC. `routing` says how:
//! - `simple` (the default): the region's record sets replace the name's; types other
//!   regions list and this one does not are deleted;
//! - `weighted`: each region has its own record set (set identifier = region name); the
//!   region dialed gets weight `weight` (default 100), the others 0;
//! - `failover`: the region dialed becomes PRIMARY, the others SECONDARY.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};
use serde::Deserialize;
use serde_json::Value;

use super::{config, failure, wait_until};
use crate::agents::providers::capability::{Dial, Move, Provider};
use crate::agents::providers::records::{self, RecordKind, Regions};
use crate::agents::work::{Failure, Work};
use crate::workflow::{SpecError, Target, kinds};

pub const DIAL: Provider<dyn Dial> = Provider {
    name: "route53",
    check,
    build: |t| {
        let fields: Route53Target = kinds::parse(&t.fields).map_err(Failure::bad_spec)?;
        Ok(Arc::new(Route53(fields)))
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Route53Target {
    /// Bare (`Z0123…`) or as the API writes it (`/hostedzone/Z0123…`).
    hosted_zone_id: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    ttl: Option<u32>,
    #[serde(default)]
    routing: Routing,
    /// The weight the region dialed gets under `weighted` routing.
    #[serde(default)]
    weight: Option<i64>,
    regions: Regions,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Routing {
    #[default]
    Simple,
    Weighted,
    Failover,
}

fn rr(kind: RecordKind) -> RrType {
    match kind {
        RecordKind::A => RrType::A,
        RecordKind::AAAA => RrType::Aaaa,
        RecordKind::CNAME => RrType::Cname,
    }
}

fn check(fields: &Value) -> Result<(), SpecError> {
    let t: Route53Target = kinds::parse(fields)?;
    if zone_id(&t.hosted_zone_id).is_empty() {
        return Err(SpecError::at(&["hosted_zone_id"], "the zone id is empty"));
    }
    records::check(&t.regions)?;
    if t.routing == Routing::Failover && t.regions.len() != 2 {
        return Err(SpecError::at(
            &["regions"],
            "failover routing takes exactly two regions: one PRIMARY, one SECONDARY",
        ));
    }
    Ok(())
}

fn zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// Route 53 writes names fully qualified and escapes `*` as `\052`.
fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_end_matches('.')
            .replace("\\052", "*")
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

pub struct Route53(Route53Target);

/// One record set as it should be after the dial, and as it is now.
struct Planned {
    label: String,
    now: Option<ResourceRecordSet>,
    want: Option<ResourceRecordSet>,
}

fn values(set: &ResourceRecordSet) -> BTreeSet<String> {
    set.resource_records()
        .iter()
        .map(|r| r.value().trim_end_matches('.').to_string())
        .collect()
}

fn describe(set: Option<&ResourceRecordSet>) -> String {
    let Some(set) = set else {
        return "nothing".into();
    };
    let mut out = values(set).into_iter().collect::<Vec<_>>().join(", ");
    if let Some(w) = set.weight() {
        out.push_str(&format!(" weight {w}"));
    }
    if let Some(f) = set.failover() {
        out.push_str(&format!(" {}", f.as_str()));
    }
    out
}

fn same(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    values(a) == values(b)
        && a.weight() == b.weight()
        && a.failover() == b.failover()
        && a.ttl() == b.ttl()
}

impl Route53 {
    fn set(
        &self,
        name: &str,
        kind: RecordKind,
        records: &[String],
        region: Option<(&str, &str)>,
        ttl: i64,
    ) -> Result<ResourceRecordSet, Failure> {
        let mut b = ResourceRecordSet::builder()
            .name(name)
            .r#type(rr(kind))
            .ttl(ttl);
        for v in records {
            b = b.resource_records(
                ResourceRecord::builder()
                    .value(v)
                    .build()
                    .map_err(|e| Failure::permanent(e.to_string()))?,
            );
        }
        if let Some((id, dialed)) = region {
            b = b.set_identifier(id);
            match self.0.routing {
                Routing::Weighted => {
                    let w = if id == dialed {
                        self.0.weight.unwrap_or(100)
                    } else {
                        0
                    };
                    b = b.weight(w);
                }
                Routing::Failover => {
                    b = b.failover(if id == dialed {
                        ResourceRecordSetFailover::Primary
                    } else {
                        ResourceRecordSetFailover::Secondary
                    });
                }
                Routing::Simple => {}
            }
        }
        b.build().map_err(|e| Failure::permanent(e.to_string()))
    }

    async fn current(
        &self,
        client: &Client,
        name: &str,
    ) -> Result<Vec<ResourceRecordSet>, Failure> {
        let zone = zone_id(&self.0.hosted_zone_id);
        let mut found = Vec::new();
        let mut start: Option<(String, RrType, Option<String>)> =
            Some((name.to_string(), RrType::A, None));
        while let Some((n, t, id)) = start.take() {
            let out = client
                .list_resource_record_sets()
                .hosted_zone_id(zone)
                .start_record_name(n)
                .start_record_type(t)
                .set_start_record_identifier(id)
                .send()
                .await
                .map_err(|e| failure(&format!("list record sets of zone {zone}"), e))?;
            let mut past = false;
            for set in out.resource_record_sets() {
                if same_name(set.name(), name) {
                    found.push(set.clone());
                } else {
                    past = true;
                }
            }
            if out.is_truncated()
                && !past
                && let (Some(n), Some(t)) = (out.next_record_name(), out.next_record_type())
            {
                start = Some((
                    n.to_string(),
                    t.clone(),
                    out.next_record_identifier().map(str::to_string),
                ));
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl Dial for Route53 {
    async fn dial(&self, target: &Target, m: &Move, work: &Work) -> Result<String, Failure> {
        let t = &self.0;
        let name = &target.name;
        let zone = zone_id(&t.hosted_zone_id).to_string();
        if !t.regions.contains_key(&m.region) {
            return Err(Failure::permanent(format!(
                "endpoint `{name}` has no region `{}` in targets.yaml",
                m.region
            )));
        }
        let ttl = i64::from(m.ttl.or(t.ttl).unwrap_or(60));
        let conf = config(t.region.as_deref()).await;
        let client = Client::new(&conf);
        let now = self.current(&client, name).await?;
        work.check(
            "hosted zone",
            true,
            format!("zone {zone} answers; {name} has {} record sets", now.len()),
        )
        .await;

        records::ttl_check(
            now.iter()
                .filter_map(|s| u32::try_from(s.ttl()?).ok())
                .max(),
            m.ttl.or(t.ttl),
            work,
        )
        .await;
        let mut plan = Vec::new();
        for kind in records::kinds(&t.regions) {
            let found = |id: Option<&str>| {
                now.iter()
                    .find(|s| s.r#type() == &rr(kind) && s.set_identifier() == id)
                    .cloned()
            };
            match t.routing {
                Routing::Simple => {
                    let records = t.regions[&m.region].get(&kind);
                    let want = match records {
                        Some(r) if !r.is_empty() => Some(self.set(name, kind, r, None, ttl)?),
                        _ => None,
                    };
                    plan.push(Planned {
                        label: format!("{name} {kind}"),
                        now: found(None),
                        want,
                    });
                }
                Routing::Weighted | Routing::Failover => {
                    for (region, sets) in &t.regions {
                        let Some(records) = sets.get(&kind) else {
                            continue;
                        };
                        let want = self.set(
                            name,
                            kind,
                            records,
                            Some((region.as_str(), m.region.as_str())),
                            ttl,
                        )?;
                        plan.push(Planned {
                            label: format!("{name} {kind} {region}"),
                            now: found(Some(region)),
                            want: Some(want),
                        });
                    }
                }
            }
        }
        let changing: Vec<&Planned> = plan
            .iter()
            .filter(|p| match (&p.now, &p.want) {
                (Some(a), Some(b)) => !same(a, b),
                (None, None) => false,
                _ => true,
            })
            .collect();
        if changing.is_empty() {
            return Ok(format!(
                "{name} already answers from {} in zone {zone}; nothing to do",
                m.region
            ));
        }
        // What the name answers now, keyed as its changes are recorded (a worked-out
        // failback's `expect` is keyed the same way).
        let answers: Vec<(String, String)> = plan
            .iter()
            .map(|p| {
                let key = p.label.rsplit(' ').next().unwrap_or_default().to_string();
                (key, describe(p.now.as_ref()))
            })
            .collect();
        records::as_expected(name, &m.expect, &answers, work).await?;
        for p in &changing {
            work.change(
                p.label.clone(),
                describe(p.now.as_ref()),
                describe(p.want.as_ref()),
            )
            .await;
        }
        if work.request.dry_run {
            return Ok(format!(
                "would point {name} at {} in zone {zone}; nothing changed",
                m.region
            ));
        }
        let mut batch = ChangeBatch::builder().comment(format!(
            "lifeboat: {name} to {} (run {})",
            m.region, work.request.run_id
        ));
        // Deletes first: a CNAME may not stand beside the records it replaces.
        let mut ordered: Vec<&&Planned> = changing.iter().filter(|p| p.want.is_none()).collect();
        ordered.extend(changing.iter().filter(|p| p.want.is_some()));
        for p in ordered {
            let (action, set) = match (&p.want, &p.now) {
                (Some(want), _) => (ChangeAction::Upsert, want.clone()),
                (None, Some(old)) => (ChangeAction::Delete, old.clone()),
                (None, None) => continue,
            };
            batch = batch.changes(
                Change::builder()
                    .action(action)
                    .resource_record_set(set)
                    .build()
                    .map_err(|e| Failure::permanent(e.to_string()))?,
            );
        }
        let out = client
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(
                batch
                    .build()
                    .map_err(|e| Failure::permanent(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| failure(&format!("change record sets of {name}"), e))?;
        let change = out
            .change_info()
            .map(|c| c.id().trim_start_matches("/change/").to_string())
            .ok_or_else(|| Failure::retryable("Route 53 returned no change id"))?;
        work.say(format!("change {change} submitted; waiting until INSYNC"))
            .await;
        wait_until(work, &format!("change {change} is INSYNC"), || async {
            let got = client
                .get_change()
                .id(&change)
                .send()
                .await
                .map_err(|e| failure(&format!("get change {change}"), e))?;
            Ok(got
                .change_info()
                .is_some_and(|c| c.status() == &ChangeStatus::Insync)
                .then(|| {
                    format!(
                        "{name} now answers from {} (zone {zone}, change {change} INSYNC)",
                        m.region
                    )
                }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_route53_writes_them() {
        assert!(same_name("shop.example.com.", "shop.example.com"));
        assert!(same_name("\\052.example.com.", "*.example.com"));
        assert!(!same_name("shop.example.com.", "shop.example.org"));
        assert_eq!(zone_id("/hostedzone/Z123"), "Z123");
    }
}
