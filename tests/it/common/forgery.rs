//! Work requests as someone who can reach the bus, but is not the orchestrator, would send
//! them, and the metric an agent counts its refusals in.

use lifeboat::bus::WorkRequest;
use lifeboat::domain::{RunId, request_id};
use serde_json::json;

/// A request that claims `stage` of `run`, attempt `attempt`, running `command`.
pub fn forged(run: RunId, stage: &str, attempt: u32, command: &[&str]) -> Vec<u8> {
    let req = WorkRequest {
        v: 1,
        id: request_id(run, stage, attempt),
        run_id: run,
        stage: stage.into(),
        agent: "exec".into(),
        attempt,
        spec: json!({ "command": command }),
        resource: format!("stage:{run}/{stage}"),
        deadline: i64::MAX,
        dry_run: false,
        accept_data_loss: false,
        budgets: Vec::new(),
        timeout_ms: 0,
    };
    serde_json::to_vec(&req).expect("json")
}

/// Every kind of forgery against `run`, whose stage `slow` runs attempt 1 now: a run that
/// does not exist, a stage it does not have, an attempt that is not current, an altered
/// spec (`command` instead of the stored one), a message that is not a request, and one
/// too large to read.
pub fn forgeries(run: RunId, command: &[&str]) -> Vec<Vec<u8>> {
    let mut oversized = forged(run, "slow", 1, command);
    oversized.resize(600 * 1024, b' ');
    vec![
        forged(RunId::new(), "slow", 1, command),
        forged(run, "nope", 1, command),
        forged(run, "slow", 2, command),
        forged(run, "slow", 1, command),
        b"{\"v\": 1, \"id\": ".to_vec(),
        oversized,
    ]
}

/// How many requests the exec agent refused for `reason`, from Prometheus text.
pub fn refused(metrics: &str, reason: &str) -> u64 {
    let wanted = format!("lifeboat_work_refused_total{{agent=\"exec\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&wanted)?.trim().parse().ok())
        .unwrap_or(0)
}
