//! What a person may tell a run or an offer, whichever way they say it (API, chat, command
//! line): one type, so that a word no control has is an error everywhere, never a cancel.

/// A person's control over a run (approve to skip) or an alert's offer (approve, reject,
/// veto, start now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    /// Pass an approval gate (the named stage, or every gate waiting).
    Approve { stage: Option<String> },
    /// Say no at an approval gate: the run fails.
    Reject { reason: Option<String> },
    /// Stop the run (`abort` is the same word).
    Cancel { reason: Option<String> },
    /// Go on from a failed or cancelled run.
    Resume { force: bool },
    /// Send a stage waiting out its backoff now.
    RetryNow { stage: String },
    /// Give up on a failed stage, so that its dependents go on.
    Skip { stage: String, reason: String },
    /// Stop an offer's countdown.
    Veto,
    /// End an offer's countdown early: start the run now.
    StartNow,
}

impl Control {
    /// The word people use for it: in API paths, chat commands and refusals.
    pub fn word(&self) -> &'static str {
        match self {
            Control::Approve { .. } => "approve",
            Control::Reject { .. } => "reject",
            Control::Cancel { .. } => "cancel",
            Control::Resume { .. } => "resume",
            Control::RetryNow { .. } => "retry",
            Control::Skip { .. } => "skip",
            Control::Veto => "veto",
            Control::StartNow => "start",
        }
    }

    /// What a channel is told a person did: "{who} {done} failover of petstore".
    pub fn done(&self) -> String {
        match self {
            Control::Approve { .. } => "approved".into(),
            Control::Reject { .. } => "rejected".into(),
            Control::Cancel { .. } => "cancelled".into(),
            Control::Resume { .. } => "resumed".into(),
            Control::RetryNow { stage } => format!("retried `{stage}` now in"),
            Control::Skip { stage, reason } => format!("skipped `{stage}` ({reason}) in"),
            Control::Veto => "vetoed".into(),
            Control::StartNow => "started".into(),
        }
    }

    /// Whether it is for an offer rather than a run.
    pub fn for_offers(&self) -> bool {
        matches!(self, Control::Veto | Control::StartNow)
    }
}
