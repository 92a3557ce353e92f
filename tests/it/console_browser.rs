//! The console in a real browser: Debian's chromium, driven through chromedriver. Sign in,
//! start a run from the group page, watch its stages turn green without a reload, approve
//! its gate, skip its failed stage with a reason, veto a countdown, and find each action in
//! the audit under the console user's name. Every page is saved as a screenshot under
//! `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::alerts::{am_alert, am_body};
use crate::common::console::{OPS, estate};
use crate::common::{Proc, free_port, required, stage, until};

const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver: `LIFEBOAT_TEST_CHROMEDRIVER` (scripts/browser.sh prints it), or Debian's.
fn driver() -> PathBuf {
    std::env::var_os("LIFEBOAT_TEST_CHROMEDRIVER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// chromedriver on a port of its own, and a headless chromium session through it; `None`
/// (a skip) when they are not installed.
async fn browser() -> Option<(Proc, Client, tempfile::TempDir)> {
    let driver = driver();
    if !driver.exists() || !Path::new(CHROMIUM).exists() {
        required("chromium and chromium-driver (apt-get install chromium chromium-driver)");
        return None;
    }
    // fantoccini speaks rustls; which crypto it uses is this process's choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let driver = Proc(
        Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            // The machine's network is closed: no background calls home.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = until("chromedriver", Duration::from_secs(30), async || {
        ClientBuilder::rustls()
            .ok()?
            .capabilities(caps.clone())
            .connect(&url)
            .await
            .ok()
    })
    .await;
    Some((driver, client, profile))
}

fn shots() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("save the screenshot");
}

/// The attribute `attr` of the first element matching `css`, found afresh (the page
/// redraws its main part as events arrive).
async fn attr(c: &Client, css: &str, attr: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .ok()?
        .attr(attr)
        .await
        .ok()?
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Clicks the element matching `css`, finding it again if the page redrew it between the
/// finding and the click.
async fn click(c: &Client, css: &str) {
    until(
        &format!("a click on {css}"),
        Duration::from_secs(10),
        async || c.find(Locator::Css(css)).await.ok()?.click().await.ok(),
    )
    .await;
}

async fn type_into(c: &Client, css: &str, what: &str) {
    until(
        &format!("typing into {css}"),
        Duration::from_secs(10),
        async || {
            c.find(Locator::Css(css))
                .await
                .ok()?
                .send_keys(what)
                .await
                .ok()
        },
    )
    .await;
}

async fn stage_state(c: &Client, name: &str) -> Option<String> {
    attr(c, &format!("tr[data-stage='{name}']"), "data-state").await
}

#[tokio::test]
async fn a_console_user_runs_a_failover_end_to_end_in_a_browser() {
    let Some((_driver, c, _profile)) = browser().await else {
        return;
    };
    let t = estate(|_| {}).await;
    let base = t.url("");
    // 1. Sign in.
    c.goto(&format!("{base}/")).await.expect("the console");
    assert!(
        c.current_url()
            .await
            .expect("a url")
            .path()
            .ends_with("/sign-in")
    );
    shoot(&c, "sign-in").await;
    type_into(&c, "#token", OPS).await;
    click(&c, "form.sign-in button").await;
    until("the runs page", Duration::from_secs(10), async || {
        text(&c, "header .who")
            .await
            .contains("api:ops")
            .then_some(())
    })
    .await;
    // 2. Start a run from the group page.
    c.goto(&format!("{base}/groups/shop"))
        .await
        .expect("the group");
    shoot(&c, "group").await;
    type_into(&c, "form.start input[name=reason]", "region b is down").await;
    click(&c, "form.start button[type=submit]").await;
    let id = until("the run's page", Duration::from_secs(10), async || {
        let url = c.current_url().await.ok()?;
        url.path().strip_prefix("/runs/").map(str::to_string)
    })
    .await;
    // 3. Its stages turn green without a reload: a mark left on the window survives.
    c.execute("window.lifeboatMark = 'still here'; return null;", vec![])
        .await
        .expect("a mark");
    until(
        "scale to succeed, live",
        Duration::from_secs(20),
        async || (stage_state(&c, "scale").await.as_deref() == Some("succeeded")).then_some(()),
    )
    .await;
    let mark = c
        .execute("return window.lifeboatMark || null;", vec![])
        .await
        .expect("the mark");
    assert_eq!(
        mark,
        Value::String("still here".into()),
        "the page was not reloaded"
    );
    assert!(
        text(&c, "tr[data-stage='scale'] .stage-state")
            .await
            .contains("succeeded")
    );
    shoot(&c, "run-waiting").await;
    // 4. Approve its gate, from the keyboard: the page begins with the way past the
    // navigation, and the button takes Enter.
    c.active_element()
        .await
        .expect("the page")
        .send_keys(&Key::Tab.to_string())
        .await
        .expect("Tab");
    let first = c.active_element().await.expect("a focused element");
    assert_eq!(
        first.text().await.expect("its text"),
        "Skip to content",
        "the first stop of Tab"
    );
    until("Enter on Approve", Duration::from_secs(10), async || {
        c.find(Locator::Css(
            "tr[data-stage='dial'] form[action$='/approve'] button",
        ))
        .await
        .ok()?
        .send_keys(&Key::Enter.to_string())
        .await
        .ok()
    })
    .await;
    until(
        "broken to fail, live",
        Duration::from_secs(20),
        async || (stage_state(&c, "broken").await.as_deref() == Some("failed")).then_some(()),
    )
    .await;
    // 5. Skip the failed stage with a reason.
    type_into(
        &c,
        "tr[data-stage='broken'] form[action$='/skip'] input[name=reason]",
        "fixed by hand",
    )
    .await;
    click(&c, "tr[data-stage='broken'] form[action$='/skip'] button").await;
    until(
        "the run to succeed, live",
        Duration::from_secs(20),
        async || {
            text(&c, "#run-state")
                .await
                .contains("succeeded")
                .then_some(())
        },
    )
    .await;
    assert_eq!(stage_state(&c, "last").await.as_deref(), Some("succeeded"));
    shoot(&c, "run").await;
    // 6. Veto a countdown.
    let alert = am_body(&[am_alert(
        "firing",
        json!({ "alertname": "RegionDown", "region": "b" }),
        "fp-browser",
    )]);
    let sent = t
        .client
        .post(t.url("/webhooks/alertmanager"))
        .body(alert)
        .send()
        .await
        .expect("an alert");
    assert_eq!(sent.status().as_u16(), 200);
    c.goto(&format!("{base}/alerts")).await.expect("the alerts");
    until("the countdown", Duration::from_secs(10), async || {
        let shown = text(&c, "main").await;
        if shown.contains("Veto") {
            return Some(());
        }
        c.refresh().await.ok()?;
        None
    })
    .await;
    let before = text(&c, ".countdown .remaining").await;
    assert!(before.starts_with("in "), "{before}");
    shoot(&c, "alerts").await;
    click(&c, "form[action$='/veto'] button").await;
    until("the veto", Duration::from_secs(10), async || {
        text(&c, "main").await.contains("vetoed").then_some(())
    })
    .await;
    // 7. Each action in the audit, under the console user's name.
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["requested_by"], "api:ops");
    for (kind, stage) in [("stage.approved", "dial"), ("stage.skipped", "broken")] {
        let by: Vec<&str> = run["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|e| e["kind"] == kind && e["stage"] == stage)
                    .filter_map(|e| e["actor"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(by, ["api:ops"], "{kind}");
    }
    assert_eq!(stage(&run, "broken")["state"], "skipped");
    let (_, offers) = t.get("/api/v1/offers").await;
    assert_eq!(offers["offers"][0]["decided_by"], "api:ops", "{offers}");
    c.goto(&format!("{base}/runs/{id}")).await.expect("the run");
    let audit = text(&c, "table.audit").await;
    assert!(
        audit.contains("stage.skipped") && audit.contains("api:ops"),
        "{audit}"
    );

    for (name, path) in [("runs", "/"), ("groups", "/groups"), ("agents", "/agents")] {
        c.goto(&format!("{base}{path}")).await.expect("a page");
        shoot(&c, name).await;
    }

    // At 200 % zoom (half the width, in CSS pixels) the pages reflow: nothing but a wide
    // table's own box scrolls sideways.
    c.set_window_size(640, 1000)
        .await
        .expect("a narrower window");
    for path in [
        "/".to_string(),
        "/groups/shop".into(),
        "/alerts".into(),
        format!("/runs/{id}"),
    ] {
        c.goto(&format!("{base}{path}")).await.expect("a page");
        let wide = c
            .execute(
                "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
                vec![],
            )
            .await
            .expect("a measure");
        assert_eq!(wide, Value::Bool(false), "{path} scrolls sideways at 200 %");
    }
    shoot(&c, "run-at-200-percent").await;
    c.close().await.expect("the browser closes");
    t.shutdown().await;
}
