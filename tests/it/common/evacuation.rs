//! Evacuations as the chat tests drive them: their workflows, their groups as the API
//! shows them, and a failed group resumed from a card.

use serde_json::Value;

use super::TestApp;

/// Workflows of one capacity stage tried once: one that moves, one whose first attempt
/// fails (so that its run, resumed, succeeds), and one that always fails.
pub fn workflows() -> Vec<(&'static str, String)> {
    let workflow = |name: &str, extra: &str| {
        format!(
            "name: {name}\nstages:\n  move:\n    agent: capacity\n    retry: {{ max_attempts: 1 }}\n    spec: {{ cluster: k8s, namespace: shop, replicas: 2, duration: 50ms{extra} }}\n"
        )
    };
    vec![
        ("mover.yaml", workflow("mover", "")),
        ("flaky.yaml", workflow("flaky", ", fail_attempts: 1")),
        (
            "broken.yaml",
            workflow("broken", ", fail_permanently: true"),
        ),
    ]
}

/// A group of the evacuation as the API shows it.
pub async fn group(t: &TestApp, id: &str, group: &str) -> Value {
    let (status, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
    assert_eq!(status, 200, "{e}");
    e["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == group).cloned())
        .unwrap_or_else(|| panic!("no group {group} in {e:#}"))
}

/// Waits for `run`, resumed by `actor`, to succeed on its second attempt, and for its
/// group of the evacuation to succeed with that same run.
pub async fn resumed(t: &TestApp, id: &str, name: &str, run: &str, actor: &str) {
    let done = t.wait_state(run, "succeeded").await;
    assert_eq!(super::stage(&done, "move")["attempts"], 2, "{done:#}");
    let resumed = done["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "run.resumed").cloned())
        .unwrap_or_default();
    assert_eq!(resumed["actor"], actor, "{done:#}");
    let g = super::until(
        "the resumed group to succeed in the evacuation",
        std::time::Duration::from_secs(30),
        async || {
            let g = group(t, id, name).await;
            (g["state"] == "succeeded").then_some(g)
        },
    )
    .await;
    assert_eq!(g["run"], run, "the same run, resumed");
}
