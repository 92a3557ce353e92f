//! Pre-baked stages: `uses: postgres-promote` gives a stage its agent, spec defaults, retry
//! policy and timeout, so that a service's workflow is a few lines. Any field the stage
//! writes wins over the template's (spec fields one by one), and the result is checked
//! like any stage, so a template's use is located in the user's file.

use super::raw::{RawRetry, RawStage};
use super::source::{Diagnostic, Node, Pos, Spanned};

/// One template: the agent it runs, spec fields, and a retry policy and timeout suited to
/// how long the step takes in practice.
pub struct Template {
    pub name: &'static str,
    pub agent: &'static str,
    pub description: &'static str,
    pub spec: &'static [(&'static str, Value)],
    /// max_attempts, initial_backoff, max_backoff
    pub retry: (u32, &'static str, &'static str),
    pub timeout: &'static str,
}

/// A spec default, as the template writes it.
#[derive(Clone, Copy)]
pub enum Value {
    Str(&'static str),
    Bool(bool),
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "postgres-promote",
        agent: "database",
        description: "promote a PostgreSQL streaming replica within 10s of lag",
        spec: &[
            ("role", Value::Str("writer")),
            ("max_lag", Value::Str("10s")),
        ],
        retry: (5, "2s", "30s"),
        timeout: "5m",
    },
    Template {
        name: "postgres-demote",
        agent: "database",
        description: "fence the old PostgreSQL writer read-only; an unreachable one counts as fenced",
        spec: &[
            ("role", Value::Str("reader")),
            ("unreachable", Value::Str("ok")),
        ],
        retry: (3, "1s", "10s"),
        timeout: "2m",
    },
    Template {
        name: "rds-promote",
        agent: "database",
        description: "promote an RDS read replica within 30s of lag, and wait until it is available",
        spec: &[
            ("role", Value::Str("writer")),
            ("max_lag", Value::Str("30s")),
        ],
        retry: (3, "10s", "60s"),
        timeout: "30m",
    },
    Template {
        name: "aurora-failover",
        agent: "database",
        description: "fail an Aurora cluster over, or promote its replica cluster",
        spec: &[("role", Value::Str("writer"))],
        retry: (3, "10s", "60s"),
        timeout: "15m",
    },
    Template {
        name: "aurora-global-switchover",
        agent: "database",
        description: "move an Aurora global database's primary without data loss",
        spec: &[
            ("role", Value::Str("writer")),
            ("allow_data_loss", Value::Bool(false)),
        ],
        retry: (3, "10s", "60s"),
        timeout: "30m",
    },
    Template {
        name: "dns-failover",
        agent: "dial",
        description: "point an endpoint at a region and verify the answer",
        spec: &[],
        retry: (5, "2s", "30s"),
        timeout: "5m",
    },
    Template {
        name: "k8s-prescale",
        agent: "capacity",
        description: "scale Kubernetes workloads up and wait until they are ready",
        spec: &[],
        retry: (3, "5s", "60s"),
        timeout: "15m",
    },
    Template {
        name: "asg-prescale",
        agent: "capacity",
        description: "raise an Auto Scaling group's capacity and wait for instances in service",
        spec: &[],
        retry: (3, "10s", "60s"),
        timeout: "20m",
    },
    Template {
        name: "health-check",
        agent: "wait",
        description: "poll until the service answers",
        spec: &[("interval", Value::Str("5s"))],
        retry: (1, "1s", "1s"),
        timeout: "10m",
    },
];

pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

fn names() -> String {
    TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stage as it reads once its template is applied; `None` (with an error) when the
/// template is unknown or the stage contradicts it. A stage without `uses` is returned
/// unchanged.
pub fn expand(
    file: &std::path::Path,
    name: &Spanned<String>,
    st: &RawStage,
    errors: &mut Vec<Diagnostic>,
) -> Option<RawStage> {
    let stage = &name.value;
    let Some(uses) = &st.uses else {
        if st.agent.is_none() {
            errors.push(Pos::of(name).diag(
                file,
                format!(
                    "stage `{stage}` needs an `agent`, or `uses` with a template ({})",
                    names()
                ),
            ));
            return None;
        }
        return Some(st.clone());
    };
    let Some(t) = find(&uses.value) else {
        errors.push(Pos::of(uses).diag(
            file,
            format!(
                "stage `{stage}`: unknown template `{}` (templates: {})",
                uses.value,
                names()
            ),
        ));
        return None;
    };
    let at = |node: Node| Spanned::new(node, uses.referenced, uses.defined);
    if let Some(agent) = &st.agent
        && agent.value != t.agent
    {
        errors.push(Pos::of(agent).diag(
            file,
            format!(
                "stage `{stage}`: template `{}` runs the {} agent, not `{}`",
                t.name, t.agent, agent.value
            ),
        ));
        return None;
    }
    let mut entries: Vec<(Spanned<String>, Spanned<Node>)> = t
        .spec
        .iter()
        .map(|(k, v)| {
            let node = match v {
                Value::Str(s) => Node::Str((*s).to_string()),
                Value::Bool(b) => Node::Bool(*b),
            };
            (
                Spanned::new((*k).to_string(), uses.referenced, uses.defined),
                at(node),
            )
        })
        .collect();
    let spec = match &st.spec {
        None => at(Node::Map(entries)),
        Some(own) => match &own.value {
            Node::Map(fields) => {
                for (k, v) in fields {
                    match entries.iter_mut().find(|(e, _)| e.value == k.value) {
                        Some(slot) => *slot = (k.clone(), v.clone()),
                        None => entries.push((k.clone(), v.clone())),
                    }
                }
                Spanned::new(Node::Map(entries), own.referenced, own.defined)
            }
            // Not a mapping: left for the spec check to refuse, where it stands.
            _ => own.clone(),
        },
    };
    let text = |s: &str| Spanned::new(s.to_string(), uses.referenced, uses.defined);
    let own = st.retry.as_ref();
    let retry = RawRetry {
        max_attempts: own
            .and_then(|r| r.max_attempts.clone())
            .or_else(|| Some(Spanned::new(t.retry.0, uses.referenced, uses.defined))),
        initial_backoff: own
            .and_then(|r| r.initial_backoff.clone())
            .or_else(|| Some(text(t.retry.1))),
        max_backoff: own
            .and_then(|r| r.max_backoff.clone())
            .or_else(|| Some(text(t.retry.2))),
    };
    Some(RawStage {
        agent: Some(text(t.agent)),
        uses: None,
        description: st.description.clone(),
        after: st.after.clone(),
        spec: Some(spec),
        retry: Some(retry),
        timeout: st.timeout.clone().or_else(|| Some(text(t.timeout))),
        approval: st.approval.clone(),
        resource: st.resource.clone(),
    })
}
