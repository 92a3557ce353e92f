//! A run's live card, as every platform shows it: one line per stage with its state,
//! attempt and elapsed time, who decided what, the buttons that apply now, and once the
//! run has ended, the total recovery time. Built from the run as the store holds it, never
//! from one event, so the latest state always wins.

use super::people::mention;
use crate::clock::Millis;
use crate::domain::{Audit, EventKind, Platform, Run, RunId, RunState, StageState};

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

/// A button on the card. Its value names the run it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    Approve,
    Reject,
    Cancel,
}

impl Button {
    pub fn label(self) -> &'static str {
        match self {
            Button::Approve => "Approve",
            Button::Reject => "Reject",
            Button::Cancel => "Cancel",
        }
    }

    /// What a press says it is: the action id (Slack), the head of the custom id (Discord).
    pub fn id(self) -> &'static str {
        match self {
            Button::Approve => "approve",
            Button::Reject => "reject",
            Button::Cancel => "cancel",
        }
    }

    pub fn from_id(id: &str) -> Option<Button> {
        [Button::Approve, Button::Reject, Button::Cancel]
            .into_iter()
            .find(|b| b.id() == id)
    }
}

impl Card {
    /// The card of `run` as seen on `on` (mentions are that platform's), at `now`.
    pub fn of(run: &Run, audit: &[Audit], on: Option<Platform>, now: Millis) -> Card {
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
