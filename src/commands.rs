//! The command grammar shared by Slack, Discord and the demo (the README's "Chat"). The
//! platforms only translate what they receive into this text (or, for Discord's
//! subcommands, into the same words) and parse it here into one `Command`.

use crate::domain::Control;
use crate::workflow::Action;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `failover GROUP [--dry-run] [--reason TEXT]`, `failback …`, `drill GROUP`.
    Start {
        action: Action,
        group: String,
        dry_run: bool,
        reason: Option<String>,
        /// Past the agents' preflight and a worked-out failback's drift check (audited).
        force: bool,
    },
    /// `evacuate all|GROUP... [--dry-run] --reason TEXT`: many groups' failovers at once,
    /// in dependency order.
    Evacuate {
        /// Empty: every group.
        groups: Vec<String>,
        dry_run: bool,
        reason: String,
    },
    /// `status [RUN|EVACUATION|GROUP]`: a run, an evacuation, a group's latest run, or the
    /// runs in progress.
    Status {
        target: Option<String>,
    },
    Runs,
    Groups,
    Plan {
        group: String,
        action: Action,
    },
    Locks,
    Agents,
    /// `readiness [GROUP]`: what each group's last drill found.
    Readiness {
        group: Option<String>,
    },
    /// `approve RUN`, `reject RUN [REASON]`, `cancel|abort RUN [REASON]`,
    /// `resume RUN [--force]`, `retry RUN STAGE`, `skip RUN STAGE REASON`.
    Control {
        run: String,
        control: Control,
    },
    Help,
}

impl Command {
    /// The word of a command that only reads; `None` for help and for what acts.
    pub fn reads(&self) -> Option<&'static str> {
        match self {
            Command::Status { .. } => Some("status"),
            Command::Runs => Some("runs"),
            Command::Groups => Some("groups"),
            Command::Plan { .. } => Some("plan"),
            Command::Locks => Some("locks"),
            Command::Agents => Some("agents"),
            Command::Readiness { .. } => Some("readiness"),
            Command::Start { .. }
            | Command::Evacuate { .. }
            | Command::Control { .. }
            | Command::Help => None,
        }
    }
}

pub const USAGE: &str = "usage: /dr failover GROUP [--dry-run] [--reason TEXT] | failback GROUP [--dry-run] [--force] | \
reprotect GROUP [--dry-run] | drill GROUP | evacuate all|GROUP... [--dry-run] --reason TEXT | \
status [RUN|EVACUATION|GROUP] | runs | groups | plan GROUP [ACTION] | locks | agents | \
readiness [GROUP] | \
resume RUN [--force] | retry RUN STAGE | skip RUN STAGE REASON | approve RUN | reject RUN [REASON] | \
cancel (or abort) RUN [REASON] | help";

pub fn parse(text: &str) -> Result<Command, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let Some((&verb, rest)) = words.split_first() else {
        return Ok(Command::Help);
    };
    let fail = |what: String| Err(format!("{what}. {USAGE}"));
    let none = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            fail(format!("`{verb}` takes nothing after it"))
        }
    };
    let reason = |words: &[&str]| (!words.is_empty()).then(|| words.join(" "));
    match verb {
        "failover" | "failback" | "drill" | "reprotect" => start(verb, rest),
        "evacuate" => evacuate(rest),
        "status" => match rest {
            [] => Ok(Command::Status { target: None }),
            [target] => Ok(Command::Status {
                target: Some(target.to_string()),
            }),
            _ => fail("`status` takes one run id, evacuation id or group".into()),
        },
        "runs" => none(Command::Runs),
        "groups" => none(Command::Groups),
        "locks" => none(Command::Locks),
        "agents" => none(Command::Agents),
        "readiness" => match rest {
            [] => Ok(Command::Readiness { group: None }),
            [group] => Ok(Command::Readiness {
                group: Some(group.to_string()),
            }),
            _ => fail("`readiness` takes one group, or none".into()),
        },
        "help" => Ok(Command::Help),
        "plan" => match rest {
            [group] => Ok(Command::Plan {
                group: group.to_string(),
                action: Action::Failover,
            }),
            [group, action] => Ok(Command::Plan {
                group: group.to_string(),
                action: action
                    .parse::<Action>()
                    .map_err(|e| format!("{e}. {USAGE}"))?,
            }),
            _ => fail("`plan` takes a group and, optionally, an action".into()),
        },
        "resume" => match rest {
            [run] => control(run, Control::Resume { force: false }),
            [run, "--force"] => control(run, Control::Resume { force: true }),
            _ => fail("`resume` takes one run id (and `--force`)".into()),
        },
        "retry" => match rest {
            [run, stage] => control(
                run,
                Control::RetryNow {
                    stage: stage.to_string(),
                },
            ),
            _ => fail("`retry` takes a run id and a stage".into()),
        },
        "skip" => match rest {
            [run, stage, why @ ..] if !said(why).is_empty() => control(
                run,
                Control::Skip {
                    stage: stage.to_string(),
                    reason: said(why).join(" "),
                },
            ),
            _ => fail("`skip` takes a run id, a stage and a reason".into()),
        },
        "approve" => match rest {
            [run] => control(run, Control::Approve { stage: None }),
            _ => fail("`approve` takes one run id".into()),
        },
        "reject" => match rest {
            [run, why @ ..] => control(
                run,
                Control::Reject {
                    reason: reason(said(why)),
                },
            ),
            [] => fail("`reject` takes a run id".into()),
        },
        "cancel" | "abort" => match rest {
            [run, why @ ..] => control(
                run,
                Control::Cancel {
                    reason: reason(said(why)),
                },
            ),
            [] => fail("`cancel` takes a run id".into()),
        },
        other => fail(format!("unknown command `{other}`")),
    }
}

/// A reason as given: starting commands take `--reason TEXT`, and a person who says it to
/// `skip`, `reject` or `cancel` too means the same.
fn said<'a>(words: &'a [&'a str]) -> &'a [&'a str] {
    match words {
        ["--reason", why @ ..] => why,
        why => why,
    }
}

fn evacuate(rest: &[&str]) -> Result<Command, String> {
    let mut groups = Vec::new();
    let mut all = false;
    let mut dry_run = false;
    let mut reason = None;
    for (i, word) in rest.iter().enumerate() {
        match *word {
            "--dry-run" => dry_run = true,
            "--reason" => {
                let text = rest[i + 1..].join(" ");
                reason = Some(text.trim_matches('"').trim().to_string());
                break;
            }
            "all" => all = true,
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option `{flag}`. {USAGE}"));
            }
            group => groups.push(group.to_string()),
        }
    }
    if all && !groups.is_empty() {
        return Err(format!(
            "`evacuate` takes `all` or groups, not both. {USAGE}"
        ));
    }
    if !all && groups.is_empty() {
        return Err(format!("`evacuate` needs `all` or groups. {USAGE}"));
    }
    let reason = reason
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("`evacuate` needs --reason and why. {USAGE}"))?;
    Ok(Command::Evacuate {
        groups,
        dry_run,
        reason,
    })
}

fn control(run: &str, control: Control) -> Result<Command, String> {
    Ok(Command::Control {
        run: run.to_string(),
        control,
    })
}

fn start(verb: &str, rest: &[&str]) -> Result<Command, String> {
    let action: Action = verb.parse()?;
    let mut group = None;
    let mut dry_run = action == Action::Drill;
    let mut reason = None;
    let mut force = false;
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            "--dry-run" => dry_run = true,
            "--force" => force = true,
            "--reason" => {
                let text = rest[i + 1..].join(" ");
                if text.is_empty() {
                    return Err(format!("--reason needs text. {USAGE}"));
                }
                reason = Some(text.trim_matches('"').to_string());
                break;
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option `{flag}`. {USAGE}"));
            }
            word if group.is_none() => group = Some(word.to_string()),
            word => return Err(format!("unexpected `{word}`. {USAGE}")),
        }
        i += 1;
    }
    let group = group.ok_or_else(|| format!("`{verb}` needs a group. {USAGE}"))?;
    Ok(Command::Start {
        action,
        group,
        dry_run,
        reason,
        force,
    })
}

#[cfg(test)]
#[path = "commands_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_evacuate() {
        assert_eq!(
            parse("evacuate all --dry-run --reason region a is gone"),
            Ok(Command::Evacuate {
                groups: vec![],
                dry_run: true,
                reason: "region a is gone".into(),
            })
        );
        assert_eq!(
            parse("evacuate db app --reason \"game day\""),
            Ok(Command::Evacuate {
                groups: vec!["db".into(), "app".into()],
                dry_run: false,
                reason: "game day".into(),
            })
        );
        for bad in [
            "evacuate all",
            "evacuate --reason x",
            "evacuate all db --reason x",
            "evacuate db --reason",
            "evacuate db --now --reason x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_start_commands() {
        assert_eq!(
            parse("failover petstore --dry-run --reason region b is down"),
            Ok(Command::Start {
                action: Action::Failover,
                group: "petstore".into(),
                dry_run: true,
                reason: Some("region b is down".into()),
                force: false,
            })
        );
        assert!(matches!(
            parse("drill petstore"),
            Ok(Command::Start { dry_run: true, .. })
        ));
        assert!(
            parse("failover")
                .expect_err("needs group")
                .contains("needs a group")
        );
        assert!(
            parse("explode petstore")
                .expect_err("unknown")
                .contains("unknown command")
        );
        assert!(parse("failover a b").is_err());
    }

    #[test]
    fn parses_the_rest_of_the_grammar() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("status"), Ok(Command::Status { target: None }));
        assert_eq!(
            parse("status petstore"),
            Ok(Command::Status {
                target: Some("petstore".into())
            })
        );
        assert_eq!(parse("runs"), Ok(Command::Runs));
        assert_eq!(parse("groups"), Ok(Command::Groups));
        assert_eq!(parse("locks"), Ok(Command::Locks));
        assert_eq!(parse("agents"), Ok(Command::Agents));
        assert_eq!(parse("readiness"), Ok(Command::Readiness { group: None }));
        assert_eq!(
            parse("readiness shop"),
            Ok(Command::Readiness {
                group: Some("shop".into())
            })
        );
        assert!(parse("readiness a b").is_err());
        assert_eq!(
            parse("reprotect petstore --dry-run"),
            Ok(Command::Start {
                action: Action::Reprotect,
                group: "petstore".into(),
                dry_run: true,
                reason: None,
                force: false,
            })
        );
        assert_eq!(
            parse("failback petstore --force"),
            Ok(Command::Start {
                action: Action::Failback,
                group: "petstore".into(),
                dry_run: false,
                reason: None,
                force: true,
            })
        );
        assert_eq!(
            parse("plan petstore failback"),
            Ok(Command::Plan {
                group: "petstore".into(),
                action: Action::Failback
            })
        );
        assert_eq!(
            parse("skip R dial the DNS is fine already"),
            Ok(Command::Control {
                run: "R".into(),
                control: Control::Skip {
                    stage: "dial".into(),
                    reason: "the DNS is fine already".into()
                }
            })
        );
        assert_eq!(
            parse("cancel R false alarm"),
            Ok(Command::Control {
                run: "R".into(),
                control: Control::Cancel {
                    reason: Some("false alarm".into())
                }
            })
        );
        assert_eq!(
            parse("reject R"),
            Ok(Command::Control {
                run: "R".into(),
                control: Control::Reject { reason: None }
            })
        );
        assert_eq!(
            parse("skip R dial --reason the DNS is fine already"),
            parse("skip R dial the DNS is fine already"),
        );
        assert_eq!(
            parse("cancel R --reason false alarm"),
            parse("cancel R false alarm"),
        );
        for bad in [
            "runs now",
            "plan",
            "plan petstore sideways",
            "skip R dial",
            "skip R dial --reason",
            "approve",
            "retry R",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.ends_with(USAGE), "{bad}: {e}");
        }
    }
}
