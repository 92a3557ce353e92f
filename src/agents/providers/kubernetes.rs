//! `kubernetes`: scales a Deployment or StatefulSet through its `scale` subresource, or
//! raises a HorizontalPodAutoscaler's minimum, then waits until the workload's ready
//! replicas reach the target. The stage's `workload` is `NAME` (a Deployment),
//! `deployment/NAME`, `statefulset/NAME` or `hpa/NAME`; without one, every Deployment and
//! StatefulSet in the namespace is scaled. The cluster is reached through a kubeconfig
//! (`KUBECONFIG`, `~/.kube/config`, or the target's `kubeconfig`) and its `context`, or from
//! inside a cluster with the pod's service account.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;
use serde_json::json;

use super::capability::{Capacity, Provider, Scale};
use crate::agents::work::{Failure, Work};
use crate::workflow::{Target, kinds};

pub const CAPACITY: Provider<dyn Capacity> = Provider {
    name: "kubernetes",
    check: |f| kinds::parse::<KubeTarget>(f).map(drop),
    build: |t| {
        let fields: KubeTarget = kinds::parse(&t.fields).map_err(Failure::bad_spec)?;
        Ok(Arc::new(Kubernetes(fields)))
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeTarget {
    /// The kubeconfig context; the file's current context when absent.
    #[serde(default)]
    context: Option<String>,
    /// A kubeconfig file other than the default.
    #[serde(default)]
    kubeconfig: Option<String>,
}

pub struct Kubernetes(KubeTarget);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Deployment,
    StatefulSet,
    Hpa,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
            Kind::Hpa => "hpa",
        }
    }
}

fn workload(spec: &str) -> Result<(Kind, &str), Failure> {
    let (kind, name) = match spec.split_once('/') {
        None => (Kind::Deployment, spec),
        Some(("deployment" | "deploy" | "deployments", n)) => (Kind::Deployment, n),
        Some(("statefulset" | "sts" | "statefulsets", n)) => (Kind::StatefulSet, n),
        Some(("hpa" | "horizontalpodautoscaler", n)) => (Kind::Hpa, n),
        Some((other, _)) => {
            return Err(Failure::permanent(format!(
                "workload `{spec}`: `{other}` is not a kind this provider scales (deployment, statefulset, hpa)"
            )));
        }
    };
    Ok((kind, name))
}

/// Where a stage scales: the cluster's client and name, and the namespace.
#[derive(Clone, Copy)]
struct Place<'a> {
    client: &'a Client,
    cluster: &'a str,
    ns: &'a str,
}

/// A workload's replica counts: wanted by its spec, and ready, once its controller has seen
/// the latest spec.
struct Counts {
    spec: i32,
    ready: i32,
    observed: bool,
}

fn kube_failure(what: &str, e: kube::Error) -> Failure {
    match &e {
        kube::Error::Api(s) if s.code == 404 => Failure::permanent(format!("{what}: not found")),
        kube::Error::Api(s) if matches!(s.code, 401 | 403 | 422) => {
            Failure::permanent(format!("{what}: {} ({})", s.message, s.code))
        }
        _ => Failure::retryable(format!("{what}: {e}")),
    }
}

impl Kubernetes {
    async fn client(&self, cluster: &str) -> Result<Client, Failure> {
        let t = &self.0;
        let options = KubeConfigOptions {
            context: t.context.clone(),
            ..Default::default()
        };
        let config = match (&t.kubeconfig, &t.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path).map_err(|e| {
                    Failure::permanent(format!("cluster `{cluster}`: kubeconfig {path}: {e}"))
                })?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|e| Failure::permanent(format!("cluster `{cluster}`: {e}")))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(|e| Failure::permanent(format!("cluster `{cluster}`: {e}")))?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| Failure::permanent(format!("cluster `{cluster}`: {e}")))?,
        };
        Client::try_from(config)
            .map_err(|e| Failure::permanent(format!("cluster `{cluster}`: {e}")))
    }

    async fn counts(client: &Client, ns: &str, kind: Kind, name: &str) -> Result<Counts, Failure> {
        let what = format!("{}/{name} in {ns}", kind.label());
        match kind {
            Kind::Deployment => {
                let d = Api::<Deployment>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .map_err(|e| kube_failure(&what, e))?;
                let status = d.status.unwrap_or_default();
                Ok(Counts {
                    spec: d.spec.and_then(|s| s.replicas).unwrap_or(1),
                    ready: status.ready_replicas.unwrap_or(0),
                    observed: status.observed_generation >= d.metadata.generation,
                })
            }
            Kind::StatefulSet => {
                let s = Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .map_err(|e| kube_failure(&what, e))?;
                let status = s.status.unwrap_or_default();
                Ok(Counts {
                    spec: s.spec.and_then(|s| s.replicas).unwrap_or(1),
                    ready: status.ready_replicas.unwrap_or(0),
                    observed: status.observed_generation >= s.metadata.generation,
                })
            }
            Kind::Hpa => Err(Failure::permanent("an HPA has no replicas of its own")),
        }
    }

    /// Scales one Deployment or StatefulSet (or an HPA's target through its minimum).
    async fn one(
        at: &Place<'_>,
        kind: Kind,
        name: &str,
        replicas: i32,
        work: &Work,
    ) -> Result<(Kind, String), Failure> {
        let Place {
            client,
            cluster,
            ns,
        } = *at;
        let (kind, name) = if kind == Kind::Hpa {
            let api = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns);
            let what = format!("hpa/{name} in {ns}");
            let hpa = api.get(name).await.map_err(|e| kube_failure(&what, e))?;
            let spec = hpa.spec.unwrap_or_default();
            let min = spec.min_replicas.unwrap_or(1);
            let max = spec.max_replicas;
            let target = spec.scale_target_ref;
            let target_kind = match target.kind.as_str() {
                "Deployment" => Kind::Deployment,
                "StatefulSet" => Kind::StatefulSet,
                other => {
                    return Err(Failure::permanent(format!(
                        "{what} scales a {other}, which this provider cannot watch"
                    )));
                }
            };
            if min < replicas {
                work.change(
                    format!("{cluster}/{ns}/hpa/{name} minReplicas"),
                    min.to_string(),
                    replicas.to_string(),
                )
                .await;
                if max < replicas {
                    work.change(
                        format!("{cluster}/{ns}/hpa/{name} maxReplicas"),
                        max.to_string(),
                        replicas.to_string(),
                    )
                    .await;
                }
                if !work.request.dry_run {
                    let patch = json!({ "spec": {
                        "minReplicas": replicas,
                        "maxReplicas": max.max(replicas),
                    }});
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(|e| kube_failure(&what, e))?;
                }
            }
            (target_kind, target.name)
        } else {
            let now = Self::counts(client, ns, kind, name).await?;
            if now.spec != replicas {
                work.change(
                    format!("{cluster}/{ns}/{}/{name} replicas", kind.label()),
                    now.spec.to_string(),
                    replicas.to_string(),
                )
                .await;
                if !work.request.dry_run {
                    let patch = json!({ "spec": { "replicas": replicas } });
                    let what = format!("{}/{name} in {ns}", kind.label());
                    let pp = PatchParams::default();
                    let scaled = match kind {
                        Kind::Deployment => {
                            Api::<Deployment>::namespaced(client.clone(), ns)
                                .patch_scale(name, &pp, &Patch::Merge(&patch))
                                .await
                        }
                        _ => {
                            Api::<StatefulSet>::namespaced(client.clone(), ns)
                                .patch_scale(name, &pp, &Patch::Merge(&patch))
                                .await
                        }
                    };
                    scaled.map_err(|e| kube_failure(&what, e))?;
                }
            }
            (kind, name.to_string())
        };
        Ok((kind, name))
    }
}

#[async_trait]
impl Capacity for Kubernetes {
    async fn scale(&self, target: &Target, s: &Scale, work: &Work) -> Result<String, Failure> {
        let cluster = &target.name;
        let ns = &s.namespace;
        let replicas = i32::try_from(s.replicas)
            .map_err(|_| Failure::permanent(format!("{} replicas is too many", s.replicas)))?;
        let client = self.client(cluster).await?;
        let mut workloads: Vec<(Kind, String)> = Vec::new();
        match &s.workload {
            Some(w) => {
                let (kind, name) = workload(w)?;
                workloads.push((kind, name.to_string()));
            }
            None => {
                let lp = ListParams::default();
                let what = format!("workloads in {ns}");
                for d in Api::<Deployment>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .map_err(|e| kube_failure(&what, e))?
                {
                    workloads.extend(d.metadata.name.map(|n| (Kind::Deployment, n)));
                }
                for st in Api::<StatefulSet>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .map_err(|e| kube_failure(&what, e))?
                {
                    workloads.extend(st.metadata.name.map(|n| (Kind::StatefulSet, n)));
                }
                // A workload an HPA manages is scaled through the HPA's minimum: set
                // directly, the HPA would scale it back.
                for hpa in Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .map_err(|e| kube_failure(&what, e))?
                {
                    let (Some(name), Some(spec)) = (hpa.metadata.name, hpa.spec) else {
                        continue;
                    };
                    let target = match spec.scale_target_ref.kind.as_str() {
                        "Deployment" => Kind::Deployment,
                        "StatefulSet" => Kind::StatefulSet,
                        _ => continue,
                    };
                    let managed = (target, spec.scale_target_ref.name);
                    if let Some(slot) = workloads.iter_mut().find(|w| **w == managed) {
                        *slot = (Kind::Hpa, name);
                    }
                }
            }
        }
        work.check(
            "cluster answers",
            true,
            format!("{cluster}: {} workloads to scale in {ns}", workloads.len()),
        )
        .await;
        let at = Place {
            client: &client,
            cluster,
            ns,
        };
        let mut watched = Vec::new();
        for (kind, name) in &workloads {
            watched.push(Self::one(&at, *kind, name, replicas, work).await?);
        }
        if work.request.dry_run {
            return Ok(format!(
                "would scale {} workloads in {cluster}/{ns} to {replicas} replicas; nothing changed",
                watched.len()
            ));
        }
        let names = watched
            .iter()
            .map(|(k, n)| format!("{}/{n}", k.label()))
            .collect::<Vec<_>>()
            .join(", ");
        super::poll::wait_until(work, &format!("{names} are ready in {ns}"), || async {
            for (kind, name) in &watched {
                let c = Self::counts(&client, ns, *kind, name).await?;
                if !c.observed || c.ready < replicas {
                    return Ok(None);
                }
            }
            Ok(Some(format!(
                "{names} in {cluster}/{ns}: {replicas} replicas ready"
            )))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_name_their_kind() {
        assert_eq!(workload("web").ok(), Some((Kind::Deployment, "web")));
        assert_eq!(workload("sts/db").ok(), Some((Kind::StatefulSet, "db")));
        assert_eq!(workload("hpa/web").ok(), Some((Kind::Hpa, "web")));
        assert!(workload("cronjob/x").is_err());
    }
}
