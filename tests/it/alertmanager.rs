//! The real Alertmanager (Debian's prometheus-alertmanager), started on the repository's
//! `alertmanager/alertmanager.yml` pointed at a test instance of Lifeboat: alerts posted to
//! Alertmanager's API reach Lifeboat; a repeating alert starts one run; a resolve starts
//! nothing; an alert no route takes starts nothing and is recorded.

use crate::common;

use std::time::Duration;

use common::alertmanager::{Alertmanager, Timing, binary};
use lifeboat::app::Options;
use lifeboat::config::AlertSettings;
use serde_json::{Value, json};

const TOKEN: &str = "alertmanager-test-token-3f9a";

const SHOP: &str = "name: shop\nstages:\n  dial: { agent: dial, spec: { endpoint: shop.example.com, region: b, duration: 10ms } }\n";
const GROUPS: &str = "groups:\n  shop:\n    workflows: { failover: shop }\n";
const ROUTES: &str = "\
routes:
  - name: region-down
    source: alertmanager
    match: { alertname: RegionDown }
    group_label: dr_group
    mode: auto
    cooldown: 1h
";

async fn alerts(t: &common::TestApp, query: &str) -> Vec<Value> {
    let (_, body) = t.get(&format!("/api/v1/alerts{query}")).await;
    body["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs LIFEBOAT_TEST_ALERTMANAGER"]
async fn alerts_from_the_real_alertmanager_start_one_run_and_no_more() {
    let Some(binary) = binary() else { return };
    let t = common::spawn_configured(
        &[
            ("shop.yaml", SHOP),
            ("groups.yaml", GROUPS),
            ("routes.yaml", ROUTES),
        ],
        &[],
        Options::default(),
        |s| s.alerts = AlertSettings::default().with_secret("alertmanager", TOKEN),
    )
    .await;
    // Repeats every ~1.2 s, so that a test sees several.
    let am = Alertmanager::start(
        &binary,
        &format!("http://{}", t.addr),
        TOKEN,
        Timing {
            group_wait: Duration::from_millis(100),
            group_interval: Duration::from_millis(200),
            repeat_interval: Duration::from_secs(1),
        },
    )
    .await;
    let region_down = json!({
        "alertname": "RegionDown", "dr_group": "shop", "region": "region-b", "service": "shop-api"
    });
    am.fire(&region_down, &json!({ "summary": "region b is down" }))
        .await;
    let filed = common::until(
        "Lifeboat to hear of the alert",
        Duration::from_secs(30),
        async || {
            alerts(&t, "")
                .await
                .into_iter()
                .find(|a| a["decision"] == "started")
        },
    )
    .await;
    assert_eq!(filed["source"], "alertmanager");
    assert_eq!(filed["route"], "region-down");
    assert_eq!(filed["labels"]["service"], "shop-api");
    let run = filed["run_id"].as_str().map(str::to_string);
    let run = match run {
        Some(r) => r,
        None => {
            common::until("the alert's run", Duration::from_secs(30), async || {
                alerts(&t, "").await[0]["run_id"]
                    .as_str()
                    .map(str::to_string)
            })
            .await
        }
    };
    t.wait_state(&run, "succeeded").await;

    // Alertmanager sends the group again and again: counted, and no second run.
    common::until("two re-sends", Duration::from_secs(30), async || {
        alerts(&t, "")
            .await
            .into_iter()
            .find(|a| a["repeats"].as_i64() >= Some(2))
    })
    .await;
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1));

    // A resolve is recorded and starts nothing.
    am.resolve(&region_down).await;
    common::until("the resolve", Duration::from_secs(30), async || {
        alerts(&t, "?decision=resolved").await.first().cloned()
    })
    .await;

    // An alert Alertmanager hands over but no route takes: recorded, nothing started.
    am.fire(
        &json!({ "alertname": "DiskFilling", "dr_group": "shop", "instance": "db-1" }),
        &json!({}),
    )
    .await;
    let stray = common::until("the stray alert", Duration::from_secs(30), async || {
        alerts(&t, "?decision=unrouted").await.first().cloned()
    })
    .await;
    assert_eq!(stray["labels"]["alertname"], "DiskFilling");
    assert!(stray["run_id"].is_null());
    let (_, runs) = t.get("/api/v1/runs").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "still one run"
    );
    // Every delivery was taken: the bearer token from the config's credentials file.
    let log = am.log();
    assert!(!log.contains("Notify for alerts failed"), "{log}");
    t.shutdown().await;
}
