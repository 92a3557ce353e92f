//! Typed identifiers. A run id is a UUIDv7 (time-ordered, so listing by id is listing by age);
//! a request id names one attempt of one stage and is the idempotency key of a work request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(uuid::Uuid);

impl RunId {
    pub fn new() -> Self {
        RunId(uuid::Uuid::now_v7())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(RunId)
    }
}

/// An evacuation's id: a UUIDv7, as a run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EvacuationId(uuid::Uuid);

impl EvacuationId {
    pub fn new() -> Self {
        EvacuationId(uuid::Uuid::now_v7())
    }
}

impl Default for EvacuationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EvacuationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for EvacuationId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(EvacuationId)
    }
}

/// `run/stage/attempt`: the same request delivered twice does the work once.
pub fn request_id(run: RunId, stage: &str, attempt: u32) -> String {
    format!("{run}/{stage}/{attempt}")
}
