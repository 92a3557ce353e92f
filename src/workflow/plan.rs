//! From a validated workflow to what a run executes: specs resolved with the run's
//! parameters, lease keys chosen, and the stages grouped into waves for display.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::limits::Budget;
use super::model::{RetryPolicy, millis};
use super::params::{self, Params};
use super::source::Diagnostic;
use super::workflows::{self, APPROVAL, Context, Workflow};

/// One stage as a run executes it. Stored with the run, so a run keeps the workflow it
/// started with even if the file changes underneath it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredStage")]
pub struct PlannedStage {
    pub name: String,
    pub agent: String,
    pub after: Vec<usize>,
    pub spec: Value,
    /// The lease key; `None` means the stage's own key (nothing else contends for it).
    pub resource: Option<String>,
    pub retry: RetryPolicy,
    #[serde(with = "millis")]
    pub timeout: std::time::Duration,
    /// A person approves before the stage starts. Always set for an approval stage.
    pub approval: bool,
    /// Different people needed to pass the gate: the group's `approvals`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub approvals: u8,
    /// The `limits:` the work counts against, as they were when the run was planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

fn one() -> u8 {
    1
}

fn is_one(n: &u8) -> bool {
    *n == 1
}

impl PlannedStage {
    /// Whether an agent does the stage's work; an approval stage's work is its approval.
    pub fn has_work(&self) -> bool {
        self.agent != APPROVAL
    }
}

/// A planned stage as stored: plans stored before the gate was a property of every stage
/// marked approval stages by their agent alone.
#[derive(Deserialize)]
struct StoredStage {
    name: String,
    agent: String,
    after: Vec<usize>,
    spec: Value,
    resource: Option<String>,
    retry: RetryPolicy,
    #[serde(with = "millis")]
    timeout: std::time::Duration,
    approval: bool,
    #[serde(default = "one")]
    approvals: u8,
    #[serde(default)]
    budgets: Vec<Budget>,
}

impl From<StoredStage> for PlannedStage {
    fn from(s: StoredStage) -> Self {
        PlannedStage {
            approval: s.approval || s.agent == APPROVAL,
            name: s.name,
            agent: s.agent,
            after: s.after,
            spec: s.spec,
            resource: s.resource,
            retry: s.retry,
            timeout: s.timeout,
            approvals: s.approvals,
            budgets: s.budgets,
        }
    }
}

impl Workflow {
    /// Parameters in force: workflow defaults, then each override in order. An override of
    /// a parameter the workflow does not define is an error, and so is a value that is not
    /// a string, number or boolean, or that its declaration does not take.
    pub fn params_with(&self, overrides: &[&Params]) -> Result<Params, String> {
        let mut merged = self.params.clone();
        for layer in overrides {
            for (k, v) in layer.iter() {
                if !merged.contains_key(k) {
                    return Err(format!(
                        "workflow `{}` has no param `{k}` (params: {})",
                        self.name,
                        self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                match self.declared.get(k) {
                    Some(d) => d.check(k, v)?,
                    None => super::declared::scalar(k, v)?,
                }
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged)
    }
}

/// The stages of `workflow` with `params` in force, each spec checked again now that its
/// parameters are final.
pub fn plan(
    workflow: &Workflow,
    params: &Params,
    cx: &Context<'_>,
) -> Result<Vec<PlannedStage>, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(workflow.stages.len());
    for stage in &workflow.stages {
        let before = errors.len();
        let spec = params::resolve(&stage.spec, params, &workflow.file, &mut errors);
        if errors.len() == before
            && let Err(e) = workflows::check_resolved(&stage.agent, &spec, cx)
        {
            errors.push(stage.pos.diag(
                &workflow.file,
                format!(
                    "stage `{}`: {} spec rejected: {}",
                    stage.name, stage.agent, e.message
                ),
            ));
        }
        let resource = match &stage.resource {
            Some(r) => match params::resolve(r, params, &workflow.file, &mut errors) {
                Value::String(s) => Some(s),
                _ => None,
            },
            None if stage.agent == APPROVAL => None,
            None => cx.kinds.resource(&stage.agent, &spec),
        };
        let budgets = budgets(cx, &stage.agent, &spec);
        out.push(PlannedStage {
            name: stage.name.clone(),
            agent: stage.agent.clone(),
            after: stage.after.clone(),
            spec,
            resource,
            retry: stage.retry,
            timeout: stage.timeout,
            approval: stage.approval,
            approvals: 1,
            budgets,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The budgets a stage of `agent` with `spec` counts against; none for an approval.
pub fn budgets(cx: &Context<'_>, agent: &str, spec: &Value) -> Vec<Budget> {
    if agent == APPROVAL {
        return Vec::new();
    }
    let target = cx.kinds.target(agent, spec);
    cx.targets
        .budgets(agent, target.as_ref().map(|(k, n)| (*k, n.as_str())))
}

/// Stages grouped by depth: every stage of a wave can run at once once the waves before it
/// are done. Expects an acyclic plan (validation guarantees it).
pub fn waves(stages: &[PlannedStage]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; stages.len()];
    // `after` only names stages that exist; resolve depths until nothing changes.
    for _ in 0..stages.len() {
        let mut changed = false;
        for (i, s) in stages.iter().enumerate() {
            let d = s.after.iter().map(|&a| depth[a] + 1).max().unwrap_or(0);
            if d != depth[i] {
                depth[i] = d;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let count = depth.iter().max().map_or(0, |m| m + 1);
    let mut waves = vec![Vec::new(); count];
    for (i, d) in depth.into_iter().enumerate() {
        waves[d].push(i);
    }
    waves
}

/// The plan as text: one line per wave.
pub fn render(title: &str, stages: &[PlannedStage]) -> String {
    let waves = waves(stages);
    let mut out = format!("{title} ({} stages, {} waves)\n", stages.len(), waves.len());
    for (n, wave) in waves.iter().enumerate() {
        let items: Vec<String> = wave
            .iter()
            .map(|&i| {
                let s = &stages[i];
                let mut notes = vec![s.agent.clone()];
                if s.approval {
                    notes.push("approval required".into());
                }
                if s.retry.max_attempts != RetryPolicy::default().max_attempts {
                    notes.push(format!("{} attempts", s.retry.max_attempts));
                }
                format!("{} ({})", s.name, notes.join(", "))
            })
            .collect();
        out.push_str(&format!("  wave {}: {}\n", n + 1, items.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_plan_of_the_old_shape_marks_its_approval_stage_as_gated() {
        let stored = include_str!("../../tests/fixtures/stored-plan.json");
        let plan: Vec<PlannedStage> = serde_json::from_str(stored).expect("a stored plan");
        let gate = plan.iter().find(|s| s.name == "gate").expect("the gate");
        assert!(gate.approval && !gate.has_work());
        assert!(
            plan.iter()
                .find(|s| s.name == "scale")
                .is_some_and(|s| !s.approval && s.has_work())
        );
        assert!(
            plan.iter()
                .find(|s| s.name == "dial")
                .is_some_and(|s| s.approval && s.has_work())
        );
    }
}
