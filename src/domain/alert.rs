//! An alert as Lifeboat keeps it, whichever sender it came from: what it is (name, labels,
//! link), whether it fires or has resolved, and the keys that recognise it again.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::workflow::AlertSource;

/// Where an alert came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Alertmanager,
    Pagerduty,
    Grafana,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Alertmanager, Source::Pagerduty, Source::Grafana];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Pagerduty => "pagerduty",
            Source::Grafana => "grafana",
        }
    }

    /// Whether a route for `from` takes alerts from here.
    pub fn routed_by(self, from: AlertSource) -> bool {
        matches!(
            (from, self),
            (AlertSource::Any, _)
                | (AlertSource::Alertmanager, Source::Alertmanager)
                | (AlertSource::Pagerduty, Source::Pagerduty)
                | (AlertSource::Grafana, Source::Grafana)
        )
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Source::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown alert source `{s}`"))
    }
}

/// Whether an alert fires, has resolved, or is some other notice (a PagerDuty incident
/// acknowledged, say) that is recorded and starts nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
    Other(String),
}

impl Status {
    pub fn as_str(&self) -> &str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "firing" => Status::Firing,
            "resolved" => Status::Resolved,
            other => Status::Other(other.to_string()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub source: Source,
    /// The same for every re-send of this notification of this alert.
    pub dedupe_key: String,
    /// The alert across its notifications: ties a resolve to its firing.
    pub fingerprint: String,
    pub status: Status,
    /// `alertname`, or the incident's title.
    pub name: String,
    /// What routes match on.
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    /// Where the alert is shown at its source (generator URL, incident page).
    pub link: Option<String>,
    /// The PagerDuty incident, for notes.
    pub incident: Option<String>,
}

impl Alert {
    /// `RegionDown (region=region-b, service=petstore-api)`: its name and the labels other
    /// than the name.
    pub fn headline(&self) -> String {
        Alert::headline_of(&self.name, &self.labels)
    }

    pub fn headline_of(name: &str, labels: &BTreeMap<String, String>) -> String {
        let labels: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name} ({})", labels.join(", "))
        }
    }
}

/// What an alert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// It started a run (mode `auto`).
    Started,
    /// It opened an offer in chat (mode `confirm` or `countdown`).
    Offered,
    /// Folded into the group's active run or open offer.
    Joined,
    /// Its route started a run for the group within the route's `cooldown`.
    Cooldown,
    /// Held back by the route's rate limit; a re-send is decided again.
    Held,
    /// A resolve: recorded.
    Resolved,
    /// A resolve that withdrew the open offer its alert had made.
    Withdrew,
    /// No route fits it.
    Unrouted,
    /// Its route names no group Lifeboat knows (see `detail`).
    NoGroup,
    /// Neither firing nor resolved (a PagerDuty acknowledgement, say).
    Ignored,
    /// Its run could not be started (see `detail`).
    Failed,
}

impl Decision {
    pub const ALL: [Decision; 11] = [
        Decision::Started,
        Decision::Offered,
        Decision::Joined,
        Decision::Cooldown,
        Decision::Held,
        Decision::Resolved,
        Decision::Withdrew,
        Decision::Unrouted,
        Decision::NoGroup,
        Decision::Ignored,
        Decision::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Started => "started",
            Decision::Offered => "offered",
            Decision::Joined => "joined",
            Decision::Cooldown => "cooldown",
            Decision::Held => "held",
            Decision::Resolved => "resolved",
            Decision::Withdrew => "withdrew",
            Decision::Unrouted => "unrouted",
            Decision::NoGroup => "no_group",
            Decision::Ignored => "ignored",
            Decision::Failed => "failed",
        }
    }

    /// Whether a re-send of the alert is only counted: every decision but `held`, which
    /// a re-send may get past.
    pub fn settles(self) -> bool {
        self != Decision::Held
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown alert decision `{s}`"))
    }
}

/// An alert as a chat message or a run's card shows it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct AlertBrief {
    pub source: String,
    pub name: String,
    /// Name and labels: `RegionDown (region=region-b)`.
    pub headline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl From<&Alert> for AlertBrief {
    fn from(a: &Alert) -> Self {
        AlertBrief {
            source: a.source.to_string(),
            name: a.name.clone(),
            headline: a.headline(),
            summary: a.summary.clone(),
            link: a.link.clone(),
        }
    }
}

/// The alerts behind a run: the first, and how many in all.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertTally {
    pub first: AlertBrief,
    /// Distinct alerts folded into the run, the first among them.
    pub alerts: i64,
    /// Re-sends of them, counted and not acted on.
    pub repeats: i64,
}
