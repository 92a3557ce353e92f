//! The Markdown forms, for a ticket or a wiki page: the same content as the HTML, with the
//! timeline as a table of attempts.

use std::fmt::Write;

use super::{Evidence, Period, short_hash};
use crate::clock::{Millis, short_duration};

/// A table cell: no pipe or newline breaks the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn seconds(s: f64) -> String {
    short_duration((s * 1000.0) as Millis)
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "✓ met",
        Some(false) => "✗ missed",
        None => "—",
    }
}

pub fn run(e: &Evidence) -> String {
    let mut out = String::new();
    let dry = if e.dry_run { " (dry run)" } else { "" };
    let _ = writeln!(
        out,
        "# {}{dry} of {}: evidence for run {}\n",
        e.action, e.group, e.run
    );
    let facts = [
        ("Group", e.group.clone()),
        ("Action", format!("{}{dry}", e.action)),
        ("Workflow", e.workflow.clone()),
        ("Trigger", format!("{}: {}", e.trigger.kind, e.trigger.by)),
        ("Reason", e.reason.clone().unwrap_or_else(|| "—".into())),
        ("Created", e.created.clone()),
        ("Started", e.started.clone().unwrap_or_else(|| "—".into())),
        ("Finished", e.finished.clone().unwrap_or_else(|| "—".into())),
        ("Outcome", e.outcome.clone()),
    ];
    for (k, v) in facts {
        let _ = writeln!(out, "- **{k}:** {}", cell(&v));
    }
    out.push_str("\n## Recovery time and point\n\n");
    match &e.recovery {
        Some(r) => {
            let o = e.objectives.as_ref();
            out.push_str("| | Measured | Objective | |\n|---|---|---|---|\n");
            let _ = writeln!(
                out,
                "| RTO | {} | {} | {} |",
                seconds(r.rto_s),
                o.and_then(|o| o.rto_s).map_or("—".into(), seconds),
                met(o.and_then(|o| o.rto_met))
            );
            let _ = writeln!(
                out,
                "| RPO | {} | {} | {} |",
                cell(r.rpo.as_deref().unwrap_or("not measured")),
                o.and_then(|o| o.rpo_s).map_or("—".into(), seconds),
                met(o.and_then(|o| o.rpo_met))
            );
            let _ = writeln!(
                out,
                "\nCritical path: {} ({}); Lifeboat's overhead {}; waiting on people {}.",
                r.critical_path.join(" → "),
                seconds(r.critical_path_s),
                seconds(r.overhead_s),
                seconds(r.waiting_on_people_s)
            );
        }
        None => out.push_str("The run has not finished: no recovery time yet.\n"),
    }
    out.push_str("\n## Stages\n\n| Stage | Agent | State | Attempts | Started | Took | Checks and changes |\n|---|---|---|---|---|---|---|\n");
    for s in &e.stages {
        let mut what: Vec<String> = Vec::new();
        if let Some(m) = &s.message {
            what.push(m.clone());
        }
        what.extend(
            s.checks
                .iter()
                .map(|c| format!("{} {}: {}", if c.ok { "✓" } else { "✗" }, c.name, c.detail)),
        );
        what.extend(
            s.changes
                .iter()
                .map(|c| format!("{}: {} → {}", c.target, c.from, c.to)),
        );
        if let Some(rpo) = &s.recovery_point {
            what.push(format!("recovery point: {rpo}"));
        }
        if !s.approved_by.is_empty() {
            what.push(format!("approved by {}", s.approved_by.join(", ")));
        }
        if let Some(by) = &s.skipped_by {
            what.push(format!("skipped by {by}"));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&s.name),
            cell(&s.agent),
            s.state,
            s.attempts,
            s.started.as_deref().unwrap_or("—"),
            s.took_s.map_or("—".into(), seconds),
            cell(&what.join("<br>"))
        );
    }
    out.push_str("\n## Decisions\n\n");
    if e.decisions.is_empty() {
        out.push_str("No person decided anything in this run.\n");
    } else {
        out.push_str("| When | Who | What | Stage | Said |\n|---|---|---|---|---|\n");
        for d in &e.decisions {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} |",
                d.at,
                cell(&d.by),
                d.what,
                cell(d.stage.as_deref().unwrap_or("")),
                cell(d.message.as_deref().unwrap_or(""))
            );
        }
    }
    out.push_str("\n## What ran\n\n");
    match &e.versions {
        Some(v) => {
            let _ = writeln!(
                out,
                "- Workflow {}: `{}`\n- Templates: `{}`\n- Targets: `{}`\n\nSHA-256: the workflow's of its file (sha256sum gives the same), the templates' and targets' of their definitions as the run used them.",
                e.workflow,
                v.workflow
                    .as_deref()
                    .unwrap_or("none: worked out from the record"),
                v.templates,
                v.targets
            );
        }
        None => out.push_str("This run was stored before Lifeboat kept what each run used.\n"),
    }
    let _ = writeln!(
        out,
        "\n---\nGenerated by Lifeboat at {} from its store.",
        e.generated
    );
    out
}

pub fn period(p: &Period) -> String {
    let mut out = format!(
        "# Runs of {} since {}\n\n{} runs: {} of {} drills passed, {} of {} real runs succeeded.\n\n",
        p.group,
        p.since,
        p.rows.len(),
        p.drills_passed,
        p.drills,
        p.real_succeeded,
        p.real
    );
    out.push_str("| Created | Run | Action | Trigger | Outcome | RTO | RPO | Objectives | Workflow |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in &p.rows {
        let _ = writeln!(
            out,
            "| {} | `{}` | {}{} | {} | {} | {} | {} | {} | {}{} |",
            r.created,
            r.run,
            r.action,
            if r.dry_run { " (dry run)" } else { "" },
            cell(&r.trigger),
            r.state,
            r.rto_s.map_or("—".into(), seconds),
            r.rpo_s.map_or("—".into(), seconds),
            met(r.objectives_met),
            cell(&r.workflow),
            r.workflow_hash
                .as_deref()
                .map(|h| format!(" `{}`", short_hash(h)))
                .unwrap_or_default()
        );
    }
    if p.truncated {
        out.push_str("\nOnly the newest runs are listed: ask for a shorter period for the rest.\n");
    }
    let _ = writeln!(
        out,
        "\n---\nGenerated by Lifeboat at {} from its store.",
        p.generated
    );
    out
}
