//! What a firing alert with a route and a group does, decided from what the store holds:
//! no I/O, so that the desk's rules (join what is live, the route's cooldown, its start
//! rate, the offer its mode opens) are tested on their own, as the run state machine is.

use std::time::Duration;

use crate::clock::Millis;
use crate::domain::{Actor, Alert, AlertBrief, Offer, OfferMode, OfferState, RunId};
use crate::workflow::{Route, RouteMode};

/// The state of a group's action as a batch sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Live {
    Run(RunId),
    Offer(RunId),
    /// Nothing open, and this route's cooldown for the group running since then.
    Cooling {
        route: String,
        since: Millis,
    },
    Nothing,
}

/// What the alert does.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// An active run of the group's action takes it in.
    JoinRun(RunId),
    /// A live offer takes it in.
    JoinOffer(RunId),
    /// The route started (or was refused) a run of the group within its cooldown.
    Cooldown { since: Millis, detail: String },
    /// The route's start rate is spent: held back, and a re-send is decided again.
    Held { detail: String },
    /// Open this offer: started at once in `auto`, asked about otherwise.
    Open(Box<Offer>),
}

/// When the route last started (or was refused) a run of the group, if the store must be
/// asked: not when something is live, nor when this batch already knows.
pub fn needs_last_start(live: &Live, route: &Route) -> Option<Option<Millis>> {
    match live {
        Live::Run(_) | Live::Offer(_) => Some(None),
        Live::Cooling { route: r, since } if *r == route.name => Some(Some(*since)),
        Live::Cooling { .. } | Live::Nothing => None,
    }
}

/// Decides. `last_start`: when the route last started a run of the group; `may_start`
/// spends one of the route's starts, and is asked only when nothing else stops the alert.
pub fn step(
    alert: &Alert,
    route: &Route,
    group: &str,
    live: &Live,
    last_start: Option<Millis>,
    now: Millis,
    may_start: impl FnOnce() -> bool,
) -> Step {
    match live {
        Live::Run(run) => return Step::JoinRun(*run),
        Live::Offer(offer) => return Step::JoinOffer(*offer),
        Live::Cooling { .. } | Live::Nothing => {}
    }
    if let Some(since) = last_start
        && now - since < millis(route.cooldown)
    {
        return Step::Cooldown {
            since,
            detail: format!(
                "route `{}` started or was refused a run of `{group}` {} ago; its cooldown is {}",
                route.name,
                crate::clock::short_duration(now - since),
                humantime::format_duration(route.cooldown)
            ),
        };
    }
    if !may_start() {
        return Step::Held {
            detail: format!(
                "route `{}` opened {} runs or offers in the last minute",
                route.name, route.starts_per_minute
            ),
        };
    }
    Step::Open(Box::new(offer(alert, route, group, now)))
}

/// The offer a route's mode opens for an alert.
fn offer(alert: &Alert, route: &Route, group: &str, now: Millis) -> Offer {
    let (mode, state, deadline, decided) = match route.mode {
        RouteMode::Auto => (
            OfferMode::Auto,
            OfferState::Starting,
            None,
            Some((Actor::Alert(route.name.clone()), now)),
        ),
        RouteMode::Confirm => (OfferMode::Confirm, OfferState::Open, None, None),
        RouteMode::Countdown(delay) => (
            OfferMode::Countdown,
            OfferState::Open,
            Some(now + millis(delay)),
            None,
        ),
    };
    Offer {
        id: RunId::new(),
        route: route.name.clone(),
        group: group.to_string(),
        action: route.action,
        mode,
        state,
        opened_at: now,
        deadline,
        decided_by: decided.as_ref().map(|d| d.0.clone()),
        decided_at: decided.map(|d| d.1),
        run_id: None,
        message: None,
        alert: AlertBrief::from(alert),
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Source, Status};
    use crate::workflow::{Action, RouteTarget};

    const NOW: Millis = 1_000_000;

    fn route(mode: RouteMode) -> Route {
        Route {
            name: "region-down".into(),
            source: None,
            source_pos: None,
            matchers: Default::default(),
            matchers_re: Vec::new(),
            target: RouteTarget::Group("petstore".into()),
            action: Action::Failover,
            mode,
            cooldown: Duration::from_secs(600),
            starts_per_minute: 10,
        }
    }

    fn alert() -> Alert {
        Alert {
            source: Source::from_static("alertmanager"),
            dedupe_key: "k".into(),
            fingerprint: "f".into(),
            status: Status::Firing,
            name: "RegionDown".into(),
            labels: Default::default(),
            summary: None,
            link: None,
            incident: None,
        }
    }

    fn decide(r: &Route, live: &Live, last: Option<Millis>, may: bool) -> Step {
        step(&alert(), r, "petstore", live, last, NOW, || may)
    }

    #[test]
    fn what_is_live_takes_the_alert_in_whatever_else_holds() {
        let r = route(RouteMode::Auto);
        let (run, offer) = (RunId::new(), RunId::new());
        assert_eq!(
            decide(&r, &Live::Run(run), Some(NOW), false),
            Step::JoinRun(run)
        );
        assert_eq!(
            decide(&r, &Live::Offer(offer), None, false),
            Step::JoinOffer(offer)
        );
        assert_eq!(needs_last_start(&Live::Run(run), &r), Some(None));
    }

    #[test]
    fn a_start_within_the_cooldown_holds_and_spends_no_start() {
        let r = route(RouteMode::Auto);
        let spent = std::cell::Cell::new(false);
        let s = step(
            &alert(),
            &r,
            "petstore",
            &Live::Nothing,
            Some(NOW - 60_000),
            NOW,
            || {
                spent.set(true);
                true
            },
        );
        match s {
            Step::Cooldown { since, detail } => {
                assert_eq!(since, NOW - 60_000);
                assert!(detail.contains("1m00s ago"), "{detail}");
                assert!(detail.contains("its cooldown is 10m"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!spent.get(), "a cooling alert spent a start");
        // Past the cooldown, the route may start again.
        assert!(matches!(
            decide(&r, &Live::Nothing, Some(NOW - 600_000), true),
            Step::Open(_)
        ));
        // The batch knows the route's own cooldown; another route's makes the store asked.
        let cooling = Live::Cooling {
            route: "region-down".into(),
            since: 5,
        };
        assert_eq!(needs_last_start(&cooling, &r), Some(Some(5)));
        let other = Live::Cooling {
            route: "other".into(),
            since: 5,
        };
        assert_eq!(needs_last_start(&other, &r), None);
    }

    #[test]
    fn a_spent_start_rate_holds_the_alert_back() {
        match decide(&route(RouteMode::Auto), &Live::Nothing, None, false) {
            Step::Held { detail } => assert!(detail.contains("10 runs or offers"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_mode_opens_its_offer() {
        let Step::Open(auto) = decide(&route(RouteMode::Auto), &Live::Nothing, None, true) else {
            panic!("auto opens");
        };
        assert_eq!(
            (auto.mode, auto.state),
            (OfferMode::Auto, OfferState::Starting)
        );
        assert_eq!(auto.decided_by, Some(Actor::Alert("region-down".into())));
        assert_eq!((auto.decided_at, auto.deadline), (Some(NOW), None));

        let Step::Open(confirm) = decide(&route(RouteMode::Confirm), &Live::Nothing, None, true)
        else {
            panic!("confirm opens");
        };
        assert_eq!(
            (confirm.mode, confirm.state),
            (OfferMode::Confirm, OfferState::Open)
        );
        assert_eq!((confirm.decided_by, confirm.deadline), (None, None));

        let countdown = RouteMode::Countdown(Duration::from_secs(120));
        let Step::Open(c) = decide(&route(countdown), &Live::Nothing, None, true) else {
            panic!("countdown opens");
        };
        assert_eq!((c.mode, c.state), (OfferMode::Countdown, OfferState::Open));
        assert_eq!(c.deadline, Some(NOW + 120_000));
        assert_eq!(
            (c.group.as_str(), c.alert.name.as_str()),
            ("petstore", "RegionDown")
        );
    }
}
