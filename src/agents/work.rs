//! One attempt of one stage as an agent sees it: the request, a way to tell people how it
//! goes, and the failure to return when it does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::bus::{self, Bus, Delivery, Progress, ProgressKind, WorkRequest};
use crate::clock::Clock;
use crate::domain::{Change, Check, RecoveryPoint, Report};
use crate::references;
use crate::workflow::kinds::{self, SpecError};

/// Shorter values read into a spec are not blanked out of messages: a one-letter secret
/// would blank out every word it is in, and is no secret.
const MIN_SCRUBBED: usize = 4;

/// Whether any string of a spec may hold a reference: most hold none, and are read as
/// they are, without a copy.
fn references_in(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains("${"),
        serde_json::Value::Array(items) => items.iter().any(references_in),
        serde_json::Value::Object(fields) => fields.values().any(references_in),
        _ => false,
    }
}

/// Reads the references in every string of a spec, in place, gathering the values read.
fn resolve(v: &mut serde_json::Value, at: &str, read: &mut Vec<String>) -> Result<(), Failure> {
    match v {
        serde_json::Value::String(s) if s.contains("${") => {
            let (resolved, values) =
                references::resolve_in_spec(at, s).map_err(Failure::permanent)?;
            *s = resolved;
            read.extend(values);
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve(item, &format!("{at}[{i}]"), read)?;
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, item) in fields.iter_mut() {
                resolve(item, &format!("{at}.{k}"), read)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub retryable: bool,
    pub message: String,
    /// Not a failure: the agent stopped short for a person to decide (a data-loss gate).
    pub held: bool,
}

impl Failure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Failure {
            retryable: true,
            message: message.into(),
            held: false,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Failure {
            retryable: false,
            message: message.into(),
            held: false,
        }
    }
    /// Stops the stage at a gate: `message` says what a person decides on.
    pub fn held(message: impl Into<String>) -> Self {
        Failure {
            retryable: false,
            message: message.into(),
            held: true,
        }
    }

    /// A spec the agent cannot run: retrying will not change it.
    pub fn bad_spec(e: SpecError) -> Self {
        let field = e.field();
        Failure::permanent(if field.is_empty() {
            format!("bad spec: {}", e.message)
        } else {
            format!("bad spec: {field}: {}", e.message)
        })
    }
}

pub struct Work {
    pub request: WorkRequest,
    /// Cancelled once the attempt is over, whether it ended or was stopped (lease lost,
    /// deadline, shutdown): for work an agent handed to tasks of its own.
    pub cancel: CancellationToken,
    bus: Arc<dyn Bus>,
    instance: String,
    clock: Clock,
    /// Progress is queued in order and never waited for while the work runs, so that a
    /// slow or absent broker does not hold the work up; `flush` waits for it at the end.
    sent: Mutex<Vec<Delivery>>,
    /// The attempt's start, not told yet: it goes once the work lasts or has something to
    /// say first. Work that ends at once never tells it; its end does, and the lease shows
    /// when it began: one message, and one orchestrator commit, fewer for each such stage.
    untold_start: Mutex<Option<Progress>>,
    report: Mutex<Report>,
    /// Values the spec's `${env:…}` and `${file:…}` were read into: what the agent says
    /// and reports has them blanked out, so a secret reaches neither the bus nor the store.
    secrets: Mutex<Vec<String>>,
}

impl Work {
    pub fn new(
        request: WorkRequest,
        cancel: CancellationToken,
        bus: Arc<dyn Bus>,
        instance: String,
        clock: Clock,
    ) -> Self {
        Work {
            request,
            cancel,
            bus,
            instance,
            clock,
            sent: Mutex::new(Vec::new()),
            untold_start: Mutex::new(None),
            report: Mutex::new(Report::default()),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Publishes a progress line for the incident channel and the terminal.
    pub async fn say(&self, message: impl Into<String>) {
        self.publish(ProgressKind::Progress, message.into(), None);
    }

    /// Records a precondition and whether it holds, and tells people.
    pub async fn check(&self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        let check = Check {
            name: self.scrub(&name.into()),
            ok,
            detail: self.scrub(&detail.into()),
        };
        self.say(check.to_string()).await;
        self.lock_report().checks.push(check);
    }

    /// Records a change: made, or in a dry run, planned.
    pub async fn change(
        &self,
        target: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
    ) {
        let change = Change {
            target: self.scrub(&target.into()),
            from: self.scrub(&from.into()),
            to: self.scrub(&to.into()),
        };
        let verb = if self.request.dry_run {
            "would change"
        } else {
            "changing"
        };
        self.say(format!("{verb} {change}")).await;
        self.lock_report().changes.push(change);
    }

    /// Records how far the replica was behind, measured before a promote.
    pub fn replica_lag(&self, seconds: f64) {
        self.lock_report().lag_s = Some(seconds);
    }

    /// The attempt waited `waited` for a budget: that goes in its report, and its work
    /// gets the stage's whole timeout from now.
    pub fn waited_for_budget(&mut self, waited: Duration) {
        self.lock_report().budget_wait_s = Some(waited.as_secs_f64());
        if self.request.timeout_ms > 0 {
            let timeout = Duration::from_millis(self.request.timeout_ms);
            self.request.deadline = crate::clock::add(self.clock.now_ms(), timeout);
        }
    }

    /// Records the recovery point measured before a promote.
    pub fn recovery_point(&self, rpo: RecoveryPoint) {
        self.lock_report().rpo = Some(rpo);
    }

    /// The checks and changes recorded so far.
    pub fn report(&self) -> Option<Report> {
        let report = self.lock_report().clone();
        (!report.is_empty()).then_some(report)
    }

    fn lock_report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the attempt has before its deadline.
    pub fn time_left(&self) -> Duration {
        Duration::from_millis((self.request.deadline - self.clock.now_ms()).max(0) as u64)
    }

    /// The spec, as the agent reads it, with its `${env:NAME}` and `${file:PATH}` read now
    /// (the plan, the bus and the store hold only the references); one it cannot read
    /// fails the attempt for good.
    pub fn spec<T: for<'de> serde::Deserialize<'de>>(&self) -> Result<T, Failure> {
        if !references_in(&self.request.spec) {
            return kinds::parse(&self.request.spec).map_err(Failure::bad_spec);
        }
        let mut spec = self.request.spec.clone();
        let mut read = Vec::new();
        resolve(&mut spec, "spec", &mut read)?;
        {
            let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            secrets.extend(
                read.iter()
                    .filter(|s| s.len() >= MIN_SCRUBBED)
                    .flat_map(|s| references::disguises(s)),
            );
            // Longest first, so that no form is half blanked by a shorter one inside it.
            secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            secrets.dedup();
        }
        kinds::parse(&spec)
            .map_err(Failure::bad_spec)
            .map_err(|f| Failure {
                message: self.scrub(&f.message),
                ..f
            })
    }

    /// `text` with every secret the spec was read into blanked out, in each of its forms.
    pub fn scrub(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for form in secrets.iter() {
            out = out.replace(form.as_str(), "***");
        }
        out
    }

    /// The attempt began: said by `tell_start`, or by whatever the work says first.
    pub(crate) fn begin(&self, message: String) {
        let start = self.progress(ProgressKind::Accepted, message, None);
        *self.lock_start() = Some(start);
    }

    /// Tells the attempt's start, unless it was told already.
    pub(crate) fn tell_start(&self) {
        let start = self.lock_start().take();
        if let Some(start) = start {
            self.send(&start);
        }
    }

    fn lock_start(&self) -> std::sync::MutexGuard<'_, Option<Progress>> {
        self.untold_start.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a progress message; `flush` waits until the bus has them all. A start not
    /// told yet goes before anything else the work says, and not at all once it ends.
    pub(crate) fn publish(&self, kind: ProgressKind, message: String, retryable: Option<bool>) {
        match kind {
            ProgressKind::Succeeded | ProgressKind::Failed | ProgressKind::Held => {
                self.lock_start().take();
            }
            _ => self.tell_start(),
        }
        let progress = self.progress(kind, message, retryable);
        self.send(&progress);
    }

    fn progress(&self, kind: ProgressKind, message: String, retryable: Option<bool>) -> Progress {
        let r = &self.request;
        Progress {
            v: bus::VERSION,
            request_id: r.id.clone(),
            run_id: r.run_id,
            stage: r.stage.clone(),
            attempt: r.attempt,
            kind,
            message: self.scrub(&message),
            retryable,
            at: self.clock.now_ms(),
            agent_instance: self.instance.clone(),
        }
    }

    fn send(&self, progress: &Progress) {
        match bus::Envelope::progress(progress) {
            Ok(envelope) => {
                let delivery = self.bus.enqueue(
                    &envelope.topic,
                    &envelope.key,
                    envelope.payload.into_bytes(),
                );
                self.sent
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(delivery);
            }
            Err(e) => tracing::warn!(error = %e, "Could not encode progress."),
        }
    }

    /// Waits, at most `limit`, until the bus has every progress message of this attempt;
    /// what is left still goes, for as long as the process runs.
    pub(crate) async fn flush(self, limit: Duration) {
        let sent = self.sent.into_inner().unwrap_or_else(|e| e.into_inner());
        let all = futures_util::future::join_all(sent);
        match tokio::time::timeout(limit, all).await {
            Ok(results) => {
                for e in results.into_iter().filter_map(Result::err) {
                    tracing::warn!(error = %e, request = %self.request.id, "Could not publish progress.");
                }
            }
            Err(_) => {
                tracing::warn!(request = %self.request.id, "Progress not yet delivered; moving on.")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use serde_json::Value;

    use super::*;
    use crate::bus::memory::MemoryBus;
    use crate::domain::RunId;

    fn work_on(spec: Value) -> Work {
        work_on_bus(spec, Arc::new(MemoryBus::new()))
    }

    fn work_on_bus(spec: Value, bus: Arc<MemoryBus>) -> Work {
        let request = WorkRequest {
            v: bus::VERSION,
            id: "run/stage/1".into(),
            run_id: RunId::default(),
            stage: "stage".into(),
            agent: "exec".into(),
            attempt: 1,
            spec,
            resource: "exec:stage".into(),
            deadline: i64::MAX,
            dry_run: false,
            accept_data_loss: false,
            budgets: Vec::new(),
            timeout_ms: 0,
        };
        Work::new(
            request,
            CancellationToken::new(),
            bus,
            "test".into(),
            Clock::system(),
        )
    }

    /// Work that ends at once says only how it ended; work that says something, or lasts
    /// until its start is told, tells the start first, and once.
    #[tokio::test]
    async fn a_start_goes_before_anything_else_the_work_says_and_not_after_its_end() {
        let bus = Arc::new(MemoryBus::new());
        let mut heard = bus
            .subscribe(bus::PROGRESS_TOPIC, "t")
            .await
            .expect("subscribe");
        let at_once = work_on_bus(Value::Null, bus.clone());
        at_once.begin("started".into());
        at_once.publish(ProgressKind::Succeeded, "done".into(), None);
        at_once.tell_start();
        let talker = work_on_bus(Value::Null, bus.clone());
        talker.begin("started".into());
        talker.say("checking").await;
        talker.say("still checking").await;
        talker.publish(ProgressKind::Succeeded, "done".into(), None);
        let slow = work_on_bus(Value::Null, bus.clone());
        slow.begin("started".into());
        slow.tell_start();
        slow.tell_start();
        slow.publish(ProgressKind::Failed, "boom".into(), Some(true));
        let mut kinds = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), heard.next()).await
        {
            let p: Progress = serde_json::from_slice(&m.payload).expect("progress");
            kinds.push(p.kind);
        }
        use ProgressKind::{Accepted, Failed, Progress as Said, Succeeded};
        assert_eq!(
            kinds,
            [Succeeded, Accepted, Said, Said, Succeeded, Accepted, Failed]
        );
    }

    /// A library that prints a URL encodes the password in it partly, a JSON error escapes
    /// its quotes: either way the secret is blanked, in messages and in the report.
    #[tokio::test]
    async fn a_secret_is_blanked_in_every_form_it_is_repeated_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "p@ss \"w!rd\"/9\n").expect("write");
        let work = work_on(serde_json::json!({
            "url": format!("postgres://u:${{file:{}}}@db/app", file.display()),
        }));
        let spec: Value = work.spec().expect("the spec is read");
        assert_eq!(spec["url"], "postgres://u:p%40ss%20%22w%21rd%22%2F9@db/app");
        for said in [
            r#"p@ss "w!rd"/9"#,
            r#"{"password":"p@ss \"w!rd\"/9"}"#,
            "postgres://u:p%40ss%20%22w%21rd%22%2F9@db/app",
            "postgres://u:p%40ss%20%22w!rd%22%2F9@db/app",
            "password=p%40ss+%22w%21rd%22%2F9",
        ] {
            let scrubbed = work.scrub(said);
            assert!(scrubbed.contains("***"), "{said} → {scrubbed}");
            assert!(
                !scrubbed.contains("w!rd") && !scrubbed.contains("w%21rd"),
                "{said} → {scrubbed}"
            );
        }
        work.check("login", false, "refused p@ss \"w!rd\"/9").await;
        work.change("db", "p%40ss%20%22w%21rd%22%2F9", "primary")
            .await;
        let report = work.report().expect("a report");
        assert_eq!(report.checks[0].detail, "refused ***");
        assert_eq!(report.changes[0].from, "***");
    }
}
