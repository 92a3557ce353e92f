//! `autoscaling`: sets an Auto Scaling group's desired capacity and its minimum to match,
//! so that scaling policies do not take the capacity back mid-failover (and its maximum,
//! when the target is above it), then waits until that many instances are InService and
//! healthy.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LifecycleState};
use serde::Deserialize;

use super::{config, failure, wait_until};
use crate::agents::providers::capability::{Capacity, Provider, Scale};
use crate::agents::work::{Failure, Work};
use crate::workflow::{Target, kinds};

pub const CAPACITY: Provider<dyn Capacity> = Provider {
    name: "autoscaling",
    check: |f| kinds::parse::<AsgTarget>(f).map(drop),
    build: |t| {
        let fields: AsgTarget = kinds::parse(&t.fields).map_err(Failure::bad_spec)?;
        Ok(Arc::new(AutoScaling(fields)))
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsgTarget {
    #[serde(default)]
    region: Option<String>,
    group: String,
}

pub struct AutoScaling(AsgTarget);

async fn group(client: &Client, name: &str) -> Result<AutoScalingGroup, Failure> {
    let out = client
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(|e| failure(&format!("describe Auto Scaling group {name}"), e))?;
    out.auto_scaling_groups()
        .first()
        .cloned()
        .ok_or_else(|| Failure::permanent(format!("Auto Scaling group {name} not found")))
}

fn in_service(g: &AutoScalingGroup) -> usize {
    g.instances()
        .iter()
        .filter(|i| {
            i.lifecycle_state() == Some(&LifecycleState::InService)
                && i.health_status()
                    .is_some_and(|h| h.eq_ignore_ascii_case("healthy"))
        })
        .count()
}

#[async_trait]
impl Capacity for AutoScaling {
    async fn scale(&self, target: &Target, s: &Scale, work: &Work) -> Result<String, Failure> {
        let name = &self.0.group;
        let conf = config(self.0.region.as_deref()).await;
        let client = Client::new(&conf);
        let before = group(&client, name).await?;
        let want = i32::try_from(s.replicas)
            .map_err(|_| Failure::permanent(format!("{} replicas is too many", s.replicas)))?;
        let (min, max) = (
            before.min_size().unwrap_or(0),
            before.max_size().unwrap_or(0),
        );
        let desired = before.desired_capacity().unwrap_or(0);
        let ready = in_service(&before);
        work.check(
            "group",
            true,
            format!("{name}: min {min}, max {max}, desired {desired}, {ready} in service"),
        )
        .await;
        // The minimum follows the target both ways: up, so that scaling policies do not
        // take the capacity back mid-failover; down, or AWS refuses a desired below it.
        let (new_min, new_max) = (want, max.max(want));
        if desired == want && min == new_min && ready >= s.replicas as usize {
            return Ok(format!(
                "{name} already runs {ready} instances in service (desired {want}); nothing to do"
            ));
        }
        if desired != want {
            work.change(
                format!("{} ({name}) desired capacity", target.name),
                desired.to_string(),
                want.to_string(),
            )
            .await;
        }
        if new_min != min {
            work.change(
                format!("{name} minimum"),
                min.to_string(),
                new_min.to_string(),
            )
            .await;
        }
        if new_max != max {
            work.change(
                format!("{name} maximum"),
                max.to_string(),
                new_max.to_string(),
            )
            .await;
        }
        if work.request.dry_run {
            return Ok(format!(
                "would set {name} to {want} instances; nothing changed"
            ));
        }
        client
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(new_min)
            .max_size(new_max)
            .desired_capacity(want)
            .send()
            .await
            .map_err(|e| failure(&format!("update Auto Scaling group {name}"), e))?;
        work.say(format!("{name}: desired capacity {desired} → {want}"))
            .await;
        wait_until(
            work,
            &format!("{want} instances of {name} are in service"),
            || async {
                let now = group(&client, name).await?;
                let ready = in_service(&now);
                Ok((ready >= s.replicas as usize)
                    .then(|| format!("{name}: {ready} instances in service (desired {want})")))
            },
        )
        .await
    }
}
