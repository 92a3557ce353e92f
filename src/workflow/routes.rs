//! `routes.yaml`: which alerts start (or offer) which run.

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use regex::Regex;

use super::fields;
use super::groups::Group;
use super::model::Action;
use super::raw::RawRoute;
use super::source::{Diagnostic, Pos, Spanned};

/// What a matching alert does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMode {
    /// Starts the run at once.
    Auto,
    /// Asks in chat first; the run starts when someone allowed approves.
    Confirm,
    /// Starts the run after this long unless someone allowed vetoes it in chat.
    Countdown(Duration),
}

impl RouteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMode::Auto => "auto",
            RouteMode::Confirm => "confirm",
            RouteMode::Countdown(_) => "countdown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    Group(String),
    /// Take the group from this alert label.
    Label(String),
}

#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    /// The source the route takes alerts from; `None` for any. Checked against the
    /// sources there are by `Catalog::check_sources`.
    pub source: Option<String>,
    pub source_pos: Option<Pos>,
    pub matchers: IndexMap<String, String>,
    pub matchers_re: Vec<(String, Regex)>,
    pub target: RouteTarget,
    pub action: Action,
    pub mode: RouteMode,
    pub cooldown: Duration,
    /// Runs or offers the route may open in a minute, across all its groups; alerts past
    /// it are held back.
    pub starts_per_minute: u32,
}

/// A route's `starts_per_minute` unless it says otherwise.
pub const STARTS_PER_MINUTE: u32 = 10;

/// Checks every route; `groups` (when the whole directory is read) are the groups a
/// route may name.
pub(super) fn check(
    file: &Path,
    raw: Vec<Spanned<RawRoute>>,
    groups: Option<&IndexMap<String, Group>>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    for spanned in raw {
        let route_pos = Pos::of(&spanned);
        let r = spanned.value;
        if out.iter().any(|o| o.name == r.name.value) {
            errors.push(
                Pos::of(&r.name).diag(file, format!("route `{}` is defined twice", r.name.value)),
            );
        }
        let source = r
            .source
            .as_ref()
            .filter(|s| s.value != "any")
            .map(|s| s.value.clone());
        let source_pos = r.source.as_ref().map(Pos::of);
        let mut matchers_re = Vec::new();
        for (label, re) in r.match_re.iter() {
            match Regex::new(&format!("^(?:{})$", re.value)) {
                Ok(rx) => matchers_re.push((label.value.clone(), rx)),
                Err(e) => errors.push(Pos::of(re).diag(
                    file,
                    format!(
                        "route `{}`: bad regex for `{}`: {}",
                        r.name.value,
                        label.value,
                        e.to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid")
                            .trim_start_matches("error: ")
                    ),
                )),
            }
        }
        let target = match (&r.group, &r.group_label) {
            (Some(g), None) => {
                if let Some(known) = groups
                    && !known.contains_key(&g.value)
                {
                    errors.push(Pos::of(g).diag(
                        file,
                        format!("route `{}`: unknown group `{}`", r.name.value, g.value),
                    ));
                }
                RouteTarget::Group(g.value.clone())
            }
            (None, Some(l)) => RouteTarget::Label(l.value.clone()),
            _ => {
                errors.push(route_pos.diag(
                    file,
                    format!(
                        "route `{}` needs exactly one of `group` or `group_label`",
                        r.name.value
                    ),
                ));
                RouteTarget::Group(String::new())
            }
        };
        let action = match &r.action {
            None => Action::Failover,
            Some(a) => a.value.parse().unwrap_or_else(|e: String| {
                errors.push(Pos::of(a).diag(file, format!("route `{}`: {e}", r.name.value)));
                Action::Failover
            }),
        };
        let delay = r
            .delay
            .as_ref()
            .and_then(|d| fields::duration(file, d, errors));
        let mode = match r.mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("confirm") => RouteMode::Confirm,
            Some("auto") => RouteMode::Auto,
            Some("countdown") => match delay {
                Some(d) if !d.is_zero() => RouteMode::Countdown(d),
                _ => {
                    if r.delay.is_none() {
                        errors.push(Pos::of(r.mode.as_ref().unwrap_or(&r.name)).diag(
                            file,
                            format!(
                                "route `{}`: mode `countdown` needs a `delay` (like `delay: 2m`)",
                                r.name.value
                            ),
                        ));
                    } else if delay.is_some() {
                        errors.push(Pos::of(r.delay.as_ref().unwrap_or(&r.name)).diag(
                            file,
                            format!(
                                "route `{}`: a countdown's `delay` must be more than 0",
                                r.name.value
                            ),
                        ));
                    }
                    RouteMode::Confirm
                }
            },
            Some(other) => {
                errors.push(Pos::of(r.mode.as_ref().unwrap_or(&r.name)).diag(
                    file,
                    format!(
                        "route `{}`: mode must be `auto`, `confirm` or `countdown`, not `{other}`",
                        r.name.value
                    ),
                ));
                RouteMode::Confirm
            }
        };
        if let Some(d) = &r.delay
            && r.mode.as_ref().map(|m| m.value.as_str()) != Some("countdown")
        {
            errors.push(Pos::of(d).diag(
                file,
                format!(
                    "route `{}`: `delay` is for mode `countdown` only",
                    r.name.value
                ),
            ));
        }
        let cooldown = r
            .cooldown
            .as_ref()
            .and_then(|c| fields::duration(file, c, errors))
            .unwrap_or(Duration::from_secs(30 * 60));
        let starts_per_minute = match &r.starts_per_minute {
            None => STARTS_PER_MINUTE,
            Some(n) => match n.value.trim().parse::<u32>() {
                Ok(v) if v > 0 => v,
                _ => {
                    errors.push(Pos::of(n).diag(
                        file,
                        format!(
                            "route `{}`: starts_per_minute must be a whole number above 0, not `{}`",
                            r.name.value, n.value
                        ),
                    ));
                    STARTS_PER_MINUTE
                }
            },
        };
        out.push(Route {
            name: r.name.value.clone(),
            source,
            source_pos,
            matchers: r.matchers,
            matchers_re,
            target,
            action,
            mode,
            cooldown,
            starts_per_minute,
        });
    }
    out
}
