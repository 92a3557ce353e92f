//! The first of the desk's decisions, with no I/O: what kind of alert this is (a notice,
//! a resolve, unrouted, for an unknown group, or a firing alert for a group, which
//! `firing` decides further), and when a resolve withdraws the offer its alert made.

use crate::domain::{Alert, AlertDecision, RunId, Status};
use crate::workflow::Route;

/// What an alert needs decided.
#[derive(Debug)]
pub enum Triage<'a> {
    /// Settled now: ignored, unrouted, or for no group Lifeboat knows (with why).
    Settled(AlertDecision, Option<String>),
    /// A resolve: recorded, and it may withdraw an offer (`withdraws`).
    Resolve,
    /// A firing alert with its route and group: `firing::step` decides.
    Firing { route: &'a Route, group: String },
}

/// Sorts an alert by its status, the route it takes and the group that route names.
pub fn triage<'a>(
    alert: &Alert,
    route: Option<&'a Route>,
    group: Option<Result<String, String>>,
) -> Triage<'a> {
    match (&alert.status, route, group) {
        (Status::Other(_), _, _) => Triage::Settled(AlertDecision::Ignored, None),
        (Status::Resolved, _, _) => Triage::Resolve,
        (Status::Firing, None, _) | (Status::Firing, Some(_), None) => {
            Triage::Settled(AlertDecision::Unrouted, None)
        }
        (Status::Firing, Some(_), Some(Err(why))) => {
            Triage::Settled(AlertDecision::NoGroup, Some(why))
        }
        (Status::Firing, Some(route), Some(Ok(group))) => Triage::Firing { route, group },
    }
}

/// The offer a resolve withdraws: the open offer its alert made, once no other alert
/// behind that offer still fires.
pub fn withdraws(offer: Option<RunId>, others_still_firing: i64) -> Option<RunId> {
    offer.filter(|_| others_still_firing == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Source;
    use crate::workflow::{Action, RouteMode, RouteTarget};

    fn route() -> Route {
        Route {
            name: "region-down".into(),
            source: None,
            source_pos: None,
            matchers: Default::default(),
            matchers_re: Vec::new(),
            target: RouteTarget::Label("dr_group".into()),
            action: Action::Failover,
            mode: RouteMode::Auto,
            cooldown: std::time::Duration::from_secs(600),
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

    #[test]
    fn notices_resolves_and_firing_alerts_are_told_apart() {
        let r = route();
        let mut a = alert();
        a.status = Status::Other("incident.acknowledged".into());
        assert!(matches!(
            triage(&a, Some(&r), Some(Ok("shop".into()))),
            Triage::Settled(AlertDecision::Ignored, None)
        ));
        a.status = Status::Resolved;
        assert!(
            matches!(triage(&a, None, None), Triage::Resolve),
            "a resolve needs no route"
        );
        a.status = Status::Firing;
        assert!(matches!(
            triage(&a, None, None),
            Triage::Settled(AlertDecision::Unrouted, None)
        ));
        assert!(matches!(
            triage(&a, Some(&r), Some(Err("no group `x`".into()))),
            Triage::Settled(AlertDecision::NoGroup, Some(why)) if why == "no group `x`"
        ));
        assert!(matches!(
            triage(&a, Some(&r), Some(Ok("shop".into()))),
            Triage::Firing { group, .. } if group == "shop"
        ));
    }

    #[test]
    fn a_resolve_withdraws_its_offer_only_once_no_other_alert_behind_it_fires() {
        let offer = RunId::new();
        assert_eq!(withdraws(Some(offer), 0), Some(offer));
        assert_eq!(withdraws(Some(offer), 1), None, "another alert still fires");
        assert_eq!(withdraws(None, 0), None, "its alert made no offer");
    }
}
