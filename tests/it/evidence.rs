//! The evidence report: a run's for an auditor (who asked and why, each stage's attempts,
//! checks and changes, who approved, the timeline, RTO and RPO against the objectives, the
//! hashes of what ran) in JSON, Markdown and HTML, the HTML parsed as a browser parses it
//! and drawn by headless chromium; a group's runs over a period; and `lifeboat report`.

use std::path::Path;
use std::process::Command;

use scraper::{Html, Selector};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{self, TestApp, required};

const SHOP: &str = r#"
name: shop
stages:
  scale:
    agent: capacity
    retry: { initial_backoff: 10ms, max_backoff: 10ms }
    spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 20ms, fail_attempts: 1 }
  promote:
    agent: database
    approval: required
    after: [scale]
    spec: { cluster: shop-db, role: writer, rpo: 2s, duration: 20ms }
  dial:
    agent: dial
    after: [promote]
    spec: { endpoint: shop.example.com, region: b, duration: 20ms }
"#;

const GROUPS: &str = r#"
groups:
  shop:
    workflows: { failover: shop }
    objectives: { rto: 1h, rpo: 1s }
"#;

const TOKEN: &str = "secret-ops";

/// A failover of `shop` by the token `ops`, approved by it, finished.
async fn failed_over() -> (TestApp, String) {
    let t = common::spawn(
        &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)],
        &[("ops", TOKEN)],
    )
    .await;
    let id = t
        .create(r#"{"group": "shop", "reason": "region a is down"}"#)
        .await;
    t.wait_state(&id, "awaiting_approval").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/runs/{id}/approve"),
            r#"{"stage": "promote"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    t.wait_state(&id, "succeeded").await;
    (t, id)
}

async fn text(t: &TestApp, path: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .get(t.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, response.text().await.expect("a body"))
}

fn workflow_hash(t: &TestApp) -> String {
    let bytes = std::fs::read(t.dir.path().join("workflows/shop.yaml")).expect("the workflow");
    hex::encode(Sha256::digest(bytes))
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let selector = Selector::parse(css).expect("a selector");
    doc.select(&selector).collect()
}

fn text_of(doc: &Html, css: &str) -> String {
    select(doc, css)
        .iter()
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_run_report_holds_what_an_auditor_asks_for() {
    let (t, id) = failed_over().await;
    let hash = workflow_hash(&t);

    let (status, kind, body) = text(&t, &format!("/api/v1/runs/{id}/report.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "application/json");
    let e: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(e["group"], "shop");
    assert_eq!(e["action"], "failover");
    assert_eq!(e["reason"], "region a is down");
    assert_eq!(e["trigger"]["kind"], "person");
    assert_eq!(e["trigger"]["by"], "api:ops");
    assert_eq!(e["state"], "succeeded");
    let stage = |name: &str| {
        e["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(stage("scale")["attempts"], 2, "{e:#}");
    let promote = stage("promote");
    assert_eq!(promote["approved_by"][0], "api:ops", "{promote:#}");
    assert!(
        promote["changes"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["from"] == "replica" && c["to"] == "writer")),
        "before → after: {promote:#}"
    );
    assert!(promote["checks"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(
        e["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["what"] == "stage.approved"
                && d["by"] == "api:ops"
                && d["stage"] == "promote")),
        "{e:#}"
    );
    assert_eq!(e["objectives"]["rto_met"], true, "{e:#}");
    assert_eq!(
        e["objectives"]["rpo_met"], false,
        "2 s lost against 1 s: {e:#}"
    );
    assert_eq!(e["recovery"]["rpo_s"], 2.0);
    assert_eq!(
        e["recovery"]["critical_path"],
        serde_json::json!(["scale", "promote", "dial"])
    );
    assert_eq!(
        e["versions"]["workflow"],
        hash.as_str(),
        "sha256sum of the file"
    );

    let (status, kind, md) = text(&t, &format!("/api/v1/runs/{id}/report.md")).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/markdown"), "{kind}");
    for said in [
        "# failover of shop: evidence for run",
        "| RTO |",
        "✓ met",
        "✗ missed",
        "| `stage.approved` |",
        "shop-db: replica → writer",
        hash.as_str(),
    ] {
        assert!(md.contains(said), "{said:?} in\n{md}");
    }

    let (status, kind, html) = text(&t, &format!("/api/v1/runs/{id}/report.html")).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    let doc = Html::parse_document(&html);
    assert!(text_of(&doc, "title").contains("failover of shop"));
    assert_eq!(text_of(&doc, "#trigger"), "person: api:ops");
    assert!(text_of(&doc, "#outcome").starts_with("succeeded in "));
    assert!(text_of(&doc, "#stages tr[data-stage=promote]").contains("replica → writer"));
    assert!(text_of(&doc, "#stages tr[data-stage=promote]").contains("Approved by api:ops"));
    assert!(text_of(&doc, "#decisions").contains("stage.approved"));
    assert!(text_of(&doc, "#recovery").contains("✗ missed"));
    assert!(text_of(&doc, "#versions").contains(&hash));
    assert!(text_of(&doc, "#audit").contains("run.succeeded"));
    // The timeline: a bar for each attempt (two of scale), the wait at promote's gate.
    assert_eq!(
        select(&doc, "figure.timeline svg rect.bar.attempt").len(),
        4,
        "{html}"
    );
    assert_eq!(
        select(&doc, "figure.timeline svg rect.bar.approval").len(),
        1
    );
    // Self-contained: its style inline, nothing to fetch.
    assert!(!select(&doc, "style").is_empty());
    assert!(select(&doc, "link, script, img, iframe, [src]").is_empty());

    // Drawn by a real browser: the timeline's bars are on the screenshot.
    screenshot(&html, t.dir.path()).await;

    // The console offers it to a signed-in viewer, not to anyone else.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(t.url(&format!("/runs/{id}/report.html")))
        .send()
        .await
        .expect("an answer");
    assert_eq!(page.status(), 303, "to the sign-in form");
    t.shutdown().await;
}

/// Opens the report in headless chromium (`--screenshot`) and counts the pixels of the
/// timeline's colours: rows crossed by a long run of the succeeded attempts' green (text in
/// that green never makes one), and the amber outline of the wait for approval, which
/// nothing else on the page is drawn in.
async fn screenshot(html: &str, dir: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        required("chromium (apt-get install chromium)");
        return;
    }
    let file = dir.join("report.html");
    std::fs::write(&file, html).expect("write the report");
    let png = dir.join("report.png");
    let profile = tempfile::tempdir().expect("a profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--window-size=1100,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("evidence-report.png");
    let _ = std::fs::copy(&png, keep);
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("the screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    let near = |p: &[u8], (r, g, b): (u8, u8, u8)| {
        p[0].abs_diff(r) < 24 && p[1].abs_diff(g) < 24 && p[2].abs_diff(b) < 24
    };
    let count = |colour| {
        pixels[..info.buffer_size()]
            .chunks(channels)
            .filter(|p| p.len() >= 3 && near(p, colour))
            .count()
    };
    // A bar is a long run of one colour along a row; no letter of green text is.
    let row = info.width as usize * channels;
    let bars = pixels[..info.buffer_size()]
        .chunks(row)
        .filter(|line| {
            let mut run = 0;
            line.chunks(channels).any(|p| {
                run = if near(p, (0x1a, 0x7f, 0x37)) {
                    run + 1
                } else {
                    0
                };
                run >= 60
            })
        })
        .count();
    let amber = count((0x9a, 0x67, 0x00));
    assert!(
        bars >= 10,
        "the succeeded attempts' bars: {bars} rows with a long green run"
    );
    assert!(
        amber > 20,
        "the approval wait's outline: {amber} amber pixels"
    );
}

#[tokio::test]
async fn a_group_report_lists_its_drills_and_runs_over_a_period() {
    let (t, id) = failed_over().await;
    let drill = t.create(r#"{"group": "shop", "action": "drill"}"#).await;
    t.wait_state(&drill, "succeeded").await;

    let (status, _, body) = text(&t, "/api/v1/groups/shop/report.json?since=1d").await;
    assert_eq!(status, 200, "{body}");
    let p: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(p["group"], "shop");
    assert_eq!(p["drills"], 1);
    assert_eq!(p["drills_passed"], 1);
    assert_eq!(p["real"], 1);
    assert_eq!(p["real_succeeded"], 1);
    let rows = p["rows"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{p:#}");
    assert_eq!(rows[0]["run"], drill.as_str(), "newest first");
    assert_eq!(rows[1]["run"], id.as_str());
    assert_eq!(rows[1]["objectives_met"], false, "the RPO was missed");
    assert_eq!(rows[1]["trigger"], "api:ops");
    assert_eq!(rows[1]["workflow_hash"], workflow_hash(&t).as_str());

    let (status, _, md) = text(&t, "/api/v1/groups/shop/report.md").await;
    assert_eq!(status, 200);
    assert!(
        md.contains("2 runs: 1 of 1 drills passed, 1 of 1 real runs succeeded."),
        "{md}"
    );
    assert!(md.contains(&format!("| `{id}` | failover |")), "{md}");
    let (status, _, html) = text(&t, "/api/v1/groups/shop/report.html?since=90d").await;
    assert_eq!(status, 200);
    let doc = Html::parse_document(&html);
    assert_eq!(select(&doc, "#runs tbody tr").len(), 2);

    // Asked wrongly: said what and where, nothing else.
    for (path, want) in [
        ("/api/v1/groups/shop/report.json?since=forever", 400),
        ("/api/v1/groups/shop/report.json?until=1d", 400),
        ("/api/v1/groups/nope/report.json", 404),
        ("/api/v1/groups/shop/report.pdf", 404),
    ] {
        let (status, kind, body) = text(&t, path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(kind, "application/json", "{path}");
        let error: Value = serde_json::from_str(&body).expect("a JSON error");
        assert!(error["error"].is_string(), "{path}: {body}");
    }
    let (status, _, _) = text(&t, &format!("/api/v1/runs/{id}/report.pdf")).await;
    assert_eq!(status, 404);
    t.shutdown().await;
}

#[tokio::test]
async fn lifeboat_report_writes_a_run_or_a_period_from_the_service() {
    let (t, id) = failed_over().await;
    let out = t.dir.path().join("evidence.md");
    let lifeboat = async |args: &[&str]| {
        // Not a blocking wait: the service it asks runs on this test's runtime.
        tokio::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
            .args(args)
            .env("LIFEBOAT_SERVER", t.url(""))
            .env("LIFEBOAT_API_TOKEN", TOKEN)
            .env_remove("LIFEBOAT_CONFIG")
            .output()
            .await
            .expect("lifeboat runs")
    };
    let done = lifeboat(&[
        "report",
        &id,
        "--format",
        "md",
        "-o",
        out.to_str().expect("a path"),
    ])
    .await;
    assert!(done.status.success(), "{done:?}");
    let md = std::fs::read_to_string(&out).expect("the file");
    assert!(
        md.starts_with("# failover of shop: evidence for run"),
        "{md}"
    );

    let listed = lifeboat(&[
        "report", "--group", "shop", "--since", "1d", "--format", "json",
    ])
    .await;
    assert!(listed.status.success(), "{listed:?}");
    let p: Value = serde_json::from_slice(&listed.stdout).expect("JSON on stdout");
    assert_eq!(p["rows"][0]["run"], id.as_str());

    let unknown = lifeboat(&["report", "--group", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no group `nope`"));
    let nothing = lifeboat(&["report"]).await;
    assert_eq!(nothing.status.code(), Some(2), "usage");
    t.shutdown().await;
}
