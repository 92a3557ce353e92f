//! `lifeboat report`: a run's evidence for an auditor, or a group's drills and runs over a
//! period, as the running service renders them (HTML, Markdown or JSON), to standard
//! output or a file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::api_client::ApiClient;
use crate::evidence::Format;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["run", "group"])))]
pub struct Report {
    /// The run to report on.
    run: Option<String>,
    /// Instead, a group's drills and runs over a period (`--since`).
    #[arg(long, conflicts_with = "run")]
    group: Option<String>,
    /// How far back, with `--group`: 90d, 12h.
    #[arg(long, default_value = "90d", requires = "group")]
    since: String,
    #[arg(long, value_enum, default_value_t = Shape::Html)]
    format: Shape,
    /// Write it here rather than to standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Shape {
    Html,
    Md,
    Json,
}

impl From<Shape> for Format {
    fn from(s: Shape) -> Format {
        match s {
            Shape::Html => Format::Html,
            Shape::Md => Format::Markdown,
            Shape::Json => Format::Json,
        }
    }
}

pub async fn run(report: Report, server: &str) -> anyhow::Result<ExitCode> {
    let file = format!("report.{}", Format::from(report.format).extension());
    let client = ApiClient::new(server)?;
    let answer = match (&report.run, &report.group) {
        (Some(run), _) => client.text(&["api", "v1", "runs", run, &file], &[]).await,
        (None, Some(group)) => {
            client
                .text(
                    &["api", "v1", "groups", group, &file],
                    &[("since", &report.since)],
                )
                .await
        }
        (None, None) => anyhow::bail!("name a run, or a group with --group"),
    };
    let text = match answer {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    match &report.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
