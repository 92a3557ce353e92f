//! Live terminal progress for `lifeboat run` and `lifeboat demo`: one line per stage with
//! its state and elapsed time (redrawn in place on a terminal, appended otherwise), and a
//! closing summary with each stage's duration and the total recovery time.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::app::App;
use crate::bus::{self, Progress, RunEvent, Subscription};
use crate::clock;
use crate::domain::{Actor, Control, EventKind, Run, StageState};
use crate::orchestrator::Orchestrator;

/// Who answers approval gates while following a run in the terminal.
pub enum Approver {
    /// Approve as this actor after a pause (the demo, `run --yes`).
    Auto { actor: Actor, after: Duration },
    /// Ask on the terminal.
    Prompt { actor: Actor },
    /// Nobody can answer: reject, saying why.
    Reject { why: String },
}

/// Subscribed before the run starts, so that no event is missed.
pub struct Watch {
    events: Box<dyn Subscription>,
    progress: Box<dyn Subscription>,
}

impl Watch {
    pub async fn new(app: &App) -> anyhow::Result<Watch> {
        let group = format!("terminal-{}", uuid::Uuid::now_v7());
        Ok(Watch {
            events: app.bus.subscribe(bus::EVENTS_TOPIC, &group).await?,
            progress: app.bus.subscribe(bus::PROGRESS_TOPIC, &group).await?,
        })
    }
}

struct Line {
    bar: ProgressBar,
    state: StageState,
    started: Option<Instant>,
    elapsed: Option<Duration>,
    note: String,
}

/// Follows a run to its end and returns it as stored.
pub async fn follow(
    app: &App,
    mut watch: Watch,
    run: &Run,
    approver: Approver,
) -> anyhow::Result<Run> {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if tty {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let width = run.plan.iter().map(|p| p.name.len()).max().unwrap_or(10);
    let label = |p: &crate::workflow::PlannedStage| format!("{} ({})", p.name, p.agent);
    let label_width = run.plan.iter().map(|p| label(p).len()).max().unwrap_or(10);
    let style =
        ProgressStyle::with_template(&format!("{{spinner}} {{prefix:<{label_width}}} {{msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut lines: HashMap<String, Line> = HashMap::new();
    for p in &run.plan {
        let bar = multi.add(
            ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(label(p)),
        );
        bar.set_message("pending");
        if tty {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        lines.insert(
            p.name.clone(),
            Line {
                bar,
                state: StageState::Pending,
                started: None,
                elapsed: None,
                note: String::new(),
            },
        );
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let orchestrator = app.orchestrator.clone();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for l in lines.values() { redraw(l); }
            }
            Some(m) = watch.progress.next() => {
                let Ok(p) = serde_json::from_slice::<Progress>(&m.payload) else { continue };
                if p.run_id != run.id { continue; }
                if let Some(l) = lines.get_mut(&p.stage) {
                    l.note = p.message.clone();
                    if !tty && p.kind == bus::ProgressKind::Progress {
                        println!("[{:>6}] {:<width$}  {}", secs(started), p.stage, p.message);
                    }
                    redraw(l);
                }
            }
            Some(m) = watch.events.next() => {
                let Ok(e) = serde_json::from_slice::<RunEvent>(&m.payload) else { continue };
                if e.run_id != run.id { continue; }
                if !tty {
                    let what = match (&e.stage, &e.message) {
                        (Some(s), Some(msg)) => format!("{s:<width$}  {}: {msg}", e.kind),
                        (Some(s), None) => format!("{s:<width$}  {}", e.kind),
                        (None, Some(msg)) => format!("{}: {msg}", e.kind),
                        (None, None) => e.kind.to_string(),
                    };
                    println!("[{:>6}] {what}", secs(started));
                }
                if let (Some(stage), EventKind::Stage(state)) = (&e.stage, e.kind)
                    && let Some(l) = lines.get_mut(stage)
                {
                    if state == StageState::Dispatched && l.started.is_none() {
                        l.started = Some(Instant::now());
                    }
                    if state.is_final() {
                        l.elapsed = l.started.map(|s| s.elapsed());
                        l.bar.finish();
                    }
                    l.state = state;
                    if let Some(m) = &e.message { l.note = m.clone(); }
                    redraw(l);
                }
                if e.kind == EventKind::ApprovalRequested {
                    let stage = e.stage.clone().unwrap_or_default();
                    let asks = Asked { stage: &stage, why: e.message.as_deref() };
                    answer(&orchestrator, run, asks, &approver, &multi, tty).await;
                }
                if e.kind.ends_run() {
                    break;
                }
            }
        }
    }
    for l in lines.values() {
        redraw(l);
        l.bar.finish();
    }
    let _ = multi.clear();
    app.orchestrator
        .run(run.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {} vanished from the store", run.id))
}

fn secs(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

fn redraw(l: &Line) {
    let elapsed = l.elapsed.or_else(|| l.started.map(|s| s.elapsed()));
    let time = elapsed
        .map(|d| format!("{:>6.1}s", d.as_secs_f64()))
        .unwrap_or_else(|| "       ".into());
    let mark = match l.state {
        StageState::Succeeded => "✓",
        StageState::Failed => "✗",
        StageState::Skipped | StageState::Cancelled => "-",
        _ => "",
    };
    l.bar.set_message(format!(
        "{mark:1} {:<10} {time}  {}",
        l.state.as_str(),
        l.note
    ));
}

/// A gate that asks for a person: its stage, and what it asks about (a data-loss gate
/// says what promoting loses).
struct Asked<'a> {
    stage: &'a str,
    why: Option<&'a str>,
}

async fn answer(
    orchestrator: &Orchestrator,
    run: &Run,
    asks: Asked<'_>,
    approver: &Approver,
    multi: &MultiProgress,
    tty: bool,
) {
    let say = |line: String| {
        if tty {
            let _ = multi.println(line);
        } else {
            println!("{line}");
        }
    };
    let stage = asks.stage;
    let why = asks.why.map(|w| format!(" ({w})")).unwrap_or_default();
    let result = match approver {
        Approver::Auto { actor, after } => {
            say(format!(
                "approval requested for `{stage}`{why}; approving as {actor}"
            ));
            // Approve from the side so that progress keeps streaming meanwhile.
            let (o, id, stage, actor, after) = (
                orchestrator.clone(),
                run.id,
                stage.to_string(),
                actor.clone(),
                *after,
            );
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Err(e) = approve_here(&o, id, &stage, &actor).await {
                    eprintln!("approval of `{stage}` not recorded: {e}");
                }
            });
            return;
        }
        Approver::Prompt { actor } => {
            let question = format!(
                "Approve stage `{stage}` of {} {}{why}? [y/N] ",
                run.group, run.action
            );
            let yes = multi
                .suspend(|| {
                    eprint!("{question}");
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map(|_| line.trim().eq_ignore_ascii_case("y"))
                })
                .unwrap_or(false);
            if yes {
                approve_here(orchestrator, run.id, stage, actor).await
            } else {
                let reason = Some("declined at the terminal".into());
                orchestrator
                    .control(run.id, Control::Reject { reason }, actor)
                    .await
            }
        }
        Approver::Reject { why: why_not } => {
            say(format!(
                "approval requested for `{stage}`: rejecting, {}",
                why_not
            ));
            let reason = Some(why_not.clone());
            orchestrator
                .control(run.id, Control::Reject { reason }, &Actor::System)
                .await
        }
    };
    if let Err(e) = result {
        say(format!("approval of `{stage}` not recorded: {e}"));
    }
}

/// Approves as the person at this terminal. A gate that needs other people (four eyes)
/// cannot be passed from here, where no one else can press: the run is ended with why,
/// rather than left waiting for ever.
async fn approve_here(
    orchestrator: &Orchestrator,
    id: crate::domain::RunId,
    stage: &str,
    actor: &Actor,
) -> Result<Run, crate::orchestrator::CommandError> {
    use crate::orchestrator::{CommandError, Refusal};
    let stage = Some(stage.to_string());
    match orchestrator
        .control(id, Control::Approve { stage }, actor)
        .await
    {
        Err(CommandError::Refused(why @ (Refusal::OwnRun(_) | Refusal::AlreadyApproved(_)))) => {
            let reason =
                format!("{why}; approve through `lifeboat serve` (chat or the API) instead");
            let reason = Some(reason);
            orchestrator
                .control(id, Control::Reject { reason }, &Actor::System)
                .await
        }
        other => other,
    }
}

/// Starts a run and follows it to its end in the terminal, printing the summary: the
/// shared body of `lifeboat run` and `lifeboat demo`.
pub async fn run_in_terminal(
    app: &App,
    trigger: crate::trigger::Trigger,
    approver: Approver,
) -> anyhow::Result<Run> {
    let watch = Watch::new(app).await?;
    let run = crate::trigger::start(&app.orchestrator, trigger).await?;
    println!("run {} started\n", run.id);
    let done = follow(app, watch, &run, approver).await?;
    println!("{}", summary(&done));
    match app.orchestrator.recovery(&done).await {
        Ok(Some(r)) => println!("{}", scorecard(&r)),
        Ok(None) => {}
        Err(e) => println!("  (no scorecard: {e})"),
    }
    Ok(done)
}

/// The closing summary: each stage's duration and the total recovery time.
pub fn summary(run: &Run) -> String {
    let width = run
        .plan
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "\n{} {} of `{}` {}{} (run {})\n",
        if run.dry_run { "Dry-run" } else { "Run" },
        run.action,
        run.group,
        run.state,
        run.message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
        run.id
    );
    out.push_str(&format!(
        "  {:<width$}  {:<9} {:<10} {:>8} {:>9}\n",
        "stage", "agent", "state", "attempts", "duration"
    ));
    for (p, s) in run.plan.iter().zip(&run.stages) {
        let d = match (s.started_at, s.finished_at) {
            (Some(a), Some(b)) => clock::short_duration(b - a),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "  {:<width$}  {:<9} {:<10} {:>8} {:>9}\n",
            p.name,
            p.agent,
            s.state.as_str(),
            s.attempts,
            d
        ));
    }
    let reported: Vec<_> = run
        .plan
        .iter()
        .zip(&run.stages)
        .filter_map(|(p, s)| Some((p, s.report.as_ref()?)))
        .collect();
    if !reported.is_empty() {
        let heading = if run.dry_run {
            "what a run would change"
        } else {
            "what changed"
        };
        out.push_str(&format!("  {heading}:\n"));
        for (p, report) in reported {
            out.push_str(&format!("    {}:\n", p.name));
            for check in &report.checks {
                out.push_str(&format!("      {check}\n"));
            }
            for change in &report.changes {
                out.push_str(&format!("      {change}\n"));
            }
        }
    }
    if let Some(end) = run.finished_at {
        out.push_str(&format!(
            "  total recovery time: {}\n",
            clock::short_duration(end - run.created_at)
        ));
    }
    out
}

/// The scorecard under the summary: the critical path, Lifeboat's overhead, the wait on
/// people, and the comparison with the previous run and last drill.
pub fn scorecard(r: &crate::domain::scorecard::Recovery) -> String {
    r.lines().iter().map(|l| format!("  {l}\n")).collect()
}
