//! A batch of inputs applied to the runs they concern: the pure step between the engine's
//! intake and its commit. It does no I/O: it changes the runs it is given in memory and
//! returns everything one transaction must store (the runs' new versions, audit records,
//! outbox messages, revocations), so a batch is tested as the machine is.

use std::collections::HashMap;

use super::machine::{self, Ctx, Effect, Input, Refusal};
use crate::bus::{Envelope, RunEvent, WorkRequest};
use crate::domain::{Revocation, Run, RunAudit, RunId, request_id};

/// One input for one run.
#[derive(Clone, Debug)]
pub struct Item {
    pub run: RunId,
    pub input: Input,
    /// When the lease behind this input was released, for the overhead measurement.
    pub released_us: Option<i64>,
}

/// A run the batch changed.
#[derive(Debug, PartialEq)]
pub struct Changed {
    pub run: RunId,
    /// The version the change was computed from; the run now carries the next one, and the
    /// store refuses the write if its row has moved on meanwhile.
    pub from_version: i64,
    /// Stages whose rows changed.
    pub stages: Vec<usize>,
}

/// An outbox message, with when the lease behind it was released (a dispatch that
/// followed a release), for the overhead measurement.
#[derive(Debug)]
pub struct Outbound {
    pub envelope: Envelope,
    pub released_us: Option<i64>,
}

/// An input the machine refused: it changed nothing.
#[derive(Debug)]
pub struct Refused {
    /// Its position in the batch.
    pub item: usize,
    pub why: Refusal,
}

#[derive(Debug, Default)]
pub struct Changes {
    pub runs: Vec<Changed>,
    pub audit: Vec<RunAudit>,
    /// Work requests first, in the order of their dispatch, then one event per audit
    /// record.
    pub outbox: Vec<Outbound>,
    pub revocations: Vec<Revocation>,
    pub refused: Vec<Refused>,
    /// Positions of inputs whose run is not among those given (unknown, or finished).
    pub missing: Vec<usize>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// Applies `items` in order to `runs`. An error (a message that cannot be encoded) leaves
/// the runs of the batch changed in memory but nothing to store: the caller drops them.
pub fn apply<'a>(
    runs: &mut HashMap<RunId, Run>,
    items: impl IntoIterator<Item = &'a Item>,
    ctx: &Ctx,
) -> serde_json::Result<Changes> {
    /// An effect to carry out once every input is applied, and whose input caused it.
    struct Caused {
        run: RunId,
        effect: Effect,
        released_us: Option<i64>,
    }
    let mut changes = Changes::default();
    let mut effects: Vec<Caused> = Vec::new();
    for (n, item) in items.into_iter().enumerate() {
        let Some(run) = runs.get_mut(&item.run) else {
            changes.missing.push(n);
            continue;
        };
        let version = run.version;
        let t = match machine::apply(run, item.input.clone(), ctx) {
            Ok(t) => t,
            Err(why) => {
                changes.refused.push(Refused { item: n, why });
                continue;
            }
        };
        if t.is_empty() {
            continue;
        }
        let at = match changes.runs.iter().position(|c| c.run == item.run) {
            Some(at) => at,
            None => {
                changes.runs.push(Changed {
                    run: item.run,
                    from_version: version,
                    stages: Vec::new(),
                });
                changes.runs.len() - 1
            }
        };
        let stages = &mut changes.runs[at].stages;
        for i in t.changed {
            if !stages.contains(&i) {
                stages.push(i);
            }
        }
        changes
            .audit
            .extend(t.audit.into_iter().map(|audit| RunAudit {
                run: item.run,
                audit,
            }));
        effects.extend(t.effects.into_iter().map(|effect| Caused {
            run: item.run,
            effect,
            released_us: item.released_us,
        }));
    }
    for c in &changes.runs {
        if let Some(run) = runs.get_mut(&c.run) {
            run.version = c.from_version + 1;
        }
    }
    for Caused {
        run: id,
        effect,
        released_us,
    } in effects
    {
        let Some(run) = runs.get(&id) else { continue };
        match effect {
            Effect::Dispatch { stage } => changes.outbox.push(Outbound {
                envelope: Envelope::work(&WorkRequest::for_stage(run, stage, ctx.now))?,
                released_us,
            }),
            Effect::Revoke {
                stage,
                attempt,
                reason,
            } => changes.revocations.push(Revocation {
                request_id: request_id(id, &run.plan[stage].name, attempt),
                run_id: id,
                stage: run.plan[stage].name.clone(),
                attempt,
                reason,
            }),
        }
    }
    // Events are numbered per run within the write, which is what makes their ids stable.
    let mut nth: HashMap<RunId, usize> = HashMap::new();
    for a in &changes.audit {
        let Some(run) = runs.get(&a.run) else {
            continue;
        };
        let n = nth.entry(a.run).or_default();
        *n += 1;
        changes.outbox.push(Outbound {
            envelope: Envelope::event(&RunEvent::of(run, &a.audit, *n))?,
            released_us: None,
        });
    }
    Ok(changes)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
