//! Which route an alert takes, and which group it names: the first route (in file order)
//! whose source, `match` and `match_re` all fit. A label an alert lacks is the empty
//! string, as in Alertmanager.

use indexmap::IndexMap;

use crate::domain::Alert;
use crate::workflow::{Group, Route, RouteTarget};

/// The first route the alert fits.
pub fn route<'a>(routes: &'a [Route], alert: &Alert) -> Option<&'a Route> {
    routes.iter().find(|r| fits(r, alert))
}

fn fits(route: &Route, alert: &Alert) -> bool {
    let label = |name: &str| alert.labels.get(name).map(String::as_str).unwrap_or("");
    alert.source.routed_by(route.source.as_deref())
        && route.matchers.iter().all(|(k, v)| label(k) == v)
        && route
            .matchers_re
            .iter()
            .all(|(k, re)| re.is_match(label(k)))
}

/// The group the route sends the alert to, or why there is none.
pub fn group_of(
    route: &Route,
    alert: &Alert,
    groups: &IndexMap<String, Group>,
) -> Result<String, String> {
    let name = match &route.target {
        RouteTarget::Group(g) => g.clone(),
        RouteTarget::Label(label) => alert.labels.get(label).cloned().ok_or_else(|| {
            format!(
                "route `{}` takes the group from label `{label}`, which the alert lacks",
                route.name
            )
        })?,
    };
    if groups.contains_key(&name) {
        Ok(name)
    } else {
        Err(format!(
            "route `{}` names group `{name}`, which groups.yaml lacks",
            route.name
        ))
    }
}
