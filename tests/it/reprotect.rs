//! Re-protect as an action of its own: a group's `reprotect` workflow, started like any
//! other (`/dr reprotect GROUP`, the API, `lifeboat run --action reprotect`), planned,
//! dry-runnable, and shown with what each stage would change.

use crate::common;

use common::stage;

const FAILOVER: &str = "name: shop-failover\nstages:\n  promote:\n    agent: database\n    spec: { cluster: db-a, role: writer, duration: 10ms }\n";

const REPROTECT: &str = "name: shop-reprotect\nstages:\n  reprotect:\n    agent: database\n    spec: { cluster: db-b, role: replica, source: db-a, method: rewind, duration: 10ms }\n";

const GROUPS: &str =
    "groups:\n  shop:\n    workflows: { failover: shop-failover, reprotect: shop-reprotect }\n";

#[tokio::test]
async fn a_groups_reprotect_workflow_is_an_action_of_its_own() {
    let t = common::spawn(
        &[
            ("failover.yaml", FAILOVER),
            ("reprotect.yaml", REPROTECT),
            ("groups.yaml", GROUPS),
        ],
        &[],
    )
    .await;
    let (status, plan) = t.get("/api/v1/groups/shop/plan?action=reprotect").await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["workflow"], "shop-reprotect", "{plan:#}");

    let id = t
        .create(r#"{"group": "shop", "action": "reprotect", "dry_run": true}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(run["action"], "reprotect");
    assert_eq!(
        common::changes(stage(&run, "reprotect")),
        ["db-b: writer (fenced) → replica of db-a"]
    );

    let id = t
        .create(r#"{"group": "shop", "action": "reprotect"}"#)
        .await;
    let run = t.wait_state(&id, "succeeded").await;
    assert_eq!(
        stage(&run, "reprotect")["message"],
        "simulated: db-b streams from db-a"
    );
    t.shutdown().await;
}
