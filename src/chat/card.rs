//! A run's live card, as every platform shows it: one line per stage with its state,
//! attempt and elapsed time, who decided what, the buttons that apply now, and once the
//! run has ended, the total recovery time. Built from the run as the store holds it, never
//! from one event, so the latest state always wins.

use super::people::mention;
use crate::clock::Millis;
use crate::domain::{AlertTally, Audit, EventKind, Platform, Run, RunId, RunState, StageState};

#[derive(Clone, Debug, PartialEq)]
pub struct Card {
    pub run: RunId,
    /// `Failover of petstore`, with `(dry run)` for a rehearsal.
    pub title: String,
    pub state: RunState,
    /// Who asked and why; how it ended.
    pub context: Vec<String>,
    pub stages: Vec<StageLine>,
    /// Who pressed what: `<@U1> approved dial`.
    pub decisions: Vec<String>,
    pub buttons: Vec<Button>,
    /// Once the run has ended: from its start to its end.
    pub total: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StageLine {
    pub name: String,
    pub agent: String,
    pub state: StageState,
    /// Its gate is open: it waits for a person.
    pub awaiting_approval: bool,
    pub attempts: u32,
    /// How long it has run, or ran.
    pub elapsed: Option<Millis>,
}

impl StageLine {
    /// The mark before the stage's name.
    pub fn mark(&self) -> &'static str {
        if self.awaiting_approval {
            return "⏸️";
        }
        match self.state {
            StageState::Pending | StageState::Ready => "⬜",
            StageState::Dispatched | StageState::Running => "▶️",
            StageState::Retrying => "🔁",
            StageState::Succeeded => "✅",
            StageState::Failed => "❌",
            StageState::Skipped => "⏭️",
            StageState::Cancelled => "🚫",
        }
    }

    /// `waiting for approval`, or the state's own word.
    pub fn status(&self) -> &'static str {
        if self.awaiting_approval {
            "waiting for approval"
        } else {
            self.state.as_str()
        }
    }
}

/// A button on a card. Its value names the run (or, for an offer's buttons, the offer) it
/// acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    Approve,
    Reject,
    Cancel,
    /// A confirmation's Approve: starts the offer's run.
    OfferApprove,
    /// A confirmation's Reject.
    OfferReject,
    /// Stops a countdown.
    Veto,
    /// Ends a countdown now: starts its run.
    StartNow,
}

impl Button {
    const ALL: [Button; 7] = [
        Button::Approve,
        Button::Reject,
        Button::Cancel,
        Button::OfferApprove,
        Button::OfferReject,
        Button::Veto,
        Button::StartNow,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Button::Approve | Button::OfferApprove => "Approve",
            Button::Reject | Button::OfferReject => "Reject",
            Button::Cancel => "Cancel",
            Button::Veto => "Veto",
            Button::StartNow => "Start now",
        }
    }

    /// What a press says it is: the action id (Slack), the head of the custom id (Discord).
    pub fn id(self) -> &'static str {
        match self {
            Button::Approve => "approve",
            Button::Reject => "reject",
            Button::Cancel => "cancel",
            Button::OfferApprove => "offer_approve",
            Button::OfferReject => "offer_reject",
            Button::Veto => "veto",
            Button::StartNow => "start_now",
        }
    }

    pub fn from_id(id: &str) -> Option<Button> {
        Button::ALL.into_iter().find(|b| b.id() == id)
    }

    /// Whether it goes ahead (green), stops something (red), or neither.
    pub fn tone(self) -> Tone {
        match self {
            Button::Approve | Button::OfferApprove | Button::StartNow => Tone::Go,
            Button::Reject | Button::OfferReject | Button::Cancel | Button::Veto => Tone::Stop,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Go,
    Stop,
}

/// The alerts behind a run, as its card says them.
fn alert_lines(tally: &AlertTally, on: Option<Platform>) -> Vec<String> {
    let a = &tally.first;
    let mut first = format!(
        "Started by alert {}",
        link(a.link.as_deref(), &a.headline, on)
    );
    if let Some(summary) = &a.summary {
        first.push_str(&format!(": {summary}"));
    }
    let mut lines = vec![first];
    if tally.alerts > 1 || tally.repeats > 0 {
        lines.push(format!(
            "{} alert{} folded in, {} re-send{}",
            tally.alerts,
            if tally.alerts == 1 { "" } else { "s" },
            tally.repeats,
            if tally.repeats == 1 { "" } else { "s" }
        ));
    }
    lines
}

/// `text` linking to `url` in the platform's markup.
pub fn link(url: Option<&str>, text: &str, on: Option<Platform>) -> String {
    match (url, on) {
        (Some(u), Some(Platform::Slack)) => format!("<{u}|{text}>"),
        (Some(u), Some(Platform::Discord)) => format!("[{text}]({u})"),
        (Some(u), None) => format!("{text} ({u})"),
        (None, _) => format!("`{text}`"),
    }
}

impl Card {
    /// The card of `run` as seen on `on` (mentions are that platform's), at `now`, with the
    /// alerts behind it if any.
    pub fn of(
        run: &Run,
        audit: &[Audit],
        alerts: Option<&AlertTally>,
        on: Option<Platform>,
        now: Millis,
    ) -> Card {
        let open_gates = run.open_gates();
        let stages = run
            .plan
            .iter()
            .zip(&run.stages)
            .enumerate()
            .map(|(i, (p, s))| StageLine {
                name: p.name.clone(),
                agent: p.agent.clone(),
                state: s.state,
                awaiting_approval: open_gates.contains(&i),
                attempts: s.attempts,
                elapsed: s
                    .started_at
                    .map(|start| s.finished_at.unwrap_or(now) - start),
            })
            .collect();
        let mut context = vec![match &run.reason {
            Some(reason) => format!("Requested by {}: {reason}", mention(&run.requested_by, on)),
            None => format!("Requested by {}", mention(&run.requested_by, on)),
        }];
        if let Some(tally) = alerts {
            context.extend(alert_lines(tally, on));
        }
        if let (true, Some(message)) = (run.state.is_final(), &run.message) {
            context.push(message.clone());
        }
        let decisions = audit
            .iter()
            .filter_map(|a| {
                let who = mention(&a.actor, on);
                let stage = a.stage.as_deref().unwrap_or("the run");
                match a.kind {
                    EventKind::StageApproved if a.actor != crate::domain::Actor::DryRun => {
                        Some(format!("{who} approved `{stage}`"))
                    }
                    EventKind::StageRejected => Some(format!("{who} rejected `{stage}`")),
                    EventKind::Run(RunState::Cancelled)
                        if !audit.iter().any(|b| b.kind == EventKind::StageRejected) =>
                    {
                        Some(format!("{who} cancelled the run"))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut buttons = Vec::new();
        if !run.state.is_final() {
            if !open_gates.is_empty() {
                buttons.extend([Button::Approve, Button::Reject]);
            }
            buttons.push(Button::Cancel);
        }
        Card {
            run: run.id,
            title: format!(
                "{} of {}{}",
                capitalised(run.action.as_str()),
                run.group,
                if run.dry_run { " (dry run)" } else { "" }
            ),
            state: run.state,
            context,
            stages,
            decisions,
            buttons,
            total: run.finished_at.map(|end| end - run.created_at),
        }
    }

    /// The card shows the run's final state.
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
