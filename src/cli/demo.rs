//! `lifeboat demo`: the whole product on the embedded deployment with no setup. It starts
//! the service (store in a temporary directory, HTTP on a free loopback port), sends
//! `failover petstore` through the chat command path, approves the gate as the demo user,
//! streams the run and prints the summary. With `--keep` it goes on serving, the console
//! included, until Enter is pressed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::progress::{self, Approver};
use crate::app::Options;
use crate::commands::{self, Command};
use crate::config::Settings;
use crate::domain::{Actor, RunState};
use crate::startup::Service;
use crate::trigger::Trigger;

/// The example workflows, for a demo started outside a checkout.
const BUILTIN: &[(&str, &str)] = &[
    (
        "petstore.yaml",
        include_str!("../../workflows/petstore.yaml"),
    ),
    (
        "petstore-failback.yaml",
        include_str!("../../workflows/petstore-failback.yaml"),
    ),
    ("groups.yaml", include_str!("../../workflows/groups.yaml")),
    ("routes.yaml", include_str!("../../workflows/routes.yaml")),
    ("targets.yaml", include_str!("../../workflows/targets.yaml")),
];

fn workflows(dir: &Path) -> anyhow::Result<PathBuf> {
    let local = PathBuf::from("workflows");
    if local.join("groups.yaml").is_file() && local.join("petstore.yaml").is_file() {
        return Ok(local);
    }
    let target = dir.join("workflows");
    std::fs::create_dir_all(&target)?;
    for (name, text) in BUILTIN {
        std::fs::write(target.join(name), text)?;
    }
    Ok(target)
}

pub async fn run(keep: bool) -> anyhow::Result<ExitCode> {
    let dir = tempfile_dir()?;
    let settings = Settings::embedded(
        format!("sqlite://{}", dir.join("demo.db").display()),
        workflows(&dir)?,
    );
    println!("Lifeboat demo: a failover of the petstore group on a SIMULATED estate.");
    println!(
        "Nothing outside this process is touched; the store is {}.",
        dir.join("demo.db").display()
    );

    let service = Service::start(&settings, Options::default()).await?;
    let addr = service.addr;
    println!("Service up: http://{addr}/api/v1/runs (runs), /metrics, /readyz");
    println!("Console: http://{addr}/ (open on this machine: no token is set)\n");

    let text = "failover petstore --reason region-b is down (demo)";
    println!("> /dr {text}");
    let Command::Start {
        action,
        group,
        dry_run,
        reason,
        ..
    } = commands::parse(text).map_err(anyhow::Error::msg)?
    else {
        anyhow::bail!("the demo command did not parse as a start");
    };
    let actor = Actor::Terminal("demo".into());
    let trigger = Trigger {
        dry_run,
        reason,
        ..Trigger::new(actor.clone(), group, action)
    };
    let approver = Approver::Auto {
        actor,
        after: Duration::from_millis(800),
    };
    let done = progress::run_in_terminal(&service.app, trigger, approver).await?;
    let audit = service.app.orchestrator.events(done.id).await?;
    let recovery = service.app.orchestrator.recovery(&done).await?;
    let card = crate::chat::card::Card::of(
        &done,
        &audit,
        None,
        &crate::chat::Plain,
        done.finished_at.unwrap_or_default(),
    )
    .with_recovery(recovery.as_ref());
    println!("The card this run keeps in its incident channel (Slack) or thread (Discord):\n");
    for line in crate::chat::text::card(&card).lines() {
        println!("  {line}");
    }
    println!(
        "\nThe audit trail: GET http://{addr}/api/v1/runs/{}",
        done.id
    );

    if keep {
        println!("\nStill serving: the console at http://{addr}/. Press Enter to stop.");
        let enter = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        });
        // A closed stdin (no terminal) stops at once rather than serving forever unseen.
        let _ = enter.await;
    }
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(if done.state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("lifeboat-demo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
