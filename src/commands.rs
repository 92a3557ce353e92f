//! The command grammar shared by chat platforms and the demo (DESIGN.md section 10):
//! `failover GROUP [--dry-run] [--reason TEXT]`, `failback GROUP [--dry-run]`,
//! `drill GROUP`, `approve RUN`, `reject RUN`, `cancel RUN`, `status [RUN|GROUP]`, `help`.

use crate::workflow::Action;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Start {
        action: Action,
        group: String,
        dry_run: bool,
        reason: Option<String>,
    },
    Approve {
        run: String,
    },
    Reject {
        run: String,
    },
    Cancel {
        run: String,
    },
    Status {
        target: Option<String>,
    },
    Help,
}

pub const USAGE: &str = "usage: /dr failover GROUP [--dry-run] [--reason TEXT] | failback GROUP [--dry-run] | \
drill GROUP | status [RUN|GROUP] | approve RUN | reject RUN | cancel RUN | help";

pub fn parse(text: &str) -> Result<Command, String> {
    let mut words = text.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(Command::Help);
    };
    let rest: Vec<&str> = words.collect();
    let one = |what: &str| -> Result<String, String> {
        match rest.as_slice() {
            [x] => Ok(x.to_string()),
            _ => Err(format!("`{verb}` takes one {what}. {USAGE}")),
        }
    };
    match verb {
        "failover" | "failback" | "drill" => {
            let action: Action = verb.parse()?;
            let mut group = None;
            let mut dry_run = action == Action::Drill;
            let mut reason = None;
            let mut i = 0;
            while i < rest.len() {
                match rest[i] {
                    "--dry-run" => dry_run = true,
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
            })
        }
        "approve" => Ok(Command::Approve {
            run: one("run id")?,
        }),
        "reject" => Ok(Command::Reject {
            run: one("run id")?,
        }),
        "cancel" => Ok(Command::Cancel {
            run: one("run id")?,
        }),
        "status" => Ok(Command::Status {
            target: rest.first().map(|s| s.to_string()),
        }),
        "help" => Ok(Command::Help),
        other => Err(format!("unknown command `{other}`. {USAGE}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_start_commands() {
        assert_eq!(
            parse("failover petstore --dry-run --reason region b is down"),
            Ok(Command::Start {
                action: Action::Failover,
                group: "petstore".into(),
                dry_run: true,
                reason: Some("region b is down".into())
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
}
