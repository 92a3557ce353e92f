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

/// Values as a set, whatever their order, case or trailing dot: `192.0.2.1, 192.0.2.2`.
fn value_set(values: &str) -> std::collections::BTreeSet<String> {
    values
        .split(", ")
        .filter(|v| !v.is_empty() && *v != "nothing")
        .map(|v| v.trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// Whether `a` and `b`, each values as a change records them, are the same records.
pub fn same_values(a: &str, b: &str) -> bool {
    value_set(a) == value_set(b)
}

/// Refuses a move of `endpoint` whose current `answers` (record type, values) are not what
/// `expect` says the endpoint was left answering: the estate drifted since, and moving it
/// back would undo someone else's change.
pub async fn as_expected(
    endpoint: &str,
    expect: &IndexMap<String, String>,
    answers: &[(String, String)],
    work: &crate::agents::work::Work,
) -> Result<(), crate::agents::work::Failure> {
    if expect.is_empty() {
        return Ok(());
    }
    for (kind, wanted) in expect {
        let now = answers
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("nothing", |(_, v)| v.as_str());
        if !same_values(now, wanted) {
            let detail = format!("{endpoint} {kind} answers {now}, not {wanted}");
            work.check("as left", false, detail.clone()).await;
            return Err(crate::agents::work::Failure::permanent(format!(
                "{detail} as the failover left it: the estate has drifted since; fail back with force to move it anyway"
            )));
        }
    }
    let left = expect
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    work.check(
        "as left",
        true,
        format!("{endpoint} answers {left}, as the failover left it"),
    )
    .await;
    Ok(())
}

/// Checks the TTL the endpoint is answered with against the one the target (or the stage)
/// sets: a resolver keeps an answer that long, so a TTL raised since makes a failover
/// take that much longer to be seen. Said only where a TTL is set and records answer; a
/// move sets the records' TTL anew, so it never fails a stage.
pub async fn ttl_check(
    served: Option<u32>,
    declared: Option<u32>,
    work: &crate::agents::work::Work,
) {
    let (Some(served), Some(declared)) = (served, declared) else {
        return;
    };
    let ok = served <= declared;
    work.check(
        "ttl",
        ok,
        format!(
            "{served}s answered, {} the ttl of {declared}s",
            if ok { "within" } else { "over" }
        ),
    )
    .await;
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
