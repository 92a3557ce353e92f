//! Reading `targets.yaml` into the estate (`targets`): every target names a provider that
//! can drive its kind, with fields that provider accepts. Moving from the simulated estate
//! to the real one is an edit of this file alone.

use std::path::Path;

use super::kinds::StageKinds;
use super::raw::RawTargets;
use super::source::{Diagnostic, Node, OrderedMap, Pos, Spanned};
use super::targets::{Target, TargetKind, Targets};

/// Checks `targets.yaml`: every target names a provider that can drive its kind, with
/// fields that provider accepts.
pub(super) fn check(
    file: &Path,
    raw: RawTargets,
    kinds: &dyn StageKinds,
    errors: &mut Vec<Diagnostic>,
) -> Targets {
    let mut targets = Targets::from_file(file.to_path_buf());
    let sections = [
        (TargetKind::Database, raw.databases),
        (TargetKind::Cluster, raw.clusters),
        (TargetKind::Endpoint, raw.endpoints),
    ];
    for (kind, entries) in sections {
        section(file, kind, entries, kinds, &mut targets, errors);
    }
    if let Some(limits) = &raw.limits {
        targets.limits = super::limits::check(file, limits, &targets, kinds, errors);
    }
    targets
}

fn section(
    file: &Path,
    kind: TargetKind,
    entries: OrderedMap<Spanned<Node>>,
    kinds: &dyn StageKinds,
    targets: &mut Targets,
    errors: &mut Vec<Diagnostic>,
) {
    for (name, node) in entries.0 {
        let Node::Map(fields) = &node.value else {
            errors.push(Pos::of(&node).diag(
                file,
                format!(
                    "{kind} `{}` must be a mapping with a `provider`, not {}",
                    name.value,
                    node.value.kind()
                ),
            ));
            continue;
        };
        let provider = fields.iter().find(|(k, _)| k.value == "provider");
        let provider = match provider.map(|(_, v)| &v.value) {
            Some(Node::Str(p)) => p.clone(),
            Some(other) => {
                errors.push(Pos::of(provider.map_or(&node, |(_, v)| v)).diag(
                    file,
                    format!(
                        "{kind} `{}`: provider must be a name, not {}",
                        name.value,
                        other.kind()
                    ),
                ));
                continue;
            }
            None => {
                errors.push(Pos::of(&name).diag(
                    file,
                    format!(
                        "{kind} `{}` needs a `provider` ({})",
                        name.value,
                        kinds.providers(kind).join(", ")
                    ),
                ));
                continue;
            }
        };
        let known = kinds.providers(kind);
        if !known.contains(&provider.as_str()) {
            let at = provider_node(&node).unwrap_or(&node);
            errors.push(Pos::of(at).diag(
                file,
                format!(
                    "{kind} `{}`: unknown provider `{provider}` ({kind} providers: {})",
                    name.value,
                    known.join(", ")
                ),
            ));
            continue;
        }
        let rest = Spanned::new(
            Node::Map(
                fields
                    .iter()
                    .filter(|(k, _)| k.value != "provider")
                    .cloned()
                    .collect(),
            ),
            node.referenced,
            node.defined,
        );
        let values = rest.value.to_json();
        if let Err(e) = kinds.check_target(kind, &provider, &values) {
            errors.push(e.diag(
                file,
                &rest,
                &format!("{kind} `{}`: {provider} target", name.value),
            ));
            continue;
        }
        let added = targets.add(Target {
            name: name.value.clone(),
            kind,
            provider,
            fields: values,
            pos: Pos::of(&name),
        });
        if !added {
            errors.push(
                Pos::of(&name).diag(file, format!("{kind} `{}` is defined twice", name.value)),
            );
        }
    }
}

fn provider_node(node: &Spanned<Node>) -> Option<&Spanned<Node>> {
    match &node.value {
        Node::Map(fields) => fields
            .iter()
            .find(|(k, _)| k.value == "provider")
            .map(|(_, v)| v),
        _ => None,
    }
}

/// `targets.yaml` (or `.yml`) of a workflows directory alone, for a process that runs
/// agents and needs no workflow: no file, or no directory, means every target is
/// simulated.
pub fn load(dir: &Path, kinds: &dyn StageKinds) -> Result<Targets, Vec<Diagnostic>> {
    let Some(file) = ["targets.yaml", "targets.yml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
    else {
        return Ok(Targets::default());
    };
    let text =
        std::fs::read_to_string(&file).map_err(|e| vec![super::fields::io_diag(&file, &e)])?;
    let raw = super::source::parse::<RawTargets>(&file, &text).map_err(|d| vec![d])?;
    let mut errors = Vec::new();
    let targets = check(&file, raw, kinds, &mut errors);
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(errors)
    }
}
