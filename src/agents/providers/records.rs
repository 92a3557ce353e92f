//! The record sets an endpoint lists for each region (`regions: { region-a: { A: [...] } }`),
//! as every dial provider reads them.

use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::workflow::SpecError;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[allow(clippy::upper_case_acronyms)]
pub enum RecordKind {
    A,
    AAAA,
    CNAME,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Each region's record sets, by kind.
pub type Regions = IndexMap<String, IndexMap<RecordKind, Vec<String>>>;

/// Every kind any region lists, in the order first listed. A dial replaces each: those
/// the region dialed does not list are emptied, so that an A-to-CNAME move leaves no A.
pub fn kinds(regions: &Regions) -> Vec<RecordKind> {
    let mut kinds = Vec::new();
    for sets in regions.values() {
        for k in sets.keys() {
            if !kinds.contains(k) {
                kinds.push(*k);
            }
        }
    }
    kinds
}

/// What DNS allows a name: one CNAME value, and nothing beside it.
pub fn check(regions: &Regions) -> Result<(), SpecError> {
    for (region, sets) in regions {
        if let Some(cname) = sets.get(&RecordKind::CNAME) {
            if cname.len() > 1 {
                return Err(SpecError::at(
                    &["regions", region],
                    "a name holds one CNAME value, not several",
                ));
            }
            if sets.len() > 1 {
                return Err(SpecError::at(
                    &["regions", region],
                    "a name with a CNAME holds no other records",
                ));
            }
        }
    }
    Ok(())
}
