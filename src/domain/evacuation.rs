//! Evacuations: many groups moved at once, each a run of its own under one evacuation, in
//! dependency order (groups.yaml's `depends_on`: a shared database before the apps that
//! use it). A group starts when the groups it depends on within the evacuation have
//! finished successfully (or were skipped by a person); when one fails, its dependents are
//! held until a person resumes it, skips it, or aborts the rest.
//!
//! The state lives in the store (`store::evacuations`), each move a compare-and-set, and
//! the crate's `evacuation` coordinator (in every `serve`) moves it on; `steps` here is the
//! pure decision of what moves.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::ids::EvacuationId;
use super::{Actor, RunId};
use crate::clock::Millis;
use crate::workflow::Action;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvacuationState {
    Going,
    Succeeded,
    Failed,
    Aborted,
}

crate::string_enum::string_enum!(EvacuationState, "evacuation state", "" {
    Going = "going",
    Succeeded = "succeeded",
    Failed = "failed",
    Aborted = "aborted",
});

/// Where a group stands in an evacuation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    /// Waiting for the groups it depends on.
    Waiting,
    /// A group it depends on failed (or is held itself): waiting for a person.
    Held,
    /// Its run is made (or being made: `run` is chosen before the run is stored).
    Started,
    Succeeded,
    /// Its run failed or was cancelled; a person may resume it, or skip it.
    Failed,
    /// A person gave up on it, saying why; its dependents go on.
    Skipped,
    /// Not started, and never will be: a person aborted the rest.
    Aborted,
}

crate::string_enum::string_enum!(GroupState, "evacuation group state", "" {
    Waiting = "waiting",
    Held = "held",
    Started = "started",
    Succeeded = "succeeded",
    Failed = "failed",
    Skipped = "skipped",
    Aborted = "aborted",
});

impl GroupState {
    /// Nothing more happens to it unless a person acts.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            GroupState::Succeeded | GroupState::Failed | GroupState::Skipped | GroupState::Aborted
        )
    }

    /// Its dependents may go.
    fn clears(self) -> bool {
        matches!(self, GroupState::Succeeded | GroupState::Skipped)
    }

    /// Its dependents must wait for a person.
    fn blocks(self) -> bool {
        matches!(
            self,
            GroupState::Failed | GroupState::Held | GroupState::Aborted
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evacuation {
    pub id: EvacuationId,
    pub action: Action,
    pub dry_run: bool,
    pub reason: Option<String>,
    pub requested_by: Actor,
    pub state: EvacuationState,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
    pub groups: Vec<EvacuationGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvacuationGroup {
    pub group: String,
    pub state: GroupState,
    pub run: Option<RunId>,
    /// Why it is held, failed or skipped, and by whom.
    pub note: Option<String>,
    pub updated_at: Millis,
}

impl Evacuation {
    /// How many groups are in each state, every state named.
    /// The counts that are not zero, as people read them: `197 succeeded`, `2 failed`.
    pub fn counted(&self) -> Vec<String> {
        self.counts()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(state, n)| format!("{n} {state}"))
            .collect()
    }

    pub fn counts(&self) -> IndexMap<&'static str, usize> {
        GroupState::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str(),
                    self.groups.iter().filter(|g| g.state == *s).count(),
                )
            })
            .collect()
    }

    /// What the evacuation is once nothing is waiting, held or going: `None` while
    /// something is.
    pub fn outcome(&self) -> Option<EvacuationState> {
        if self.groups.iter().any(|g| !g.state.is_settled()) {
            return None;
        }
        Some(
            if self.groups.iter().any(|g| g.state == GroupState::Aborted) {
                EvacuationState::Aborted
            } else if self.groups.iter().all(|g| g.state.clears()) {
                EvacuationState::Succeeded
            } else {
                EvacuationState::Failed
            },
        )
    }
}

/// A move of one group that the state of the others calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Everything it depends on is done: start its run.
    Start,
    /// `because` failed or is held: wait for a person.
    Hold { because: String },
    /// Held no longer (what blocked it was resumed or skipped): wait again.
    Release,
}

/// What moves now: for each waiting or held group, given `depends_on` (by group; names
/// outside the evacuation are not waited for: they are not moving).
pub fn steps(
    groups: &[EvacuationGroup],
    depends_on: &dyn Fn(&str) -> Vec<String>,
) -> Vec<(String, Step)> {
    let state: IndexMap<&str, GroupState> =
        groups.iter().map(|g| (g.group.as_str(), g.state)).collect();
    let mut out = Vec::new();
    for g in groups {
        if !matches!(g.state, GroupState::Waiting | GroupState::Held) {
            continue;
        }
        let deps: Vec<(String, GroupState)> = depends_on(&g.group)
            .into_iter()
            .filter_map(|d| state.get(d.as_str()).map(|s| (d.clone(), *s)))
            .collect();
        let blocker = deps.iter().find(|(_, s)| s.blocks());
        match (g.state, blocker) {
            (GroupState::Waiting, Some((dep, s))) => out.push((
                g.group.clone(),
                Step::Hold {
                    because: format!("`{dep}`, which it depends on, is {s}"),
                },
            )),
            (GroupState::Held, None) => out.push((g.group.clone(), Step::Release)),
            (GroupState::Waiting, None) if deps.iter().all(|(_, s)| s.clears()) => {
                out.push((g.group.clone(), Step::Start))
            }
            _ => {}
        }
    }
    out
}

/// When a group's run was made and when it ended (`None`: still going).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunTimes {
    pub group: String,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
    /// Time the run's stages waited for budgets (`limits:`).
    pub budget_wait_ms: i64,
}

/// An evacuation's scorecard: its time so far (or in all), the critical path through the
/// group dependency graph (the longest chain of groups each waiting on the one before,
/// by its runs' times), what the rest of the time went on (dispatch between tiers, groups
/// held for a person), and the slowest groups.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    pub total_ms: i64,
    pub critical_path: Vec<String>,
    pub critical_path_ms: i64,
    pub overhead_ms: i64,
    /// Time the groups' stages waited for budgets (`limits:`), summed.
    pub budget_wait_ms: i64,
    /// The slowest groups' runs, slowest first (at most `SLOWEST`).
    pub slowest: Vec<Slow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Slow {
    pub group: String,
    pub ms: i64,
}

/// How many of the slowest groups a scorecard names.
pub const SLOWEST: usize = 5;

/// The scorecard of `e` from its groups' run times (`now` ends what is still going).
pub fn score(
    e: &Evacuation,
    times: &[RunTimes],
    depends_on: &dyn Fn(&str) -> Vec<String>,
    now: Millis,
) -> Scorecard {
    let took: IndexMap<&str, i64> = times
        .iter()
        .map(|t| {
            (
                t.group.as_str(),
                (t.finished_at.unwrap_or(now) - t.created_at).max(0),
            )
        })
        .collect();
    // Longest chain ending at each group, in its dependencies' order; a dependency not
    // in the evacuation, or without a run, adds nothing.
    let mut longest: IndexMap<&str, (i64, Vec<String>)> = IndexMap::new();
    fn chain<'a>(
        g: &'a str,
        took: &IndexMap<&'a str, i64>,
        depends_on: &dyn Fn(&str) -> Vec<String>,
        longest: &mut IndexMap<&'a str, (i64, Vec<String>)>,
        open: &mut Vec<String>,
    ) -> (i64, Vec<String>) {
        if let Some(known) = longest.get(g) {
            return known.clone();
        }
        // A cycle is refused when groups are read; were one here, it would end the chain.
        if open.iter().any(|o| o == g) {
            return (0, Vec::new());
        }
        open.push(g.to_string());
        let mut best = (0, Vec::new());
        for dep in depends_on(g) {
            let Some((key, _)) = took.get_key_value(dep.as_str()) else {
                continue;
            };
            let c = chain(key, took, depends_on, longest, open);
            if c.0 > best.0 {
                best = c;
            }
        }
        open.pop();
        let mine = took.get(g).copied().unwrap_or(0);
        let mut path = best.1;
        path.push(g.to_string());
        let out = (best.0 + mine, path);
        longest.insert(g, out.clone());
        out
    }
    let mut critical = (0, Vec::new());
    for g in took.keys() {
        let c = chain(g, &took, depends_on, &mut longest, &mut Vec::new());
        if c.0 > critical.0 {
            critical = c;
        }
    }
    let total_ms = (e.finished_at.unwrap_or(now) - e.created_at).max(0);
    let mut slowest: Vec<Slow> = took
        .iter()
        .map(|(g, ms)| Slow {
            group: g.to_string(),
            ms: *ms,
        })
        .collect();
    slowest.sort_by(|a, b| b.ms.cmp(&a.ms).then_with(|| a.group.cmp(&b.group)));
    slowest.truncate(SLOWEST);
    Scorecard {
        total_ms,
        critical_path: critical.1,
        critical_path_ms: critical.0,
        overhead_ms: (total_ms - critical.0).max(0),
        budget_wait_ms: times.iter().map(|t| t.budget_wait_ms).sum(),
        slowest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, state: GroupState) -> EvacuationGroup {
        EvacuationGroup {
            group: name.into(),
            state,
            run: None,
            note: None,
            updated_at: 0,
        }
    }

    /// db ← auth ← app, and `edge` on nothing.
    fn deps(g: &str) -> Vec<String> {
        match g {
            "auth" => vec!["db".into()],
            "app" => vec!["auth".into(), "db".into(), "elsewhere".into()],
            _ => vec![],
        }
    }

    fn moves(groups: &[EvacuationGroup]) -> Vec<(String, Step)> {
        steps(groups, &deps)
    }

    #[test]
    fn a_group_starts_when_what_it_depends_on_has_finished() {
        use GroupState::*;
        let start = |g: &str| (g.to_string(), Step::Start);
        // Only the first tier, and a group outside the chain, start; a dependency that is
        // not in the evacuation is not waited for.
        let all = [
            group("db", Waiting),
            group("auth", Waiting),
            group("app", Waiting),
            group("edge", Waiting),
        ];
        assert_eq!(moves(&all), [start("db"), start("edge")]);
        let later = [
            group("db", Succeeded),
            group("auth", Started),
            group("app", Waiting),
        ];
        assert!(moves(&later).is_empty());
        let last = [
            group("db", Succeeded),
            group("auth", Skipped),
            group("app", Waiting),
        ];
        assert_eq!(moves(&last), [start("app")]);
    }

    #[test]
    fn a_failure_holds_its_dependents_until_a_person_acts() {
        use GroupState::*;
        let failed = [
            group("db", Failed),
            group("auth", Waiting),
            group("app", Waiting),
        ];
        assert_eq!(
            moves(&failed),
            [
                (
                    "auth".to_string(),
                    Step::Hold {
                        because: "`db`, which it depends on, is failed".into()
                    }
                ),
                (
                    "app".to_string(),
                    Step::Hold {
                        because: "`db`, which it depends on, is failed".into()
                    }
                )
            ]
        );
        // Released once the failure is resumed, one tier a tick: `app` waits while `auth`
        // is held.
        let resumed = [
            group("db", Started),
            group("auth", Held),
            group("app", Held),
        ];
        assert_eq!(moves(&resumed), [("auth".to_string(), Step::Release)]);
        let next = [
            group("db", Started),
            group("auth", Waiting),
            group("app", Held),
        ];
        assert_eq!(moves(&next), [("app".to_string(), Step::Release)]);
    }

    #[test]
    fn an_evacuation_ends_when_nothing_is_left_going() {
        use GroupState::*;
        let evac = |states: &[GroupState]| Evacuation {
            id: EvacuationId::new(),
            action: Action::Failover,
            dry_run: false,
            reason: None,
            requested_by: Actor::System,
            state: EvacuationState::Going,
            created_at: 0,
            finished_at: None,
            groups: states
                .iter()
                .enumerate()
                .map(|(i, s)| group(&i.to_string(), *s))
                .collect(),
        };
        assert_eq!(evac(&[Succeeded, Started]).outcome(), None);
        assert_eq!(evac(&[Succeeded, Held]).outcome(), None);
        assert_eq!(
            evac(&[Succeeded, Skipped]).outcome(),
            Some(EvacuationState::Succeeded)
        );
        assert_eq!(
            evac(&[Succeeded, Failed]).outcome(),
            Some(EvacuationState::Failed)
        );
        assert_eq!(
            evac(&[Failed, Aborted]).outcome(),
            Some(EvacuationState::Aborted)
        );
        assert_eq!(evac(&[Succeeded, Failed]).counts()["failed"], 1);
    }

    #[test]
    fn the_critical_path_runs_through_the_dependency_graph() {
        use GroupState::*;
        let mut e = Evacuation {
            id: EvacuationId::new(),
            action: Action::Failover,
            dry_run: false,
            reason: None,
            requested_by: Actor::System,
            state: EvacuationState::Succeeded,
            created_at: 1_000,
            finished_at: Some(9_000),
            groups: ["db", "auth", "app", "edge"]
                .iter()
                .map(|g| group(g, Succeeded))
                .collect(),
        };
        let times = |g: &str, from: Millis, to: Millis| RunTimes {
            group: g.into(),
            created_at: from,
            finished_at: Some(to),
            budget_wait_ms: 0,
        };
        // db 3 s, then auth 1 s, then app 2 s (app also on db); edge 5 s on nothing.
        let runs = [
            times("db", 1_000, 4_000),
            times("auth", 4_200, 5_200),
            times("app", 5_400, 7_400),
            times("edge", 1_000, 6_000),
        ];
        let card = score(&e, &runs, &deps, 0);
        assert_eq!(card.total_ms, 8_000);
        assert_eq!(card.critical_path, ["db", "auth", "app"]);
        assert_eq!(card.critical_path_ms, 6_000);
        assert_eq!(card.overhead_ms, 2_000);
        let slowest: Vec<(&str, i64)> = card
            .slowest
            .iter()
            .map(|s| (s.group.as_str(), s.ms))
            .collect();
        assert_eq!(
            slowest,
            [
                ("edge", 5_000),
                ("db", 3_000),
                ("app", 2_000),
                ("auth", 1_000)
            ]
        );
        // Still going: counted to now.
        e.finished_at = None;
        let going = [
            times("db", 1_000, 4_000),
            RunTimes {
                group: "auth".into(),
                created_at: 4_200,
                finished_at: None,
                budget_wait_ms: 0,
            },
        ];
        let card = score(&e, &going, &deps, 5_000);
        assert_eq!(card.total_ms, 4_000);
        assert_eq!(card.critical_path, ["db", "auth"]);
        assert_eq!(card.critical_path_ms, 3_800);
    }
}
