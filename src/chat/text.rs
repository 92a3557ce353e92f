//! Replies and cards as text: what `/dr status`, `runs`, `locks` and the summary say, and
//! the card as the terminal shows it.

use super::card::Card;
use crate::clock::{Millis, short_duration};
use crate::domain::{Run, RunState};
use crate::store::HeldLease;

/// One line about a run: `ID failover of petstore: running`.
pub fn run_line(run: &Run) -> String {
    let done = run
        .stages
        .iter()
        .filter(|s| s.state == crate::domain::StageState::Succeeded)
        .count();
    format!(
        "`{}` {} of `{}`{}: {} ({done}/{} stages done)",
        run.id,
        run.action,
        run.group,
        if run.dry_run { " (dry run)" } else { "" },
        run.state,
        run.stages.len()
    )
}

/// A card as lines of text.
pub fn card(card: &Card) -> String {
    let mut out = format!("*{}*: {}\n", card.title, state_word(card.state));
    for line in &card.context {
        out.push_str(line);
        out.push('\n');
    }
    for s in &card.stages {
        out.push_str(&s.describe());
        out.push('\n');
    }
    for d in &card.decisions {
        out.push_str(d);
        out.push('\n');
    }
    if let Some(total) = card.total {
        out.push_str(&format!("Total recovery time: {}\n", short_duration(total)));
    }
    for line in &card.recovery {
        out.push_str(line);
        out.push('\n');
    }
    let labels: Vec<String> = card
        .buttons
        .iter()
        .map(|b| format!("[{}]", b.label()))
        .chain(card.stage_buttons.iter().flat_map(|(stage, buttons)| {
            buttons
                .iter()
                .map(move |b| format!("[{}]", b.label_for(stage)))
        }))
        .collect();
    if !labels.is_empty() {
        out.push_str(&labels.join(" "));
        out.push('\n');
    }
    out
}

/// The run's state as the card's headline says it.
pub fn state_word(state: RunState) -> &'static str {
    match state {
        RunState::Pending => "pending",
        RunState::Running => "running",
        RunState::AwaitingApproval => "waiting for approval",
        RunState::Succeeded => "succeeded",
        RunState::Failed => "failed",
        RunState::Cancelled => "cancelled",
    }
}

/// The closing summary: each stage's duration and the total recovery time.
pub fn summary(run: &Run) -> String {
    let mut out = format!(
        "{} of `{}` {}{}",
        run.action,
        run.group,
        run.state,
        run.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    if let Some(end) = run.finished_at {
        out.push_str(&format!(
            ". Total recovery time {}.",
            short_duration(end - run.created_at)
        ));
    }
    for (p, s) in run.plan.iter().zip(&run.stages) {
        let took = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => short_duration(b - a),
            _ => "-".into(),
        };
        out.push_str(&format!("\n`{}` {} in {took}", p.name, s.state));
    }
    out
}

/// The leases held now, one per line.
pub fn locks(leases: &[HeldLease], now: Millis) -> String {
    if leases.is_empty() {
        return "No leases are held.".into();
    }
    leases
        .iter()
        .map(|l| {
            format!(
                "`{}` held for `{}` of `{}` by `{}`, expires in {}",
                l.resource,
                l.stage,
                l.run_id,
                l.holder,
                short_duration(l.expires_at - now)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Agent processes heard from lately, live ones first, with when each was last seen.
pub fn agents(agents: &[(crate::store::AgentBeat, bool)], now: Millis) -> String {
    if agents.is_empty() {
        return "No agent has sent a heartbeat in the last hour.".into();
    }
    agents
        .iter()
        .map(|(a, live)| {
            format!(
                "{} `{}` ({}) on {}, v{}: {} in flight, last seen {} ago",
                if *live { "🟢" } else { "⚪" },
                a.instance,
                a.kinds.join(", "),
                a.host,
                a.version,
                a.in_flight,
                short_duration((now - a.last_seen).max(0))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
