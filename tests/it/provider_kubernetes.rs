//! The `kubernetes` capacity provider (kube) against a loopback stand-in of the API paths it
//! uses: Deployments and StatefulSets with their `scale` subresource, and
//! HorizontalPodAutoscalers. No Kubernetes API server runs on these machines. The stand-in's
//! workloads become ready one replica per read, as a rollout would.

#![cfg(feature = "kubernetes")]

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{changes, stage};
use lifeboat::app::Options;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq)]
struct Workload {
    replicas: i64,
    ready: i64,
    generation: i64,
    observed: i64,
}

#[derive(Default)]
struct Cluster {
    /// (kind, namespace, name)
    workloads: BTreeMap<(String, String, String), Workload>,
    /// (namespace, name) → (min, max, target deployment)
    hpas: BTreeMap<(String, String), (i64, i64, String)>,
    tokens: Vec<String>,
}

type Shared = Arc<Mutex<Cluster>>;

fn workload_json(kind: &str, ns: &str, name: &str, w: &Workload) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": if kind == "deployments" { "Deployment" } else { "StatefulSet" },
        "metadata": { "name": name, "namespace": ns, "generation": w.generation },
        "spec": { "replicas": w.replicas, "selector": {}, "template": {} },
        "status": { "replicas": w.replicas, "readyReplicas": w.ready, "observedGeneration": w.observed },
    })
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{what} not found"), "reason": "NotFound", "code": 404
        })),
    )
        .into_response()
}

fn note_token(c: &mut Cluster, headers: &HeaderMap) {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        c.tokens.push(v.to_string());
    }
}

async fn list(
    State(s): State<Shared>,
    Path((ns, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Ok(mut c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    note_token(&mut c, &headers);
    let items: Vec<Value> = c
        .workloads
        .iter()
        .filter(|((k, n, _), _)| *k == kind && *n == ns)
        .map(|((k, n, name), w)| workload_json(k, n, name, w))
        .collect();
    axum::Json(json!({ "apiVersion": "apps/v1", "kind": "List", "metadata": {}, "items": items }))
        .into_response()
}

async fn read(
    State(s): State<Shared>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Ok(mut c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    note_token(&mut c, &headers);
    let key = (kind.clone(), ns.clone(), name.clone());
    let Some(w) = c.workloads.get_mut(&key) else {
        return not_found(&name);
    };
    let shown = workload_json(&kind, &ns, &name, w);
    // The controller catches up: the next read sees one more replica ready.
    w.observed = w.generation;
    if w.ready < w.replicas {
        w.ready += 1;
    } else {
        w.ready = w.replicas;
    }
    axum::Json(shown).into_response()
}

async fn scale(
    State(s): State<Shared>,
    Path((ns, kind, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(mut c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    note_token(&mut c, &headers);
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/merge-patch+json")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Ok(patch) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(replicas) = patch["spec"]["replicas"].as_i64() else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let Some(w) = c.workloads.get_mut(&(kind, ns.clone(), name.clone())) else {
        return not_found(&name);
    };
    w.replicas = replicas;
    w.generation += 1;
    if w.ready > replicas {
        w.ready = replicas;
    }
    axum::Json(json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "replicas": replicas }, "status": { "replicas": replicas },
    }))
    .into_response()
}

fn hpa_json(ns: &str, name: &str, (min, max, target): &(i64, i64, String)) -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": name, "namespace": ns },
        "spec": {
            "minReplicas": min, "maxReplicas": max,
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": target },
        },
    })
}

async fn hpa_read(State(s): State<Shared>, Path((ns, name)): Path<(String, String)>) -> Response {
    let Ok(c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    match c.hpas.get(&(ns.clone(), name.clone())) {
        Some(h) => axum::Json(hpa_json(&ns, &name, h)).into_response(),
        None => not_found(&name),
    }
}

async fn hpa_list(State(s): State<Shared>, Path(ns): Path<String>) -> Response {
    let Ok(c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let items: Vec<Value> = c
        .hpas
        .iter()
        .filter(|((n, _), _)| *n == ns)
        .map(|((n, name), h)| hpa_json(n, name, h))
        .collect();
    axum::Json(
        json!({ "apiVersion": "autoscaling/v2", "kind": "List", "metadata": {}, "items": items }),
    )
    .into_response()
}

async fn hpa_patch(
    State(s): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    body: String,
) -> Response {
    let Ok(mut c) = s.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(patch) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(h) = c.hpas.get_mut(&(ns.clone(), name.clone())) else {
        return not_found(&name);
    };
    h.0 = patch["spec"]["minReplicas"].as_i64().unwrap_or(h.0);
    h.1 = patch["spec"]["maxReplicas"].as_i64().unwrap_or(h.1);
    let (min, target) = (h.0, h.2.clone());
    let shown = hpa_json(&ns, &name, &(h.0, h.1, h.2.clone()));
    // The HPA controller scales its target up to the new minimum.
    if let Some(w) = c
        .workloads
        .get_mut(&("deployments".into(), ns.clone(), target))
        && w.replicas < min
    {
        w.replicas = min;
        w.generation += 1;
    }
    axum::Json(shown).into_response()
}

async fn start(cluster: Cluster) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(cluster));
    let app = axum::Router::new()
        .route("/apis/apps/v1/namespaces/{ns}/{kind}", get(list))
        .route("/apis/apps/v1/namespaces/{ns}/{kind}/{name}", get(read))
        .route(
            "/apis/apps/v1/namespaces/{ns}/{kind}/{name}/scale",
            axum::routing::patch(scale),
        )
        .route(
            "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
            get(hpa_list),
        )
        .route(
            "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}",
            get(hpa_read).patch(hpa_patch),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

fn w(replicas: i64) -> Workload {
    Workload {
        replicas,
        ready: replicas,
        generation: 1,
        observed: 1,
    }
}

const WORKFLOW: &str = r#"
name: prescale
stages:
  web:
    agent: capacity
    spec: { cluster: k8s-region-a, namespace: shop, workload: web, replicas: 6 }
  db:
    agent: capacity
    after: []
    spec: { cluster: k8s-region-a, namespace: data, workload: statefulset/db, replicas: 3 }
  api:
    agent: capacity
    after: []
    spec: { cluster: k8s-region-a, namespace: edge, workload: hpa/api, replicas: 5 }
  workers:
    agent: capacity
    after: []
    spec: { cluster: k8s-region-a, namespace: jobs, replicas: 4 }
"#;

#[tokio::test]
async fn workloads_scale_and_are_waited_for_and_a_dry_run_changes_nothing() {
    let mut cluster = Cluster::default();
    for (kind, ns, name, n) in [
        ("deployments", "shop", "web", 2),
        ("statefulsets", "data", "db", 1),
        ("deployments", "edge", "api", 2),
        ("deployments", "jobs", "a", 1),
        ("statefulsets", "jobs", "b", 2),
    ] {
        cluster
            .workloads
            .insert((kind.into(), ns.into(), name.into()), w(n));
    }
    cluster
        .hpas
        .insert(("edge".into(), "api".into()), (2, 4, "api".into()));
    // In a namespace scaled whole, `a` is managed by an HPA: it is scaled through it.
    cluster
        .hpas
        .insert(("jobs".into(), "a-scaler".into()), (1, 2, "a".into()));
    let (server, shared) = start(cluster).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster: {{ server: \"{server}\" }}\nusers:\n- name: lifeboat\n  user: {{ token: stand-in-token }}\ncontexts:\n- name: region-a\n  context: {{ cluster: standin, user: lifeboat }}\n- name: elsewhere\n  context: {{ cluster: standin, user: lifeboat }}\ncurrent-context: elsewhere\n"
        ),
    )
    .expect("kubeconfig");
    let targets = format!(
        "clusters:\n  k8s-region-a: {{ provider: kubernetes, context: region-a, kubeconfig: \"{}\" }}\n",
        kubeconfig.display()
    );
    let t = common::spawn_configured(
        &[
            ("prescale.yaml", WORKFLOW),
            (
                "groups.yaml",
                "groups:\n  shop:\n    workflows: { failover: prescale }\n",
            ),
            ("targets.yaml", &targets),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await;
    let before = shared.lock().expect("state").workloads.clone();

    let id = t.create(r#"{"group": "shop", "dry_run": true}"#).await;
    let drill = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        changes(stage(&drill, "web")),
        ["k8s-region-a/shop/deployment/web replicas: 2 → 6"]
    );
    assert_eq!(
        changes(stage(&drill, "api")),
        [
            "k8s-region-a/edge/hpa/api minReplicas: 2 → 5",
            "k8s-region-a/edge/hpa/api maxReplicas: 4 → 5"
        ]
    );
    assert_eq!(
        changes(stage(&drill, "workers")),
        [
            "k8s-region-a/jobs/hpa/a-scaler minReplicas: 1 → 4",
            "k8s-region-a/jobs/hpa/a-scaler maxReplicas: 2 → 4",
            "k8s-region-a/jobs/statefulset/b replicas: 2 → 4"
        ]
    );
    let after_drill: Vec<i64> = shared
        .lock()
        .expect("state")
        .workloads
        .values()
        .map(|w| w.replicas)
        .collect();
    let planned: Vec<i64> = before.values().map(|w| w.replicas).collect();
    assert_eq!(after_drill, planned, "the drill scaled nothing");

    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "succeeded").await;
    {
        let c = shared.lock().expect("state");
        let get = |k: &str, ns: &str, n: &str| {
            c.workloads[&(k.to_string(), ns.to_string(), n.to_string())].clone()
        };
        assert_eq!(get("deployments", "shop", "web").replicas, 6);
        assert_eq!(get("statefulsets", "data", "db").replicas, 3);
        assert_eq!(get("deployments", "edge", "api").replicas, 5);
        assert_eq!(get("deployments", "jobs", "a").replicas, 4);
        assert_eq!(get("statefulsets", "jobs", "b").replicas, 4);
        assert_eq!(
            c.hpas[&("edge".to_string(), "api".to_string())],
            (5, 5, "api".to_string())
        );
        assert_eq!(
            c.hpas[&("jobs".to_string(), "a-scaler".to_string())],
            (4, 4, "a".to_string())
        );
        assert!(
            c.tokens.iter().all(|t| t == "Bearer stand-in-token") && !c.tokens.is_empty(),
            "the kubeconfig's user was used: {:?}",
            c.tokens
        );
    }
    assert_eq!(
        stage(&run, "web")["message"],
        "deployment/web in k8s-region-a/shop: 6 replicas ready"
    );
    assert_eq!(
        stage(&run, "api")["message"],
        "deployment/api in k8s-region-a/edge: 5 replicas ready"
    );

    let id = t.create(r#"{"group": "shop"}"#).await;
    let again = t.wait_state(&id, "succeeded").await;
    for name in ["web", "db", "api", "workers"] {
        assert!(changes(stage(&again, name)).is_empty(), "{name}: {again:#}");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn a_missing_workload_fails_for_good() {
    let (server, _shared) = start(Cluster::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster: {{ server: \"{server}\" }}\nusers:\n- name: u\n  user: {{ token: t }}\ncontexts:\n- name: c\n  context: {{ cluster: s, user: u }}\ncurrent-context: c\n"
        ),
    )
    .expect("kubeconfig");
    let targets = format!(
        "clusters:\n  k8s: {{ provider: kubernetes, kubeconfig: \"{}\" }}\n",
        kubeconfig.display()
    );
    let workflow = "name: w\nstages:\n  web:\n    agent: capacity\n    spec: { cluster: k8s, namespace: shop, workload: web, replicas: 3 }\n    retry: { max_attempts: 3, initial_backoff: 50ms }\n";
    let t = common::spawn_configured(
        &[
            ("w.yaml", workflow),
            (
                "groups.yaml",
                "groups:\n  shop:\n    workflows: { failover: w }\n",
            ),
            ("targets.yaml", &targets),
        ],
        &[],
        Options::default(),
        |_| {},
    )
    .await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    let run = t.wait_state(&id, "failed").await;
    assert_eq!(stage(&run, "web")["attempts"], 1, "{run:#}");
    assert_eq!(
        stage(&run, "web")["message"],
        "deployment/web in shop: not found"
    );
    t.shutdown().await;
}
