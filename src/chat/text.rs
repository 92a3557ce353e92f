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
        out.push_str(&format!(
            "{} `{}` ({}) {}{}{}\n",
            s.mark(),
            s.name,
            s.agent,
            s.status(),
            if s.attempts > 1 {
                format!(" · attempt {}", s.attempts)
            } else {
                String::new()
            },
            s.elapsed
                .map(|ms| format!(" · {}", short_duration(ms)))
                .unwrap_or_default()
        ));
    }
    for d in &card.decisions {
        out.push_str(d);
        out.push('\n');
    }
    if let Some(total) = card.total {
        out.push_str(&format!("Total recovery time: {}\n", short_duration(total)));
    }
    if !card.buttons.is_empty() {
        let labels: Vec<String> = card
            .buttons
            .iter()
            .map(|b| format!("[{}]", b.label()))
            .collect();
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
