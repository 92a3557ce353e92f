//! What each chat command does, the same whichever platform it came from.

use std::str::FromStr;

use super::access;
use super::context::ChatContext;
use super::people::{Requester, mention};
use super::reply::Reply;
use super::text;
use crate::commands::{Command, USAGE};
use crate::domain::{Control, Run, RunId};
use crate::orchestrator::CommandError;
use crate::store::Origin;
use crate::trigger::{self, StartError, Trigger};
use crate::workflow::{Action, Params, plan};

/// How many runs `runs` lists.
const RECENT: i64 = 10;

pub async fn handle(cx: &ChatContext, who: &Requester, command: Command) -> Reply {
    match run(cx, who, command).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "A chat command failed.");
            Reply::ephemeral(format!("Lifeboat could not do that: {e}"))
        }
    }
}

async fn run(cx: &ChatContext, who: &Requester, command: Command) -> anyhow::Result<Reply> {
    let o = &cx.orchestrator;
    // What only reads is for people allowed in some group; acting checks its own group.
    if let Some(read) = command.reads()
        && let Err(refusal) = access::check_any(cx, who, read).await
    {
        return Ok(Reply::ephemeral(refusal));
    }
    Ok(match command {
        Command::Help => Reply::ephemeral(USAGE),
        Command::Start {
            action,
            group,
            dry_run,
            reason,
            force,
        } => start(cx, who, action, &group, dry_run, reason, force).await?,
        Command::Evacuate {
            groups,
            dry_run,
            reason,
        } => evacuate(cx, who, groups, dry_run, &reason).await?,
        Command::Status { target: None } => {
            let active: Vec<String> = o
                .runs(None, 50)
                .await?
                .iter()
                .filter(|r| !r.state.is_final())
                .map(text::run_line)
                .collect();
            Reply::ephemeral(if active.is_empty() {
                "No run is in progress.".into()
            } else {
                active.join("\n")
            })
        }
        Command::Status {
            target: Some(target),
        } => match RunId::from_str(&target) {
            Ok(id) => match o.run(id).await? {
                Some(run) => Reply::ephemeral(status(cx, &run).await?),
                // Run ids and evacuation ids look alike.
                None => match cx.store.evacuation(id.to_string().parse()?).await? {
                    Some(e) => {
                        Reply::ephemeral(format!("```\n{}```", crate::evacuation::summary(&e)))
                    }
                    None => Reply::ephemeral(format!("No run or evacuation `{id}`.")),
                },
            },
            Err(_) if cx.catalog().groups.contains_key(&target) => {
                match o.runs(Some(&target), 1).await?.first() {
                    Some(run) => Reply::ephemeral(status(cx, run).await?),
                    None => Reply::ephemeral(format!("Group `{target}` has no runs yet.")),
                }
            }
            Err(_) => Reply::ephemeral(format!(
                "`{target}` is neither a run id nor a group ({}). {USAGE}",
                group_names(cx)
            )),
        },
        Command::Runs => {
            let runs = o.runs(None, RECENT).await?;
            Reply::ephemeral(if runs.is_empty() {
                "No runs yet.".into()
            } else {
                runs.iter()
                    .map(text::run_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        Command::Groups => {
            let now = cx.clock.now_ms();
            let mut lines = Vec::new();
            for g in cx.catalog().groups.values() {
                let workflows: Vec<String> = g
                    .workflows
                    .iter()
                    .map(|(a, w)| format!("{a}: `{w}`"))
                    .collect();
                let verified = crate::readiness::verified(&cx.store, cx.catalog(), g, now).await?;
                lines.push(format!(
                    "`{}` ({}): {}",
                    g.name,
                    workflows.join(", "),
                    verified.words()
                ));
            }
            Reply::ephemeral(lines.join("\n"))
        }
        Command::Plan { group, action } => {
            match o.plan_for(&group, action, &Params::new(), false).await {
                Ok((p, _)) => Reply::ephemeral(format!(
                    "```\n{}```",
                    plan::render(&format!("{group} {action} → {}", p.workflow), &p.stages)
                )),
                Err(crate::orchestrator::CreateRunError::Plan(e)) => {
                    Reply::ephemeral(format!("{}. {USAGE}", e.explained()))
                }
                Err(e) => Reply::ephemeral(e.to_string()),
            }
        }
        Command::Locks => {
            let leases = cx.store.held_leases().await?;
            Reply::ephemeral(text::locks(&leases, cx.clock.now_ms()))
        }
        Command::Agents => {
            let agents = o.agents().await?;
            Reply::ephemeral(text::agents(&agents, cx.clock.now_ms()))
        }
        Command::Readiness { group } => {
            let now = cx.clock.now_ms();
            let groups: Vec<&crate::workflow::Group> = match &group {
                None => cx.catalog().groups.values().collect(),
                Some(name) => match cx.catalog().groups.get(name) {
                    Some(g) => vec![g],
                    None => {
                        return Ok(Reply::ephemeral(format!(
                            "Unknown group `{name}` (groups: {}). {USAGE}",
                            group_names(cx)
                        )));
                    }
                },
            };
            let mut said = String::new();
            for g in groups {
                said.push_str(
                    &crate::readiness::full(&cx.store, cx.catalog(), g, now)
                        .await?
                        .summary(),
                );
            }
            Reply::ephemeral(format!("```\n{said}```"))
        }
        Command::Control { run, control } => decide(cx, who, &run, control).await?,
    })
}

/// `/dr evacuate`: every group named must allow the person, as for starting its runs.
async fn evacuate(
    cx: &ChatContext,
    who: &Requester,
    groups: Vec<String>,
    dry_run: bool,
    reason: &str,
) -> anyhow::Result<Reply> {
    let which = if groups.is_empty() {
        crate::evacuation::Which::All
    } else {
        crate::evacuation::Which::Groups(groups)
    };
    let names = match crate::evacuation::groups_of(cx.catalog(), which, Action::Failover) {
        Ok(names) => names,
        Err(e) => return Ok(Reply::ephemeral(format!("{e}. {USAGE}"))),
    };
    let mut refused = Vec::new();
    for name in &names {
        if let Some(g) = cx.catalog().groups.get(name)
            && let Err(refusal) = access::check(cx, who, g, "evacuate", None).await
        {
            refused.push(refusal);
        }
    }
    if !refused.is_empty() {
        return Ok(Reply::ephemeral(refused.join("\n")));
    }
    let e = crate::evacuation::start(
        &cx.orchestrator,
        &cx.store,
        names,
        Action::Failover,
        dry_run,
        reason,
        &who.actor(),
    )
    .await?;
    Ok(Reply::channel(format!(
        "{} started an evacuation of {} groups{}: `{}`. `/dr status {}` shows how it stands.",
        mention(&who.actor(), who.platform),
        e.groups.len(),
        if dry_run { " (dry run)" } else { "" },
        e.id,
        e.id
    )))
}

async fn start(
    cx: &ChatContext,
    who: &Requester,
    action: Action,
    group: &str,
    dry_run: bool,
    reason: Option<String>,
    force: bool,
) -> anyhow::Result<Reply> {
    let Some(g) = cx.catalog().groups.get(group) else {
        return Ok(Reply::ephemeral(format!(
            "Unknown group `{group}` (groups: {}). {USAGE}",
            group_names(cx)
        )));
    };
    let request = format!("{action} {group}");
    let allowed = match access::check(cx, who, g, &request, None).await {
        Ok(a) => a,
        Err(refusal) => return Ok(Reply::ephemeral(refusal)),
    };
    let trigger = Trigger {
        roles: allowed.roles,
        dry_run,
        reason,
        force,
        ..Trigger::new(allowed.actor.clone(), group, action)
    };
    match trigger::start(&cx.orchestrator, trigger).await {
        Ok(run) => {
            cx.store
                .record_origin(
                    run.id,
                    who.platform.name(),
                    &Origin {
                        channel: who.channel.clone(),
                        user: who.user.clone(),
                    },
                )
                .await?;
            Ok(Reply::channel(format!(
                "{} started {}{} of `{group}`: run `{}`. Its incident opens in a moment.",
                mention(&allowed.actor, who.platform),
                action,
                if run.dry_run { " (dry run)" } else { "" },
                run.id
            )))
        }
        Err(StartError::Forbidden(why)) => Ok(Reply::ephemeral(why)),
        Err(StartError::Create(e)) => Ok(Reply::ephemeral(format!("Not started: {e}."))),
    }
}

async fn decide(
    cx: &ChatContext,
    who: &Requester,
    run: &str,
    control: Control,
) -> anyhow::Result<Reply> {
    let Ok(id) = RunId::from_str(run) else {
        return Ok(Reply::ephemeral(format!(
            "`{run}` is not a run id. {USAGE}"
        )));
    };
    // `/dr skip EVACUATION GROUP --reason …`: run ids and evacuation ids look alike.
    if let Control::Skip { stage, reason } = &control
        && cx.orchestrator.run(id).await?.is_none()
    {
        let evacuation: crate::domain::EvacuationId = id.to_string().parse()?;
        if cx.store.evacuation(evacuation).await?.is_some() {
            return skip_group(cx, who, evacuation, stage, reason).await;
        }
    }
    decide_on(cx, who, id, control).await
}

/// Gives up on a group of an evacuation, saying why, if the group allows `who`.
async fn skip_group(
    cx: &ChatContext,
    who: &Requester,
    id: crate::domain::EvacuationId,
    group: &str,
    reason: &str,
) -> anyhow::Result<Reply> {
    use crate::evacuation::{self, ControlError, GroupControl};
    let Some(g) = cx.catalog().groups.get(group) else {
        return Ok(Reply::ephemeral(format!("No group `{group}`.")));
    };
    let actor = match access::check(cx, who, g, &format!("skip {id} {group}"), None).await {
        Ok(allowed) => allowed.actor,
        Err(refusal) => return Ok(Reply::ephemeral(refusal)),
    };
    let control = GroupControl::Skip {
        reason: reason.to_string(),
    };
    Ok(
        match evacuation::control_group(&cx.orchestrator, &cx.store, id, group, control, &actor)
            .await
        {
            Ok(_) => Reply::channel(format!(
                "{} skipped `{group}` in evacuation `{id}`: {}",
                mention(&actor, who.platform),
                who.platform.escape(reason)
            )),
            Err(ControlError::Store(e)) => return Err(e),
            Err(e) => Reply::ephemeral(format!("Cannot skip `{group}` in evacuation `{id}`: {e}.")),
        },
    )
}

/// A person's control over a run, if the run's group allows them: from a command or a
/// button.
async fn decide_on(
    cx: &ChatContext,
    who: &Requester,
    id: RunId,
    control: Control,
) -> anyhow::Result<Reply> {
    let word = control.word();
    let allowed = match permitted(cx, who, id, &format!("{word} {id}")).await? {
        Ok((_, allowed)) => allowed,
        Err(refusal) => return Ok(refusal),
    };
    let actor = &allowed.actor;
    let did = control.done();
    let done = cx.orchestrator.control(id, control, actor).await;
    Ok(match done {
        Ok(run) => Reply::channel(format!(
            "{} {did} {} of `{}` (run `{id}`): it is {} now.",
            mention(actor, who.platform),
            run.action,
            run.group,
            text::state_word(run.state)
        )),
        Err(CommandError::WorkflowChanged(why)) if word == "resume" => Reply::ephemeral(format!(
            "Cannot resume run `{id}`: {why} (`/dr resume {id} --force`)."
        )),
        Err(CommandError::Refused(why)) => {
            Reply::ephemeral(format!("Cannot {word} run `{id}`: {why}."))
        }
        Err(e) => Reply::ephemeral(format!("Cannot {word} run `{id}`: {e}.")),
    })
}

/// What a button press does: on a run's card, the same as the command of its name; on an
/// offer's card, the person's word on the offer.
pub async fn press(
    cx: &ChatContext,
    who: &Requester,
    button: super::card::Button,
    target: super::card::Target,
) -> Reply {
    use super::card::Button;
    if button.for_evacuation() {
        return match on_evacuation(cx, who, button, &target).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!(error = %e, "A button press failed.");
                Reply::ephemeral(format!("Lifeboat could not do that: {e}"))
            }
        };
    }
    let id = target.run;
    let stage = || target.stage.clone().ok_or("That button names no stage.");
    let control = match button {
        Button::Approve => Control::Approve { stage: None },
        Button::Reject => Control::Reject { reason: None },
        Button::Cancel => Control::Cancel { reason: None },
        Button::Resume => Control::Resume { force: false },
        Button::RetryNow => match stage() {
            Ok(stage) => Control::RetryNow { stage },
            Err(e) => return Reply::ephemeral(e),
        },
        Button::Skip => match stage() {
            Ok(stage) => return confirm_skip(cx, who, id, &stage).await,
            Err(e) => return Reply::ephemeral(e),
        },
        Button::OfferApprove => Control::Approve { stage: None },
        Button::OfferReject => Control::Reject { reason: None },
        Button::Veto => Control::Veto,
        Button::StartNow => Control::StartNow,
        Button::EvacuationResume | Button::EvacuationSkip | Button::EvacuationAbort => {
            return Reply::ephemeral("That button is an evacuation's.");
        }
    };
    if button.for_offer() {
        return on_offer(cx, who, id, control).await;
    }
    match decide_on(cx, who, id, control).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "A button press failed.");
            Reply::ephemeral(format!("Lifeboat could not do that: {e}"))
        }
    }
}

/// A press on an evacuation's card: resume a failed group, ask why before skipping one,
/// or abort what has not started. Each needs the person allowed on the groups it touches:
/// the group pressed on, or for an abort, every group of the evacuation.
async fn on_evacuation(
    cx: &ChatContext,
    who: &Requester,
    button: super::card::Button,
    target: &super::card::Target,
) -> anyhow::Result<Reply> {
    use super::card::Button;
    use crate::evacuation::{self, ControlError, GroupControl};
    // The button carries the evacuation's id where a run's would be: the same form.
    let id: crate::domain::EvacuationId = target.run.to_string().parse()?;
    let Some(e) = cx.store.evacuation(id).await? else {
        return Ok(Reply::ephemeral(format!("No evacuation `{id}`.")));
    };
    let touched: Vec<String> = match (&target.stage, button) {
        (_, Button::EvacuationAbort) => e.groups.iter().map(|g| g.group.clone()).collect(),
        (Some(group), _) => vec![group.clone()],
        (None, _) => return Ok(Reply::ephemeral("That button names no group.")),
    };
    let word = match button {
        Button::EvacuationResume => "resume",
        Button::EvacuationSkip => "skip",
        _ => "abort",
    };
    let mut actor = who.actor();
    for name in &touched {
        let Some(group) = cx.catalog().groups.get(name) else {
            return Ok(Reply::ephemeral(format!(
                "Group `{name}` of evacuation `{id}` is no longer defined."
            )));
        };
        match access::check(cx, who, group, &format!("{word} {id} {name}"), None).await {
            Ok(allowed) => actor = allowed.actor,
            Err(refusal) => return Ok(Reply::ephemeral(refusal)),
        }
    }
    let group = touched.first().cloned().unwrap_or_default();
    let done = match button {
        Button::EvacuationSkip => {
            return Ok(Reply::ephemeral(format!(
                "Skipping `{group}` lets the groups that depend on it go on without it. Say why: `/dr skip {id} {group} REASON`"
            )));
        }
        Button::EvacuationResume => {
            evacuation::control_group(
                &cx.orchestrator,
                &cx.store,
                id,
                &group,
                GroupControl::Resume,
                &actor,
            )
            .await
        }
        _ => evacuation::abort(&cx.orchestrator, &cx.store, id, &actor, None).await,
    };
    let by = mention(&actor, who.platform);
    Ok(match done {
        Ok(_) if word == "abort" => Reply::channel(format!(
            "{by} aborted evacuation `{id}`: groups not yet started will not start."
        )),
        Ok(_) => Reply::channel(format!("{by} resumed `{group}` in evacuation `{id}`.")),
        Err(ControlError::Store(e)) => return Err(e),
        Err(e) => Reply::ephemeral(format!("Cannot {word} evacuation `{id}`: {e}.")),
    })
}

/// Run `id`, once its group allows `who` to make `request` of it; or the answer saying
/// why not.
async fn permitted(
    cx: &ChatContext,
    who: &Requester,
    id: RunId,
    request: &str,
) -> anyhow::Result<Result<(Run, access::Allowed), Reply>> {
    let Some(run) = cx.orchestrator.run(id).await? else {
        return Ok(Err(Reply::ephemeral(format!("Run `{id}` not found."))));
    };
    let Some(group) = cx.catalog().groups.get(&run.group) else {
        return Ok(Err(Reply::ephemeral(format!(
            "Run `{id}` belongs to group `{}`, which the workflows no longer define.",
            run.group
        ))));
    };
    Ok(
        match access::check(cx, who, group, request, Some(id)).await {
            Ok(allowed) => Ok((run, allowed)),
            Err(refusal) => Err(Reply::ephemeral(refusal)),
        },
    )
}

/// A Skip press asks first: skipping lets the stage's dependents run without it, so the
/// person confirms by saying why, with the command the answer gives them.
async fn confirm_skip(cx: &ChatContext, who: &Requester, id: RunId, stage: &str) -> Reply {
    let run = match permitted(cx, who, id, &format!("skip {id} {stage}")).await {
        Ok(Ok((run, _))) => run,
        Ok(Err(refusal)) => return refusal,
        Err(e) => return Reply::ephemeral(format!("Lifeboat could not do that: {e}")),
    };
    let dependents: Vec<String> = match run.stage_index(stage) {
        Some(i) => run
            .plan
            .iter()
            .filter(|p| p.after.contains(&i))
            .map(|p| format!("`{}`", p.name))
            .collect(),
        None => return Reply::ephemeral(format!("Run `{id}` has no stage `{stage}`.")),
    };
    let then = if dependents.is_empty() {
        "the run goes on without it".to_string()
    } else {
        format!("{} will run without it", dependents.join(", "))
    };
    Reply::ephemeral(format!(
        "Skip `{stage}` of run `{id}`? {}. To confirm, say why: `/dr skip {id} {stage} REASON`",
        super::capitalised(&then)
    ))
}

/// A person's word on an offer, if its group allows them.
async fn on_offer(cx: &ChatContext, who: &Requester, id: RunId, control: Control) -> Reply {
    let offer = match cx.offers.offer(id).await {
        Ok(Some(o)) => o,
        Ok(None) => return Reply::ephemeral(format!("Offer `{id}` not found.")),
        Err(e) => return Reply::ephemeral(format!("Lifeboat could not do that: {e}")),
    };
    let Some(group) = cx.catalog().groups.get(&offer.group) else {
        return Reply::ephemeral(format!(
            "Offer `{id}` is for group `{}`, which the workflows no longer define.",
            offer.group
        ));
    };
    let request = format!("{} offer {id}", control.word());
    let allowed = match access::check(cx, who, group, &request, Some(id)).await {
        Ok(a) => a,
        Err(refusal) => return Reply::ephemeral(refusal),
    };
    let what = format!("{} of `{}`", offer.action, offer.group);
    let by = mention(&allowed.actor, who.platform);
    match cx.offers.decide(id, &control, &allowed.actor).await {
        Ok(o) => Reply::channel(match (&control, o.run_id) {
            (Control::Veto, _) => format!("{by} vetoed the {what}."),
            (Control::Reject { .. }, _) => format!("{by} rejected the {what}."),
            (_, Some(run)) => format!("{by} started the {what}: run `{run}`."),
            (_, None) => format!("{by} started the {what}; it is {} now.", o.state),
        }),
        Err(e) => Reply::ephemeral(format!("Cannot {} the {what}: {e}.", control.word())),
    }
}

async fn status(cx: &ChatContext, run: &Run) -> anyhow::Result<String> {
    let audit = cx.orchestrator.events(run.id).await?;
    let alerts = cx.store.alert_tally(run.id).await?;
    let card = super::card::Card::of(
        run,
        &audit,
        alerts.as_ref(),
        &super::Plain,
        cx.clock.now_ms(),
    );
    Ok(format!("{}\n{}", text::run_line(run), text::card(&card)))
}

fn group_names(cx: &ChatContext) -> String {
    cx.catalog()
        .groups
        .keys()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
