//! An offer: a run an alert proposes. Mode `auto` starts it at once; `confirm` waits for
//! someone allowed to approve it; `countdown` starts it at its deadline unless someone
//! allowed vetoes it. Its id is the id of the run it starts, so that starting it again
//! (after a crash, or from another replica) finds that run instead of making a second.

use super::actor::Actor;
use super::alert::AlertBrief;
use super::ids::RunId;
use crate::clock::Millis;
use crate::workflow::Action;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfferState {
    /// Waiting for a person, or for its deadline.
    Open,
    /// Decided to start; the run is being made.
    Starting,
    /// Its run was made.
    Started,
    /// The group had another active run by then; the offer's alerts went to it.
    Joined,
    /// A person vetoed the countdown.
    Vetoed,
    /// A person rejected the confirmation.
    Rejected,
    /// Every alert behind it resolved before it started.
    Withdrawn,
    /// Its run could not be made (see `message`).
    Failed,
}

crate::string_enum::string_enum!(OfferState, "offer state", "" {
    Open = "open",
    Starting = "starting",
    Started = "started",
    Joined = "joined",
    Vetoed = "vetoed",
    Rejected = "rejected",
    Withdrawn = "withdrawn",
    Failed = "failed",
});

impl OfferState {
    /// Nothing more happens to it.
    pub fn is_final(self) -> bool {
        !matches!(self, OfferState::Open | OfferState::Starting)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferMode {
    Auto,
    Confirm,
    Countdown,
}

crate::string_enum::string_enum!(OfferMode, "offer mode", "" {
    Auto = "auto",
    Confirm = "confirm",
    Countdown = "countdown",
});

#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// Also the id of the run it starts.
    pub id: RunId,
    pub route: String,
    pub group: String,
    pub action: Action,
    pub mode: OfferMode,
    pub state: OfferState,
    pub opened_at: Millis,
    /// A countdown's end.
    pub deadline: Option<Millis>,
    pub decided_by: Option<Actor>,
    pub decided_at: Option<Millis>,
    /// The run it started or joined.
    pub run_id: Option<RunId>,
    pub message: Option<String>,
    /// The alert that opened it.
    pub alert: AlertBrief,
}

/// The one offer at a time a group and action may have open.
pub fn open_key(group: &str, action: Action) -> String {
    format!("{group}/{action}")
}
