//! `exec`: runs a command for a customised stage: `{ command: [argv…], env: {…}, workdir }`.
//! Exit 0 is success; a non-zero exit is retryable; a command that cannot start at all is
//! permanent. The command starts with a cleared environment: it sees `PATH`, `HOME`,
//! `LANG` and `TZ`, the spec's `env`, and `LIFEBOAT_RUN_ID`, `LIFEBOAT_STAGE`,
//! `LIFEBOAT_ATTEMPT` and `LIFEBOAT_DRY_RUN`, never the agent's own secrets (chat tokens,
//! API tokens, the database URL, cloud keys). Of what it prints, the last 64 KiB of each
//! stream are kept, so a command printing gigabytes does not grow the agent. It is killed
//! if Lifeboat dies, so an orphan never finishes a stage
//! the orchestrator will run again. It runs in a process group of its own, and an attempt
//! stopped early (a timeout, a lost lease, a stop) kills the whole group: what a shell
//! started in the background would otherwise finish the work later.

use std::collections::BTreeMap;
use std::process::Stdio;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::process::Command;

use super::agent::{Agent, Env};
use super::work::{Failure, Work};
use crate::workflow::{SpecError, Targets};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
}

impl ExecSpec {
    fn validate(&self) -> Result<(), SpecError> {
        match self.command.first() {
            None => Err(SpecError::at(&["command"], "command must name a program")),
            Some(p) if p.is_empty() => {
                Err(SpecError::at(&["command"], "command must name a program"))
            }
            Some(_) => Ok(()),
        }
    }
}

pub struct Exec;

/// The variables of the agent's own environment a command may see.
const PASSED: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

/// How much of each stream is kept: the last bytes, where the error is.
const KEPT: usize = 64 * 1024;

/// The last `KEPT` bytes a stream wrote, and how many before them were dropped.
#[derive(Default)]
struct Output {
    kept: Vec<u8>,
    dropped: u64,
}

impl Output {
    async fn read(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Output {
        use tokio::io::AsyncReadExt;
        let mut out = Output::default();
        let Some(mut stream) = stream else {
            return out;
        };
        let mut buf = vec![0u8; 16 * 1024];
        // A read error ends the stream as an end of file would: the exit status decides.
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            out.kept.extend_from_slice(&buf[..n]);
            // Trimmed in large steps, so that the copy costs little per byte.
            if out.kept.len() > 2 * KEPT {
                out.trim();
            }
        }
        out.trim();
        out
    }

    fn trim(&mut self) {
        if self.kept.len() > KEPT {
            let cut = self.kept.len() - KEPT;
            self.kept.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// The last lines, and what was dropped before them.
    fn tail(&self) -> String {
        let text = String::from_utf8_lossy(&self.kept);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(3);
        let said = lines[start..].join(" | ");
        if self.dropped == 0 {
            said
        } else {
            format!(
                "{said} ({} bytes of output before the last 64 KiB dropped)",
                self.dropped
            )
        }
    }
}

#[async_trait]
impl Agent for Exec {
    const KIND: &'static str = "exec";
    type Spec = ExecSpec;

    fn check(spec: &ExecSpec, _: &Targets) -> Result<(), SpecError> {
        spec.validate()
    }

    fn build(_: &Env) -> anyhow::Result<Self> {
        Ok(Exec)
    }

    async fn run(&self, spec: ExecSpec, work: &Work) -> Result<String, Failure> {
        let program = spec
            .command
            .first()
            .ok_or_else(|| Failure::permanent("bad spec: command: command must name a program"))?;
        if work.request.dry_run {
            return match which(program, spec.workdir.as_deref()) {
                true => Ok(format!("dry run: would run {}", shell_words(&spec.command))),
                false => Err(Failure::permanent(format!(
                    "dry run: `{program}` not found"
                ))),
            };
        }
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for name in PASSED {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.args(&spec.command[1..])
            .envs(&spec.env)
            .env("LIFEBOAT_RUN_ID", work.request.run_id.to_string())
            .env("LIFEBOAT_STAGE", &work.request.stage)
            .env("LIFEBOAT_ATTEMPT", work.request.attempt.to_string())
            .env("LIFEBOAT_DRY_RUN", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &spec.workdir {
            cmd.current_dir(dir);
        }
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::permanent(format!("cannot start `{program}`: {e}")))?;
        let mut group = GroupKill(child.id());
        work.say(format!("running {}", shell_words(&spec.command)))
            .await;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let (stdout, stderr, status) =
            tokio::join!(Output::read(stdout), Output::read(stderr), child.wait());
        let status = status
            .map_err(|e| Failure::retryable(format!("waiting for `{program}` failed: {e}")))?;
        // Ended by itself: what it left running in the background is its own business.
        group.0 = None;
        if status.success() {
            let said = stdout.tail();
            Ok(if said.is_empty() {
                "exit 0".into()
            } else {
                format!("exit 0: {said}")
            })
        } else {
            let code = status.code().map_or_else(
                || "killed by a signal".to_string(),
                |c| format!("exit code {c}"),
            );
            let said = stderr.tail();
            Err(Failure::retryable(if said.is_empty() {
                code
            } else {
                format!("{code}: {said}")
            }))
        }
    }
}

/// Kills a command's process group when dropped while armed: the work was stopped early.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|id| libc::pid_t::try_from(id).ok()) {
            // SAFETY: kill(2) takes plain integers; a group already gone yields ESRCH.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Asks the kernel to kill the child when the thread that spawned it (a runtime worker,
/// which lives as long as the process) exits.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn which(program: &str, workdir: Option<&str>) -> bool {
    if program.contains('/') {
        let path = match workdir {
            Some(d) if !program.starts_with('/') => std::path::Path::new(d).join(program),
            _ => std::path::PathBuf::from(program),
        };
        return path.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
