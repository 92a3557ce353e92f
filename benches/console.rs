//! The console with 10,000 runs in the store: how long its pages take to answer, over
//! HTTP from the embedded service, as a browser asks for them. `cargo bench --bench
//! console` prints one JSON object; `cargo test` only builds it.

use std::time::{Duration, Instant};

use lifeboat::app::Options;
use lifeboat::config::Settings;
use lifeboat::domain::{Actor, Audit, EventKind, Run, RunId, RunState, StageRun, StageState};
use lifeboat::startup::Service;
use lifeboat::workflow::{Action, Params, PlannedStage, RetryPolicy};
use serde_json::json;

const RUNS: usize = 10_000;
const SAMPLES: usize = 50;

const SHOP: &str = "name: shop\nstages:\n  scale: { agent: capacity, spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 10ms } }\n";

fn run(n: usize) -> Run {
    let plan: Vec<PlannedStage> = ["scale", "promote", "dial", "verify"]
        .iter()
        .enumerate()
        .map(|(i, name)| PlannedStage {
            name: name.to_string(),
            agent: "noop".into(),
            after: if i == 0 { vec![] } else { vec![i - 1] },
            spec: json!({}),
            resource: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
            approval: false,
            approvals: 1,
            budgets: Vec::new(),
        })
        .collect();
    // One run in ten failed; the oldest was cancelled, so a filter for it reads them all.
    let state = match n {
        0 => RunState::Cancelled,
        n if n % 10 == 3 => RunState::Failed,
        _ => RunState::Succeeded,
    };
    let created = 1_790_000_000_000 + n as i64 * 60_000;
    let stage = StageRun {
        state: StageState::Succeeded,
        attempts: 1,
        started_at: Some(created),
        finished_at: Some(created + 1_000),
        ..StageRun::default()
    };
    Run {
        id: RunId::new(),
        group: "shop".into(),
        action: Action::Failover,
        workflow: "shop".into(),
        dry_run: n.is_multiple_of(2),
        reason: Some(format!("drill {n}")),
        requested_by: Actor::Api("ops".into()),
        params: Params::new(),
        overrides: None,
        state,
        created_at: created,
        started_at: Some(created),
        finished_at: Some(created + 4_000),
        message: None,
        stages: vec![stage; plan.len()],
        plan,
        version: 1,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted[i.min(sorted.len() - 1)] * 1000.0).round() / 1000.0
}

async fn measure(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let mut ms = Vec::with_capacity(SAMPLES);
    let mut bytes = 0;
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let resp = client.get(url).send().await?;
        anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
        bytes = resp.bytes().await?.len();
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(json!({ "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "bytes": bytes }))
}

async fn bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows)?;
    std::fs::write(workflows.join("shop.yaml"), SHOP)?;
    std::fs::write(
        workflows.join("groups.yaml"),
        "groups:\n  shop:\n    workflows: { failover: shop }\n",
    )?;
    let url = format!("sqlite://{}", dir.path().join("console.db").display());
    let service = Service::start(&Settings::embedded(&url, workflows), Options::default()).await?;
    let created = Audit {
        at: 0,
        actor: Actor::Api("ops".into()),
        kind: EventKind::RunCreated,
        stage: None,
        attempt: None,
        message: None,
    };
    // Inserted as the store inserts any run; each is then let go of its group's one
    // active slot, as a finished run is, so that the next can be inserted.
    let side = sqlx::SqlitePool::connect(&url).await?;
    let mut ids = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        let r = run(n);
        service.app.store.insert_run(&r, &created).await?;
        sqlx::query("UPDATE runs SET active_key = NULL WHERE id = ?")
            .bind(r.id.to_string())
            .execute(&side)
            .await?;
        ids.push(r.id);
    }
    let client = reqwest::Client::new();
    let base = service.url();
    // The first visit opens this browser's session.
    let first = client.get(format!("{base}/")).send().await?;
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let client = reqwest::Client::builder()
        .default_headers(
            [(reqwest::header::COOKIE, cookie.parse()?)]
                .into_iter()
                .collect(),
        )
        .build()?;
    let middle = ids[RUNS / 2];
    let mut out = serde_json::Map::new();
    out.insert("runs".into(), json!(RUNS));
    for (name, path) in [
        ("newest_page", "/".to_string()),
        ("page_halfway_back", format!("/?before={middle}")),
        ("failed_only", "/?state=failed".to_string()),
        ("cancelled_only_the_oldest", "/?state=cancelled".to_string()),
        ("a_run", format!("/runs/{middle}")),
    ] {
        out.insert(
            name.into(),
            measure(&client, &format!("{base}{path}")).await?,
        );
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    service.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    tokio::runtime::Runtime::new()?.block_on(bench())
}
