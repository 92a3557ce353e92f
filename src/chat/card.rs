//! A run's live card, as every platform shows it: one line per stage with its state,
//! attempt and elapsed time, who decided what, the buttons that apply now, and once the
//! run has ended, the total recovery time. Built from the run as the store holds it, never
//! from one event, so the latest state always wins.

use std::fmt;
use std::str::FromStr;

use super::capitalised;
use super::markup::{Markup, link, mention};
use crate::clock::{Millis, short_duration};
use crate::domain::{Actor, AlertTally, Audit, EventKind, Run, RunId, RunState, StageState};
use crate::orchestrator::machine::RETRIED_NOW;

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
    /// Buttons that act on one stage (Retry now, Skip), by stage name.
    pub stage_buttons: Vec<(String, Vec<Button>)>,
    /// Once the run has ended: from its start to its end.
    pub total: Option<Millis>,
    /// Once the run has ended: its scorecard (critical path, overhead, waits, earlier
    /// runs), line by line.
    pub recovery: Vec<String>,
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
    /// At a gate that needs more than one person: approvals given, and needed.
    pub approvals: Option<(usize, u8)>,
    /// What its agent stopped to ask (a data-loss gate), written for the platform.
    pub held: Option<String>,
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

    /// The stage's line on every platform: `✅ `promote` (database) succeeded · 1.2s`.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} `{}` ({}) {}",
            self.mark(),
            self.name,
            self.agent,
            self.status()
        );
        if let (true, Some((given, needed))) = (self.awaiting_approval, self.approvals) {
            line.push_str(&format!(" · {given} of {needed} approvals"));
        }
        if self.attempts > 1 {
            line.push_str(&format!(" · attempt {}", self.attempts));
        }
        if let Some(ms) = self.elapsed {
            line.push_str(&format!(" · {}", short_duration(ms)));
        }
        if let (true, Some(held)) = (self.awaiting_approval, &self.held) {
            line.push_str(&format!(
                "\n      ⚠️ {held}: approve to go on, reject to stop"
            ));
        }
        line
    }
}

/// What a button acts on: a run (or offer), and for a stage's buttons, the stage. Carried
/// in its value as `RUN` or `RUN/STAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub run: RunId,
    pub stage: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stage {
            Some(stage) => write!(f, "{}/{stage}", self.run),
            None => write!(f, "{}", self.run),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (run, stage) = match s.split_once('/') {
            Some((run, stage)) if !stage.is_empty() => (run, Some(stage.to_string())),
            Some(_) => return Err(format!("`{s}` names no stage")),
            None => (s, None),
        };
        let run = RunId::from_str(run).map_err(|_| format!("`{run}` is not a run id"))?;
        Ok(Target { run, stage })
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
    /// Goes on from a failed or cancelled run.
    Resume,
    /// Dispatches a stage waiting out its backoff now.
    RetryNow,
    /// Gives up on a failed stage, once confirmed with a reason.
    Skip,
    /// On an evacuation's card: resumes a failed group.
    EvacuationResume,
    /// On an evacuation's card: gives up on a failed or held group, once confirmed with a
    /// reason.
    EvacuationSkip,
    /// On an evacuation's card: starts none of the groups not yet started.
    EvacuationAbort,
}

impl Button {
    const ALL: [Button; 13] = [
        Button::Approve,
        Button::Reject,
        Button::Cancel,
        Button::OfferApprove,
        Button::OfferReject,
        Button::Veto,
        Button::StartNow,
        Button::Resume,
        Button::RetryNow,
        Button::Skip,
        Button::EvacuationResume,
        Button::EvacuationSkip,
        Button::EvacuationAbort,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Button::Approve | Button::OfferApprove => "Approve",
            Button::Reject | Button::OfferReject => "Reject",
            Button::Cancel => "Cancel",
            Button::Veto => "Veto",
            Button::StartNow => "Start now",
            Button::Resume | Button::EvacuationResume => "Resume",
            Button::RetryNow => "Retry now",
            Button::Skip | Button::EvacuationSkip => "Skip",
            Button::EvacuationAbort => "Abort the rest",
        }
    }

    /// Whether it answers an alert's offer rather than controls a run.
    pub fn for_offer(self) -> bool {
        matches!(
            self,
            Button::OfferApprove | Button::OfferReject | Button::Veto | Button::StartNow
        )
    }

    /// Whether it acts on an evacuation (or one of its groups) rather than a run.
    pub fn for_evacuation(self) -> bool {
        matches!(
            self,
            Button::EvacuationResume | Button::EvacuationSkip | Button::EvacuationAbort
        )
    }

    /// The label of a stage's button: `Retry now: dial`.
    pub fn label_for(self, stage: &str) -> String {
        format!("{}: {stage}", self.label())
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
            Button::Resume => "resume",
            Button::RetryNow => "retry_now",
            Button::Skip => "skip",
            Button::EvacuationResume => "evacuation_resume",
            Button::EvacuationSkip => "evacuation_skip",
            Button::EvacuationAbort => "evacuation_abort",
        }
    }

    pub fn from_id(id: &str) -> Option<Button> {
        Button::ALL.into_iter().find(|b| b.id() == id)
    }

    /// Whether it goes ahead (green), stops something (red), or neither.
    pub fn tone(self) -> Tone {
        match self {
            Button::Approve
            | Button::OfferApprove
            | Button::StartNow
            | Button::Resume
            | Button::RetryNow
            | Button::EvacuationResume => Tone::Go,
            Button::Reject
            | Button::OfferReject
            | Button::Cancel
            | Button::Veto
            | Button::Skip
            | Button::EvacuationSkip
            | Button::EvacuationAbort => Tone::Stop,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Go,
    Stop,
}

/// The alerts behind a run, as its card says them.
fn alert_lines(tally: &AlertTally, on: &dyn Markup) -> Vec<String> {
    let a = &tally.first;
    let mut first = format!(
        "Started by alert {}",
        link(a.link.as_deref(), &a.headline, on)
    );
    if let Some(summary) = &a.summary {
        first.push_str(&format!(": {}", on.escape(summary)));
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

impl Card {
    /// The card of `run` as seen on `on` (mentions are that platform's), at `now`, with the
    /// alerts behind it if any.
    pub fn of(
        run: &Run,
        audit: &[Audit],
        alerts: Option<&AlertTally>,
        on: &dyn Markup,
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
                approvals: (run.gated(i) && run.approvals_needed(i) > 1)
                    .then_some((s.approvals.len(), run.approvals_needed(i))),
                held: s.hold.as_ref().map(|h| on.escape(&h.message)),
            })
            .collect();
        let mut context = vec![match &run.reason {
            Some(reason) => format!(
                "Requested by {}: {}",
                mention(&run.requested_by, on),
                on.escape(reason)
            ),
            None => format!("Requested by {}", mention(&run.requested_by, on)),
        }];
        if let Some(tally) = alerts {
            context.extend(alert_lines(tally, on));
        }
        if let (true, Some(message)) = (run.state.is_final(), &run.message) {
            context.push(on.escape(message));
        }
        let decisions = audit
            .iter()
            .filter_map(|a| {
                let who = mention(&a.actor, on);
                let stage = a.stage.as_deref().unwrap_or("the run");
                match a.kind {
                    EventKind::StageApproved if a.actor != Actor::DryRun => {
                        Some(format!("{who} approved `{stage}`"))
                    }
                    EventKind::StageRejected => Some(format!("{who} rejected `{stage}`")),
                    EventKind::Run(RunState::Cancelled)
                        if !audit.iter().any(|b| b.kind == EventKind::StageRejected) =>
                    {
                        Some(format!("{who} cancelled the run"))
                    }
                    EventKind::RunResumed => Some(format!("{who} resumed the run")),
                    EventKind::Stage(StageState::Skipped) if a.actor.is_person() => {
                        Some(format!("{who} skipped `{stage}`"))
                    }
                    EventKind::Stage(StageState::Dispatched)
                        if a.message.as_deref() == Some(RETRIED_NOW) =>
                    {
                        Some(format!("{who} retried `{stage}` now"))
                    }
                    EventKind::PreflightOverridden => {
                        Some(format!("{who} forced the start without every agent"))
                    }
                    EventKind::DriftOverridden => Some(format!(
                        "{who} forced the failback without checking what the failover left"
                    )),
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
        } else if matches!(run.state, RunState::Failed | RunState::Cancelled) {
            buttons.push(Button::Resume);
        }
        let stage_buttons = if matches!(run.state, RunState::Succeeded | RunState::Cancelled) {
            Vec::new()
        } else {
            run.plan
                .iter()
                .zip(&run.stages)
                .filter_map(|(p, s)| match s.state {
                    StageState::Retrying => {
                        Some((p.name.clone(), vec![Button::RetryNow, Button::Skip]))
                    }
                    StageState::Failed => Some((p.name.clone(), vec![Button::Skip])),
                    _ => None,
                })
                .collect()
        };
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
            stage_buttons,
            total: run.finished_at.map(|end| end - run.created_at),
            recovery: Vec::new(),
        }
    }

    /// The card with the run's scorecard, once it has one.
    pub fn with_recovery(mut self, recovery: Option<&crate::domain::scorecard::Recovery>) -> Card {
        self.recovery = recovery.map(|r| r.lines()).unwrap_or_default();
        self
    }

    /// The card shows the run's final state.
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::markup::Plain;
    use crate::domain::{StageRun, fixture};

    #[test]
    fn a_failed_run_offers_resume_and_its_failed_stage_skip() {
        let mut run = fixture::run();
        run.state = RunState::Failed;
        run.stages[0].state = StageState::Failed;
        run.stages[1].state = StageState::Skipped;
        let card = Card::of(&run, &[], None, &Plain, 0);
        assert_eq!(card.buttons, [Button::Resume]);
        assert_eq!(
            card.stage_buttons,
            [("scale".to_string(), vec![Button::Skip])]
        );

        run.state = RunState::Running;
        run.stages[0].state = StageState::Retrying;
        let card = Card::of(&run, &[], None, &Plain, 0);
        assert_eq!(card.buttons, [Button::Cancel]);
        assert_eq!(
            card.stage_buttons,
            [("scale".to_string(), vec![Button::RetryNow, Button::Skip])]
        );

        let done = Card::of(&fixture::run(), &[], None, &Plain, 0);
        assert!(done.buttons.is_empty() && done.stage_buttons.is_empty());
    }

    #[test]
    fn a_targets_text_names_its_run_and_stage() {
        let run = fixture::run().id;
        for target in [
            Target { run, stage: None },
            Target {
                run,
                stage: Some("dial".into()),
            },
        ] {
            assert_eq!(target.to_string().parse::<Target>(), Ok(target));
        }
        assert!(format!("{run}/").parse::<Target>().is_err());
        assert!("nope/dial".parse::<Target>().is_err());
    }

    #[test]
    fn a_gate_needing_two_says_how_many_it_has() {
        let mut run = fixture::run();
        run.state = RunState::AwaitingApproval;
        run.plan[2].approvals = 2;
        run.stages[2] = StageRun {
            state: StageState::Ready,
            approvals: vec![crate::domain::Approval {
                by: fixture::slack("U1"),
                person: "alice".into(),
                at: 0,
            }],
            ..StageRun::default()
        };
        let card = Card::of(&run, &[], None, &crate::chat::slack::SLACK, 0);
        assert_eq!(
            card.stages[2].describe(),
            "⏸️ `dial` (dial) waiting for approval · 1 of 2 approvals"
        );
    }

    #[test]
    fn text_from_elsewhere_mentions_no_one_on_any_platform() {
        let mut run = fixture::run();
        run.reason = Some("<!channel> @all see [this](http://evil) & <@U1>".into());
        let slack = Card::of(&run, &[], None, &crate::chat::slack::SLACK, 0);
        assert!(
            slack.context[0]
                .ends_with(": &lt;!channel&gt; @all see [this](http://evil) &amp; &lt;@U1&gt;"),
            "{:?}",
            slack.context
        );
        let mm = Card::of(&run, &[], None, &crate::chat::mattermost::MATTERMOST, 0);
        assert!(
            mm.context[0].contains("@\u{200B}all") && mm.context[0].contains("\\[this]"),
            "{:?}",
            mm.context
        );
        assert!(!mm.context[0].contains("@all"), "{:?}", mm.context);
        let discord = Card::of(&run, &[], None, &crate::chat::discord::DISCORD, 0);
        assert!(
            !discord.context[0].contains("<@U1>"),
            "{:?}",
            discord.context
        );
        let plain = Card::of(&run, &[], None, &Plain, 0);
        assert!(plain.context[0].ends_with("& <@U1>"), "{:?}", plain.context);
    }
}
