//! What each agent accepts in a stage's `spec`. Validation and execution read the same
//! structs, so a workflow that validates is a workflow the agent can run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::workflow::source::PathSegment;

/// Every agent kind a stage may name.
pub const KINDS: &[&str] = &[
    "capacity", "database", "dial", "http", "exec", "wait", "approval", "noop",
];

/// A spec an agent rejects, with the path inside the spec where it went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub path: Vec<PathSegment>,
    pub message: String,
}

fn parse<T: for<'de> Deserialize<'de>>(spec: &Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(spec).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                _ => None,
            })
            .collect();
        SpecError {
            path,
            message: e.inner().to_string(),
        }
    })
}

fn invalid(path: &[&str], message: impl Into<String>) -> SpecError {
    SpecError {
        path: path
            .iter()
            .map(|k| PathSegment::Key(k.to_string()))
            .collect(),
        message: message.into(),
    }
}

/// Checks a resolved spec against its agent; `Err` also for an unknown agent.
pub fn check(agent: &str, spec: &Value) -> Result<(), SpecError> {
    match agent {
        "capacity" => parse::<CapacitySpec>(spec).map(drop),
        "database" => parse::<DatabaseSpec>(spec).map(drop),
        "dial" => parse::<DialSpec>(spec).map(drop),
        "http" => parse::<HttpSpec>(spec).and_then(|s| s.check()),
        "exec" => parse::<ExecSpec>(spec).and_then(|s| s.check()),
        "wait" => parse::<WaitSpec>(spec).and_then(|s| s.check()),
        "approval" => parse::<ApprovalSpec>(spec).map(drop),
        "noop" => parse::<NoopSpec>(spec).map(drop),
        other => Err(invalid(&[], format!("unknown agent `{other}`"))),
    }
}

/// The lease key an agent takes for a spec: two runs never touch one resource at once.
pub fn resource(agent: &str, spec: &Value) -> Option<String> {
    match agent {
        "capacity" => parse::<CapacitySpec>(spec)
            .ok()
            .map(|s| format!("capacity:{}/{}", s.cluster, s.namespace)),
        "database" => parse::<DatabaseSpec>(spec)
            .ok()
            .map(|s| format!("database:{}", s.cluster)),
        "dial" => parse::<DialSpec>(spec)
            .ok()
            .map(|s| format!("dial:{}", s.endpoint)),
        _ => None,
    }
}

pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("bad duration {s:?}: {e}")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Knobs of the `sim` provider (a simulated estate for drills, demos and tests), read from
/// the flat `fail_attempts`, `fail_permanently` and `duration` fields of a spec.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimKnobs {
    pub fail_attempts: u32,
    pub fail_permanently: bool,
    pub duration: Option<Duration>,
}

macro_rules! sim_knobs {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn sim(&self) -> SimKnobs {
                SimKnobs {
                    fail_attempts: self.fail_attempts,
                    fail_permanently: self.fail_permanently,
                    duration: self.duration,
                }
            }
        }
    )*};
}
sim_knobs!(CapacitySpec, DatabaseSpec, DialSpec);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Until a real provider is named, nothing outside Lifeboat is touched.
    #[default]
    Sim,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    #[serde(default)]
    pub provider: Provider,
    pub cluster: String,
    pub namespace: String,
    pub replicas: u32,
    /// Deployment or StatefulSet name; all workloads in the namespace when absent.
    #[serde(default)]
    pub workload: Option<String>,
    /// `sim` only: fail this many attempts (retryably) before succeeding.
    #[serde(default)]
    pub fail_attempts: u32,
    /// `sim` only: fail every attempt permanently.
    #[serde(default)]
    pub fail_permanently: bool,
    /// `sim` only: how long the simulated work takes.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseRole {
    Writer,
    Reader,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    #[serde(default)]
    pub provider: Provider,
    pub cluster: String,
    pub role: DatabaseRole,
    /// Refuse to promote while the replica is further behind than this.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_lag: Option<Duration>,
    /// `sim` only: fail this many attempts (retryably) before succeeding.
    #[serde(default)]
    pub fail_attempts: u32,
    /// `sim` only: fail every attempt permanently.
    #[serde(default)]
    pub fail_permanently: bool,
    /// `sim` only: how long the simulated work takes.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialSpec {
    #[serde(default)]
    pub provider: Provider,
    pub endpoint: String,
    pub region: String,
    #[serde(default)]
    pub ttl: Option<u32>,
    /// `sim` only: fail this many attempts (retryably) before succeeding.
    #[serde(default)]
    pub fail_attempts: u32,
    /// `sim` only: fail every attempt permanently.
    #[serde(default)]
    pub fail_permanently: bool,
    /// `sim` only: how long the simulated work takes.
    #[serde(default, deserialize_with = "opt_duration")]
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    pub url: String,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub expect_status: Option<ExpectStatus>,
    /// The response body must contain this text.
    #[serde(default)]
    pub expect_body: Option<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(u16),
    Any(Vec<u16>),
}

impl ExpectStatus {
    pub fn accepts(&self, status: u16) -> bool {
        match self {
            ExpectStatus::One(s) => *s == status,
            ExpectStatus::Any(v) => v.contains(&status),
        }
    }
}

impl HttpSpec {
    fn check(&self) -> Result<(), SpecError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| invalid(&["url"], format!("bad url {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(&["url"], "url must be http or https"));
        }
        reqwest::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(&["method"], format!("bad method {:?}", self.method)))?;
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
}

impl ExecSpec {
    fn check(&self) -> Result<(), SpecError> {
        match self.command.first() {
            None => Err(invalid(&["command"], "command must name a program")),
            Some(p) if p.is_empty() => Err(invalid(&["command"], "command must name a program")),
            Some(_) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitSpec {
    /// Healthy when a GET answers 2xx.
    #[serde(default)]
    pub url: Option<String>,
    /// Healthy when `host:port` accepts a connection.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Healthy when this database URL answers `SELECT 1`.
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default = "two_seconds", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "five_minutes", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

impl WaitSpec {
    fn check(&self) -> Result<(), SpecError> {
        let set = [self.url.is_some(), self.tcp.is_some(), self.sql.is_some()];
        if set.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                &[],
                "wait needs exactly one of `url`, `tcp` or `sql`",
            ));
        }
        if let Some(tcp) = &self.tcp
            && tcp
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(invalid(&["tcp"], format!("{tcp:?} is not host:port")));
        }
        if let Some(url) = &self.url {
            reqwest::Url::parse(url).map_err(|e| invalid(&["url"], format!("bad url: {e}")))?;
        }
        if self.interval.is_zero() {
            return Err(invalid(&["interval"], "interval must be above zero"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// What the approver is asked.
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopSpec {}

pub fn parse_spec<T: for<'de> Deserialize<'de>>(spec: &Value) -> Result<T, String> {
    parse(spec).map_err(|e| e.message)
}
