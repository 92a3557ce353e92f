//! A service a stand-in kills the moment its platform has acted: the window between a
//! platform's side effect and the store's record of it, which a crash-safe notifier must
//! survive without making anything twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Proc;

/// What a stand-in calls instead of answering.
pub type Crash = Arc<dyn Fn() + Send + Sync>;

/// A stand-in's crash script: the calls (each its stand-in's name for it) after whose
/// effect it crashes the caller instead of answering, each taken once.
#[derive(Clone, Default)]
pub struct CrashAfter {
    pub calls: Vec<String>,
    pub crash: Option<Crash>,
}

impl CrashAfter {
    pub fn new(calls: &[&str], crash: Crash) -> CrashAfter {
        CrashAfter {
            calls: calls.iter().map(|c| c.to_string()).collect(),
            crash: Some(crash),
        }
    }

    /// The crash to make instead of answering `call`, if the script holds it.
    pub fn take(&mut self, call: &str) -> Option<Crash> {
        let i = self.calls.iter().position(|c| c == call)?;
        self.calls.remove(i);
        self.crash.clone()
    }
}

/// The service the stand-in kills: whichever was started last.
#[derive(Clone, Default)]
pub struct Victim(Arc<Mutex<Option<u32>>>);

impl Victim {
    /// `proc` is the one to kill from now on.
    pub fn is(&self, proc: &Proc) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(proc.0.id());
    }

    /// A `kill -9` of the victim of the moment.
    pub fn crash(&self) -> Crash {
        let pid = self.0.clone();
        Arc::new(move || {
            if let Some(pid) = *pid.lock().unwrap_or_else(|e| e.into_inner()) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        })
    }
}

/// Waits for a process the stand-in kills. The stand-in answers on the test's runtime, so
/// the wait must not block it.
pub async fn died(proc: &mut Proc) {
    super::until("the service to die", Duration::from_secs(60), async || {
        proc.0.try_wait().ok().flatten().map(drop)
    })
    .await;
}
