//! Evidence for an auditor: one run as a self-contained document (who asked and why, every
//! stage with its attempts, checks and changes, every decision a person made, the
//! timeline, the recovery time and point against the objectives, and the hashes of what
//! ran), and a group's runs over a period as a table. Each is JSON, Markdown or HTML
//! (inline CSS and SVG, nothing fetched), rendered here so that the API, the console and
//! `lifeboat report` give the same document.

mod html;
mod markdown;
mod period;
pub mod timeline;

use serde::{Deserialize, Serialize};

pub use period::{Period, PeriodRow, gather as gather_period};

use crate::clock::{Millis, rfc3339};
use crate::domain::report::{Change, Check};
use crate::domain::scorecard::{ObjectivesMet, Scorecard};
use crate::domain::{Actor, Audit, EventKind, Run, RunId, RunState, StageState};
use crate::store::Store;
use crate::workflow::{Action, Catalog, Versions};

/// The formats a report is had in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

impl Format {
    /// From a path's extension (`report.md`) or `--format`.
    pub fn parse(word: &str) -> Option<Format> {
        match word {
            "json" => Some(Format::Json),
            "md" | "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub run: RunId,
    pub group: String,
    pub action: Action,
    pub workflow: String,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub trigger: Trigger,
    pub state: RunState,
    /// The outcome in words: "succeeded in 1m02s", or what failed.
    pub outcome: String,
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub stages: Vec<StageEvidence>,
    /// Every approval, rejection, skip, override, cancel and resume, with who and when.
    pub decisions: Vec<Decision>,
    pub recovery: Option<RecoveryEvidence>,
    pub objectives: Option<ObjectivesMet>,
    /// The hashes of the workflow file, templates and targets the run used (`None` for a
    /// run stored before they were kept).
    pub versions: Option<Versions>,
    pub generated: String,
}

/// Who or what started the run: `person` (API token, chat, terminal), `alert`,
/// `schedule` or `lifeboat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: String,
    pub by: String,
}

impl Trigger {
    fn of(actor: &Actor) -> Trigger {
        let kind = match actor {
            a if a.is_person() => "person",
            Actor::Alert(_) => "alert",
            Actor::Schedule => "schedule",
            _ => "lifeboat",
        };
        Trigger {
            kind: kind.into(),
            by: actor.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageEvidence {
    pub name: String,
    pub agent: String,
    pub state: String,
    pub attempts: u32,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub took_s: Option<f64>,
    pub message: Option<String>,
    pub approved_by: Vec<String>,
    pub skipped_by: Option<String>,
    pub checks: Vec<Check>,
    pub changes: Vec<Change>,
    /// The recovery point its promote measured, in words.
    pub recovery_point: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: String,
    pub by: String,
    /// The audit record's kind: `stage.approved`, `stage.skipped`, `run.cancelled`, …
    pub what: String,
    pub stage: Option<String>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryEvidence {
    pub rto_s: f64,
    pub critical_path: Vec<String>,
    pub critical_path_s: f64,
    pub overhead_s: f64,
    pub waiting_on_people_s: f64,
    pub rpo_s: Option<f64>,
    /// The recovery point in words ("about 3 s / 1.2 MB of writes (measured)").
    pub rpo: Option<String>,
}

/// A run's evidence, with what its timeline is drawn from.
pub struct Document {
    pub evidence: Evidence,
    run: Run,
    audit: Vec<Audit>,
    /// When it was gathered: where the timeline of a run still going ends.
    now: Millis,
}

impl Document {
    pub fn render(&self, format: Format) -> anyhow::Result<String> {
        Ok(match format {
            Format::Json => serde_json::to_string_pretty(&self.evidence)?,
            Format::Markdown => markdown::run(&self.evidence),
            Format::Html => html::run(&self.evidence, &self.run, &self.audit, self.now),
        })
    }
}

/// Everything the store holds of `run`, for its report.
pub async fn gather(
    catalog: &Catalog,
    store: &Store,
    run: Run,
    now: Millis,
) -> anyhow::Result<Document> {
    let audit = store.audit(run.id).await?;
    let card = crate::domain::scorecard::score(&run, &audit);
    let objectives = catalog
        .groups
        .get(&run.group)
        .zip(card.as_ref())
        .and_then(|(g, card)| card.against(&g.objectives));
    let versions = store.run_versions(run.id).await?;
    let evidence = Evidence {
        run: run.id,
        group: run.group.clone(),
        action: run.action,
        workflow: run.workflow.clone(),
        dry_run: run.dry_run,
        reason: run.reason.clone(),
        trigger: Trigger::of(&run.requested_by),
        state: run.state,
        outcome: outcome(&run, card.as_ref()),
        created: rfc3339(run.created_at),
        started: run.started_at.map(rfc3339),
        finished: run.finished_at.map(rfc3339),
        stages: stages(&run),
        decisions: decisions(&audit),
        recovery: card.as_ref().map(|c| RecoveryEvidence {
            rto_s: c.total_ms as f64 / 1000.0,
            critical_path: c.critical_path.clone(),
            critical_path_s: c.critical_path_ms as f64 / 1000.0,
            overhead_s: c.overhead_ms as f64 / 1000.0,
            waiting_on_people_s: c.waiting_on_people_ms as f64 / 1000.0,
            rpo_s: c.rpo.as_ref().and_then(|r| r.seconds),
            rpo: c.rpo.as_ref().map(|r| r.loss()),
        }),
        objectives,
        versions,
        generated: rfc3339(now),
    };
    Ok(Document {
        evidence,
        run,
        audit,
        now,
    })
}

fn outcome(run: &Run, card: Option<&Scorecard>) -> String {
    let mut out = run.state.to_string();
    if let Some(c) = card {
        out.push_str(&format!(" in {}", crate::clock::short_duration(c.total_ms)));
    }
    if let Some(m) = &run.message {
        out.push_str(&format!(": {m}"));
    }
    if run.dry_run {
        out.push_str(" (a dry run: nothing was changed)");
    }
    out
}

fn stages(run: &Run) -> Vec<StageEvidence> {
    run.plan
        .iter()
        .zip(&run.stages)
        .map(|(planned, st)| {
            let report = st.report.clone().unwrap_or_default();
            StageEvidence {
                name: planned.name.clone(),
                agent: planned.agent.clone(),
                state: st.state.to_string(),
                attempts: st.attempts,
                started: st.started_at.map(rfc3339),
                finished: st.finished_at.map(rfc3339),
                took_s: st
                    .started_at
                    .zip(st.finished_at)
                    .map(|(s, e)| (e - s) as f64 / 1000.0),
                message: st.message.clone(),
                approved_by: st.approvals.iter().map(|a| a.person.clone()).collect(),
                skipped_by: st.skipped_by.as_ref().map(|a| a.to_string()),
                recovery_point: report.rpo.as_ref().map(|r| r.loss()),
                checks: report.checks,
                changes: report.changes,
            }
        })
        .collect()
}

/// What people (and the rules standing in for them: an alert route, a schedule, a dry run
/// passing its own gate) decided: the request, approvals and rejections, skips, cancels,
/// resumes, a retry made now, and every override. Not the progress their decisions set
/// going (the dispatch after an approval is recorded under the approver too).
fn decisions(audit: &[Audit]) -> Vec<Decision> {
    audit
        .iter()
        .filter(|a| is_decision(a))
        .map(|a| Decision {
            at: rfc3339(a.at),
            by: a.actor.to_string(),
            what: a.kind.to_string(),
            stage: a.stage.clone(),
            message: a.message.clone(),
        })
        .collect()
}

fn is_decision(a: &Audit) -> bool {
    match a.kind {
        EventKind::PreflightOverridden | EventKind::DriftOverridden => true,
        _ if matches!(a.actor, Actor::System | Actor::Agent(_)) => false,
        EventKind::Stage(StageState::Skipped | StageState::Cancelled)
        | EventKind::Run(RunState::Cancelled) => true,
        // A dispatch a person made is a retry now, which says so; any other follows an
        // approval.
        EventKind::Stage(StageState::Dispatched) => a.message.is_some(),
        EventKind::Stage(_) | EventKind::Run(_) => false,
        EventKind::AlertsJoined | EventKind::WorkRefused => false,
        _ => true,
    }
}

/// A SHA-256 in a table cell: its first twelve digits, the whole in a title.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(actor: Actor, kind: EventKind, message: Option<&str>) -> Audit {
        Audit {
            at: 0,
            actor,
            kind,
            stage: Some("dial".into()),
            attempt: None,
            message: message.map(str::to_string),
        }
    }

    #[test]
    fn decisions_are_what_people_decided_not_what_it_set_going() {
        let alice = || Actor::Api("alice".into());
        let trail = [
            by(alice(), EventKind::RunCreated, Some("region a is down")),
            by(
                Actor::System,
                EventKind::Stage(StageState::Dispatched),
                None,
            ),
            by(alice(), EventKind::StageApproved, None),
            by(alice(), EventKind::Stage(StageState::Dispatched), None),
            by(
                alice(),
                EventKind::Stage(StageState::Dispatched),
                Some(crate::orchestrator::machine::RETRIED_NOW),
            ),
            by(
                alice(),
                EventKind::Stage(StageState::Skipped),
                Some("done by hand"),
            ),
            by(Actor::System, EventKind::DriftOverridden, Some("forced")),
            by(Actor::System, EventKind::Run(RunState::Succeeded), None),
        ];
        let kinds: Vec<String> = decisions(&trail)
            .into_iter()
            .map(|d| format!("{} {}", d.by, d.what))
            .collect();
        assert_eq!(
            kinds,
            [
                "api:alice run.created",
                "api:alice stage.approved",
                "api:alice stage.dispatched",
                "api:alice stage.skipped",
                "lifeboat drift.overridden",
            ]
        );
    }
}
