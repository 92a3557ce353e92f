//! An offer's card, in the group's standing channel: the alert, what happens next (a
//! countdown to the run, or a question), the buttons that apply, and once decided, how it
//! ended and by whose word.

use super::capitalised;
use super::card::Button;
use super::markup::{Markup, link, mention};
use crate::clock::Millis;
use crate::domain::{Offer, OfferMode, OfferState};

/// A card in a group's standing channel, as every platform draws it: an offer's, or an
/// evacuation's.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferCard {
    /// What the card is of (`offer`, `evacuation`): its footer, and its Slack block ids.
    pub about: &'static str,
    /// The id of what it is of, which its buttons carry.
    pub id: String,
    /// `⏳ Failover of petstore starts in 1:45`.
    pub title: String,
    pub lines: Vec<String>,
    pub buttons: Vec<Button>,
    /// Buttons about one part each (an evacuation's failed group), carrying `ID/PART`.
    pub rows: Vec<(String, Vec<Button>)>,
    /// Nothing more will change on it.
    pub settled: bool,
}

/// How long a started offer's card waits for its run's incident to link to.
const INCIDENT_WAIT_MS: Millis = 60_000;

/// `1:45` (or `1:02:03`): rounded up, so that a countdown never shows 0:00 early.
pub fn clock_face(ms: Millis) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

impl OfferCard {
    /// The card of `offer` at `now`, with `alerts` alerts behind it; `incident` is where
    /// its run is followed, once it has one.
    pub fn of(
        offer: &Offer,
        alerts: i64,
        incident: Option<&str>,
        on: &dyn Markup,
        now: Millis,
    ) -> OfferCard {
        let what = format!("{} of {}", capitalised(offer.action.as_str()), offer.group);
        let by = offer
            .decided_by
            .as_ref()
            .map(|a| mention(a, on))
            .unwrap_or_default();
        let (title, buttons) = match (offer.state, offer.mode) {
            (OfferState::Open, OfferMode::Countdown) => (
                format!(
                    "⏳ {what} starts in {}",
                    clock_face(offer.deadline.unwrap_or(now) - now)
                ),
                vec![Button::Veto, Button::StartNow],
            ),
            (OfferState::Open, _) => (
                format!("❓ {what}? An alert asks for it"),
                vec![Button::OfferApprove, Button::OfferReject],
            ),
            (OfferState::Starting, _) => (format!("▶️ {what} is starting"), Vec::new()),
            (OfferState::Started, _) => (format!("▶️ {what} started by {by}"), Vec::new()),
            (OfferState::Joined, _) => (format!("↪️ {what}: a run was already active"), Vec::new()),
            (OfferState::Vetoed, _) => (format!("🛑 {what} vetoed by {by}"), Vec::new()),
            (OfferState::Rejected, _) => (format!("🚫 {what} rejected by {by}"), Vec::new()),
            (OfferState::Withdrawn, _) => (
                format!("✅ {what} withdrawn: the alert resolved"),
                Vec::new(),
            ),
            (OfferState::Failed, _) => (format!("❌ {what} could not start"), Vec::new()),
        };
        let a = &offer.alert;
        let mut alert = format!("Alert {}", link(a.link.as_deref(), &a.headline, on));
        if let Some(summary) = &a.summary {
            alert.push_str(&format!(": {}", on.escape(summary)));
        }
        let mut lines = vec![alert];
        if alerts > 1 {
            lines.push(format!("{alerts} alerts folded in"));
        }
        match (offer.state, offer.mode) {
            (OfferState::Open, OfferMode::Countdown) => lines.push(format!(
                "Route `{}`: press Veto to stop it, or Start now to go at once.",
                offer.route
            )),
            (OfferState::Open, _) => lines.push(format!(
                "Route `{}`: press Approve to start it, or Reject.",
                offer.route
            )),
            _ => {}
        }
        if let Some(run) = offer.run_id {
            lines.push(match incident {
                Some(channel) => format!("Run `{run}`: follow it in {}", on.channel(channel)),
                None => format!("Run `{run}`"),
            });
        }
        if let Some(message) = &offer.message {
            lines.push(on.escape(message));
        }
        OfferCard {
            about: "offer",
            id: offer.id.to_string(),
            rows: Vec::new(),
            title,
            lines,
            buttons,
            // A started offer's card links to its run's incident once that is open.
            settled: offer.state.is_final()
                && (offer.run_id.is_none()
                    || incident.is_some()
                    || now - offer.decided_at.unwrap_or(offer.opened_at) > INCIDENT_WAIT_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, AlertBrief, RunId};
    use crate::workflow::Action;

    fn offer(state: OfferState, mode: OfferMode) -> Offer {
        Offer {
            id: RunId::new(),
            route: "petstore-region-down".into(),
            group: "petstore".into(),
            action: Action::Failover,
            mode,
            state,
            opened_at: 0,
            deadline: Some(120_000),
            decided_by: Some(Actor::Chat {
                platform: crate::chat::slack::PLATFORM,
                user: "U1".into(),
            }),
            decided_at: None,
            run_id: None,
            message: None,
            alert: AlertBrief {
                source: "alertmanager".into(),
                name: "RegionDown".into(),
                headline: "RegionDown (region=b)".into(),
                summary: Some("b is down".into()),
                link: Some("http://prom/g".into()),
            },
        }
    }

    #[test]
    fn a_countdown_counts_down_and_ends_by_whose_word() {
        let open = offer(OfferState::Open, OfferMode::Countdown);
        let card = OfferCard::of(&open, 3, None, &crate::chat::slack::SLACK, 15_500);
        assert_eq!(card.title, "⏳ Failover of petstore starts in 1:45");
        assert_eq!(card.buttons, vec![Button::Veto, Button::StartNow]);
        assert_eq!(
            card.lines[0],
            "Alert <http://prom/g|RegionDown (region=b)>: b is down"
        );
        assert_eq!(card.lines[1], "3 alerts folded in");
        assert!(!card.settled);
        let late = OfferCard::of(&open, 1, None, &crate::chat::Plain, 200_000);
        assert!(late.title.ends_with("starts in 0:00"), "{}", late.title);

        let vetoed = offer(OfferState::Vetoed, OfferMode::Countdown);
        let card = OfferCard::of(&vetoed, 1, None, &crate::chat::slack::SLACK, 0);
        assert_eq!(card.title, "🛑 Failover of petstore vetoed by <@U1>");
        assert!(card.buttons.is_empty());
        assert!(card.settled);

        let mut started = offer(OfferState::Started, OfferMode::Confirm);
        started.run_id = Some(started.id);
        let card = OfferCard::of(
            &started,
            1,
            Some("CINC1"),
            &crate::chat::discord::DISCORD,
            0,
        );
        assert!(
            card.lines
                .iter()
                .any(|l| l.ends_with("follow it in <#CINC1>")),
            "{card:?}"
        );
        assert_eq!(
            card.lines[0],
            "Alert [RegionDown (region=b)](http://prom/g): b is down"
        );
    }

    #[test]
    fn the_face_rounds_up() {
        assert_eq!(clock_face(120_000), "2:00");
        assert_eq!(clock_face(119_001), "2:00");
        assert_eq!(clock_face(59_000), "0:59");
        assert_eq!(clock_face(-5), "0:00");
        assert_eq!(clock_face(3_600_000), "1:00:00");
        assert_eq!(clock_face(3_723_000), "1:02:03");
    }
}
