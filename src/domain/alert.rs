//! An alert as Lifeboat keeps it, whichever sender it came from: what it is (name, labels,
//! link), whether it fires or has resolved, and the keys that recognise it again.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

/// The sender an alert came from, by name: `alertmanager`, `pagerduty`, `grafana`, or a
/// generic source's name from routes.yaml.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Source(Cow<'static, str>);

impl Source {
    pub const fn from_static(name: &'static str) -> Source {
        Source(Cow::Borrowed(name))
    }

    pub fn new(name: impl Into<String>) -> Source {
        Source(Cow::Owned(name.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a route for `from` (`None`: any source) takes alerts from here.
    pub fn routed_by(&self, from: Option<&str>) -> bool {
        from.is_none_or(|f| f == self.as_str())
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
pub enum AlertDecision {
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

crate::string_enum::string_enum!(AlertDecision, "alert decision", "" {
    Started = "started",
    Offered = "offered",
    Joined = "joined",
    Cooldown = "cooldown",
    Held = "held",
    Resolved = "resolved",
    Withdrew = "withdrew",
    Unrouted = "unrouted",
    NoGroup = "no_group",
    Ignored = "ignored",
    Failed = "failed",
});

impl AlertDecision {
    /// Whether a re-send of the alert is only counted: every decision but `held`, which
    /// a re-send may get past.
    pub fn settles(self) -> bool {
        self != AlertDecision::Held
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
