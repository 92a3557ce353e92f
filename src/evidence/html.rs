//! The HTML forms: one file with its style inline and its timeline as inline SVG, so that
//! it opens the same anywhere, printed or archived, with nothing fetched.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::timeline;
use super::{Evidence, Period, short_hash};
use crate::clock::{Millis, short_duration};
use crate::domain::{Audit, Run, RunState};

const STYLE: &str = concat!(include_str!("report.css"), include_str!("timeline.css"));

fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
    .into_string()
}

fn seconds(s: f64) -> String {
    short_duration((s * 1000.0) as Millis)
}

/// ✓ met, ✗ missed, or nothing to say.
fn met(ok: Option<bool>) -> Markup {
    html! {
        @match ok {
            Some(true) => span.ok { "✓ met" },
            Some(false) => span.bad { "✗ missed" },
            None => span { "—" },
        }
    }
}

pub fn run(e: &Evidence, run: &Run, audit: &[Audit], now: Millis) -> String {
    let title = format!(
        "{}{} of {}: evidence for run {}",
        e.action,
        if e.dry_run { " (dry run)" } else { "" },
        e.group,
        e.run
    );
    let critical = e
        .recovery
        .as_ref()
        .map(|r| r.critical_path.clone())
        .unwrap_or_default();
    let bars = timeline::bars(run, audit);
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "Group" } dd { (e.group) }
            dt { "Action" } dd { (e.action) @if e.dry_run { " (dry run: nothing was changed)" } }
            dt { "Workflow" } dd { (e.workflow) }
            dt { "Trigger" } dd #trigger { (e.trigger.kind) ": " (e.trigger.by) }
            dt { "Reason" } dd { (e.reason.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (e.created) }
            dt { "Started" } dd { (e.started.as_deref().unwrap_or("—")) }
            dt { "Finished" } dd { (e.finished.as_deref().unwrap_or("—")) }
            dt { "Outcome" } dd #outcome class=(if e.state == RunState::Succeeded { "ok" } else { "bad" }) { (e.outcome) }
        }
        h2 { "Recovery time and point" }
        @match &e.recovery {
            Some(r) => {
                table #recovery {
                    thead { tr { th scope="col" { "" } th scope="col" { "Measured" } th scope="col" { "Objective" } th scope="col" { "" } } }
                    tbody {
                        tr {
                            th scope="row" { "RTO" }
                            td { (seconds(r.rto_s)) }
                            td { (e.objectives.as_ref().and_then(|o| o.rto_s).map(seconds).unwrap_or("—".into())) }
                            td { (met(e.objectives.as_ref().and_then(|o| o.rto_met))) }
                        }
                        tr {
                            th scope="row" { "RPO" }
                            td { (r.rpo.as_deref().unwrap_or("not measured")) }
                            td { (e.objectives.as_ref().and_then(|o| o.rpo_s).map(seconds).unwrap_or("—".into())) }
                            td { (met(e.objectives.as_ref().and_then(|o| o.rpo_met))) }
                        }
                    }
                }
                p {
                    "Critical path: " (r.critical_path.join(" → ")) " (" (seconds(r.critical_path_s)) "); "
                    "Lifeboat's overhead " (seconds(r.overhead_s)) "; waiting on people " (seconds(r.waiting_on_people_s)) "."
                }
            }
            None => p { "The run has not finished: no recovery time yet." }
        }
        h2 { "Timeline" }
        (timeline::chart(run, &bars, &critical, now))
        h2 { "Stages" }
        table #stages {
            thead { tr {
                th scope="col" { "Stage" } th scope="col" { "Agent" } th scope="col" { "State" }
                th scope="col" { "Attempts" } th scope="col" { "Started" } th scope="col" { "Took" }
                th scope="col" { "Checks and changes" }
            } }
            tbody {
                @for s in &e.stages {
                    tr data-stage=(s.name) {
                        th scope="row" { (s.name) }
                        td { (s.agent) }
                        td { (s.state) }
                        td { (s.attempts) }
                        td { (s.started.as_deref().unwrap_or("—")) }
                        td { (s.took_s.map(seconds).unwrap_or("—".into())) }
                        td {
                            @if let Some(m) = &s.message { p { (m) } }
                            @if !s.checks.is_empty() {
                                ul.checks { @for c in &s.checks {
                                    li class=(if c.ok { "ok" } else { "bad" }) { @if c.ok { "✓ " } @else { "✗ " } strong { (c.name) } ": " (c.detail) }
                                } }
                            }
                            @if !s.changes.is_empty() {
                                ul.changes { @for c in &s.changes {
                                    li { strong { (c.target) } ": " (c.from) " → " (c.to) }
                                } }
                            }
                            @if let Some(rpo) = &s.recovery_point { p { "Recovery point: " (rpo) } }
                            @if !s.approved_by.is_empty() { p { "Approved by " (s.approved_by.join(", ")) } }
                            @if let Some(by) = &s.skipped_by { p { "Skipped by " (by) } }
                        }
                    }
                }
            }
        }
        h2 { "Decisions" }
        @if e.decisions.is_empty() {
            p { "No person decided anything in this run." }
        } @else {
            table #decisions {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Stage" } th scope="col" { "Said" } } }
                tbody { @for d in &e.decisions {
                    tr {
                        td { (d.at) } td { (d.by) } td { code { (d.what) } }
                        td { (d.stage.as_deref().unwrap_or("")) } td { (d.message.as_deref().unwrap_or("")) }
                    }
                } }
            }
        }
        h2 { "What ran" }
        @match &e.versions {
            Some(v) => {
                table #versions {
                    tbody {
                        tr { th scope="row" { "Workflow " (e.workflow) } td { code { (v.workflow.as_deref().unwrap_or("none: worked out from the record")) } } }
                        tr { th scope="row" { "Templates" } td { code { (v.templates) } } }
                        tr { th scope="row" { "Targets" } td { code { (v.targets) } } }
                    }
                }
                p.note { "SHA-256: the workflow's of its file (sha256sum gives the same), the templates' and targets' of their definitions as the run used them." }
            }
            None => p { "This run was stored before Lifeboat kept what each run used." }
        }
        h2 { "Audit trail" }
        table #audit {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Stage" } th scope="col" { "Detail" } } }
            tbody { @for a in audit {
                tr {
                    td { (crate::clock::rfc3339(a.at)) } td { (a.actor) } td { code { (a.kind) } }
                    td { (a.stage.as_deref().unwrap_or("")) @if let Some(n) = a.attempt { " #" (n) } }
                    td { (a.message.as_deref().unwrap_or("")) }
                }
            } }
        }
        footer { "Generated by Lifeboat at " (e.generated) " from its store." }
    };
    page(&title, body)
}

pub fn period(p: &Period) -> String {
    let title = format!("Runs of {} since {}", p.group, p.since);
    let body = html! {
        h1 { (title) }
        p #counts {
            (p.rows.len()) " runs: " (p.drills_passed) " of " (p.drills) " drills passed, "
            (p.real_succeeded) " of " (p.real) " real runs succeeded."
        }
        table #runs {
            thead { tr {
                th scope="col" { "Created" } th scope="col" { "Run" } th scope="col" { "Action" }
                th scope="col" { "Trigger" } th scope="col" { "Outcome" } th scope="col" { "RTO" }
                th scope="col" { "RPO" } th scope="col" { "Objectives" } th scope="col" { "Workflow" }
            } }
            tbody { @for r in &p.rows {
                tr data-run=(r.run) {
                    td { (r.created) }
                    td { code { (r.run) } }
                    td { (r.action) @if r.dry_run { " (dry run)" } }
                    td { (r.trigger) }
                    td class=(if r.state == "succeeded" { "ok" } else { "bad" }) { (r.state) }
                    td { (r.rto_s.map(seconds).unwrap_or("—".into())) }
                    td { (r.rpo_s.map(seconds).unwrap_or("—".into())) }
                    td { (met(r.objectives_met)) }
                    td { (r.workflow) @if let Some(h) = &r.workflow_hash { " " code title=(h) { (short_hash(h)) } } }
                }
            } }
        }
        footer { "Generated by Lifeboat at " (p.generated) " from its store." }
    };
    page(&title, body)
}
