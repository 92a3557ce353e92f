//! The PostgreSQL server's own host, for what only works there: stopping and starting the
//! server, `pg_controldata`, `pg_rewind` and `pg_basebackup` on its data directory. The
//! agent that serves such a target runs beside the server. PostgreSQL's tools refuse to
//! run as root, so an agent running as root runs them as `os_user` (`postgres` unless the
//! target says otherwise).

use std::path::PathBuf;
use std::process::Stdio;

use crate::agents::work::{Failure, Work};

/// What targets.yaml says about a server's host.
#[derive(Clone, Debug, Default)]
pub struct HostFields {
    /// The server's data directory.
    pub data_dir: Option<PathBuf>,
    /// Where `pg_ctl`, `pg_rewind`, `pg_basebackup` and `pg_controldata` are; `PATH` when
    /// absent.
    pub bin_dir: Option<PathBuf>,
    /// Who runs them when the agent runs as root.
    pub os_user: Option<String>,
    /// How to start the server: a command's argv. `pg_ctl -D DATA_DIR -w start` (its log
    /// beside the data directory) when absent.
    pub start: Option<Vec<String>>,
    /// How to stop it: `pg_ctl -D DATA_DIR -m fast -w stop` when absent.
    pub stop: Option<Vec<String>>,
}

impl HostFields {
    /// The first thing wrong with these fields, and the field it is in.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(dir) = &self.data_dir
            && !dir.is_absolute()
        {
            return Some((
                "data_dir",
                format!("{} is not an absolute path", dir.display()),
            ));
        }
        if let Some(dir) = &self.bin_dir
            && !dir.is_absolute()
        {
            return Some((
                "bin_dir",
                format!("{} is not an absolute path", dir.display()),
            ));
        }
        for (field, argv) in [("start", &self.start), ("stop", &self.stop)] {
            if argv.as_ref().is_some_and(|a| a.is_empty()) {
                return Some((field, "an empty command".into()));
            }
        }
        None
    }
}

/// The server's host, as this agent reaches it.
pub struct Host {
    name: String,
    data_dir: PathBuf,
    fields: HostFields,
    /// `runuser -u USER --` before each command, when running as root.
    as_user: Option<String>,
}

impl Host {
    /// The host of database `name`; a target without `data_dir`, or whose data directory
    /// is not on this host, cannot be re-protected from here.
    pub fn of(name: &str, fields: &HostFields) -> Result<Host, Failure> {
        let Some(data_dir) = fields.data_dir.clone() else {
            return Err(Failure::permanent(format!(
                "database `{name}`: re-protect works on the server's own host, and needs `data_dir` (and the agent beside the server) in targets.yaml"
            )));
        };
        if !data_dir.exists() {
            return Err(Failure::permanent(format!(
                "database `{name}`: no data directory at {} on this host: the agent that serves it must run beside the server",
                data_dir.display()
            )));
        }
        let as_user =
            running_as_root().then(|| fields.os_user.clone().unwrap_or_else(|| "postgres".into()));
        Ok(Host {
            name: name.to_string(),
            data_dir,
            fields: fields.clone(),
            as_user,
        })
    }

    fn tool(&self, name: &str) -> String {
        match &self.fields.bin_dir {
            Some(dir) => dir.join(name).display().to_string(),
            None => name.to_string(),
        }
    }

    fn data(&self) -> String {
        self.data_dir.display().to_string()
    }

    /// Whether the server on this data directory runs (`pg_ctl status`).
    pub async fn running(&self, work: &Work) -> Result<bool, Failure> {
        let argv = [
            self.tool("pg_ctl"),
            "-D".into(),
            self.data(),
            "status".into(),
        ];
        let (code, _) = self.command("pg_ctl status", &argv, work).await?;
        Ok(code == 0)
    }

    /// What `pg_controldata` says of the data directory: whether `pg_rewind` may run on it
    /// (data checksums, or `wal_log_hints`), and why.
    pub async fn rewindable(&self, work: &Work) -> Result<(bool, String), Failure> {
        let argv = [self.tool("pg_controldata"), self.data()];
        let out = self.succeed("pg_controldata", &argv, work).await?;
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim_start_matches(':').trim().to_string())
        };
        let checksums = field("Data page checksum version").is_some_and(|v| v != "0");
        let hints = field("wal_log_hints setting").is_some_and(|v| v == "on");
        Ok(match (checksums, hints) {
            (true, _) => (true, "data checksums are on".into()),
            (_, true) => (true, "wal_log_hints is on".into()),
            _ => (
                false,
                "neither wal_log_hints nor data checksums is on, so pg_rewind cannot run".into(),
            ),
        })
    }

    pub async fn stop(&self, work: &Work) -> Result<(), Failure> {
        let argv = match &self.fields.stop {
            Some(argv) => argv.clone(),
            None => vec![
                self.tool("pg_ctl"),
                "-D".into(),
                self.data(),
                "-m".into(),
                "fast".into(),
                "-w".into(),
                "stop".into(),
            ],
        };
        self.succeed("stopping the server", &argv, work)
            .await
            .map(drop)
    }

    pub async fn start(&self, work: &Work) -> Result<(), Failure> {
        let argv = match &self.fields.start {
            Some(argv) => argv.clone(),
            None => vec![
                self.tool("pg_ctl"),
                "-D".into(),
                self.data(),
                "-l".into(),
                format!("{}.lifeboat.log", self.data()),
                "-w".into(),
                "start".into(),
            ],
        };
        self.succeed("starting the server", &argv, work)
            .await
            .map(drop)
    }

    /// `pg_rewind` from `source_url`, writing `standby.signal` and `primary_conninfo`.
    pub async fn rewind(&self, source_url: &str, work: &Work) -> Result<(), Failure> {
        let argv = [
            self.tool("pg_rewind"),
            "-D".into(),
            self.data(),
            format!("--source-server={source_url}"),
            "--write-recovery-conf".into(),
        ];
        self.succeed("pg_rewind", &argv, work).await?;
        self.standby_signalled()
    }

    /// The server will start as a standby: `standby.signal` is there. Started without it,
    /// the old writer would come back as a writer.
    pub fn standby_signalled(&self) -> Result<(), Failure> {
        if self.data_dir.join("standby.signal").exists() {
            return Ok(());
        }
        Err(Failure::permanent(format!(
            "database `{}`: no standby.signal in {} after re-protect; not starting it, since it would start as a writer",
            self.name,
            self.data_dir.display()
        )))
    }

    /// A fresh copy of `source_url` by `pg_basebackup`, in place of the data directory,
    /// which is kept beside it (renamed) rather than deleted: it holds the writes the
    /// failover did not carry over. The path it was moved to.
    pub async fn clone_from(&self, source_url: &str, work: &Work) -> Result<PathBuf, Failure> {
        let stamp = crate::clock::unix_seconds();
        let mut kept = self.data_dir.clone().into_os_string();
        kept.push(format!(".before-reprotect-{stamp}"));
        let kept = PathBuf::from(kept);
        tokio::fs::rename(&self.data_dir, &kept)
            .await
            .map_err(|e| {
                Failure::permanent(format!(
                    "database `{}`: cannot move {} aside: {e}",
                    self.name,
                    self.data_dir.display()
                ))
            })?;
        let argv = [
            self.tool("pg_basebackup"),
            "-D".into(),
            self.data(),
            "-d".into(),
            source_url.to_string(),
            "-R".into(),
            "-X".into(),
            "stream".into(),
        ];
        if let Err(f) = self
            .succeed("pg_basebackup", &argv, work)
            .await
            .and_then(|_| self.standby_signalled())
        {
            // Put the old directory back, so that a retry starts where this one did.
            let _ = tokio::fs::remove_dir_all(&self.data_dir).await;
            let _ = tokio::fs::rename(&kept, &self.data_dir).await;
            return Err(f);
        }
        Ok(kept)
    }

    /// Runs `argv` (as `os_user` when running as root); its output, or a failure that
    /// says what ran and the end of what it said.
    async fn succeed(&self, what: &str, argv: &[String], work: &Work) -> Result<String, Failure> {
        let (code, out) = self.command(what, argv, work).await?;
        if code == 0 {
            return Ok(out);
        }
        let tail: Vec<&str> = out.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(Failure::retryable(format!(
            "database `{}`: {what} exited with {code}: {}",
            self.name,
            tail.join(" / ")
        )))
    }

    /// Runs `argv`: its exit code and its output (stdout and stderr together). Output goes
    /// to a file, not a pipe: a server started by the command keeps what it inherited open.
    async fn command(
        &self,
        what: &str,
        argv: &[String],
        work: &Work,
    ) -> Result<(i32, String), Failure> {
        let mut full: Vec<String> = Vec::new();
        if let Some(user) = &self.as_user {
            full.extend(["runuser".into(), "-u".into(), user.clone(), "--".into()]);
        }
        full.extend(argv.iter().cloned());
        let Some((program, args)) = full.split_first() else {
            return Err(Failure::permanent(format!("{what}: an empty command")));
        };
        let log = tempfile_path();
        let file = std::fs::File::create(&log)
            .map_err(|e| Failure::retryable(format!("{what}: cannot capture its output: {e}")))?;
        let err = file
            .try_clone()
            .map_err(|e| Failure::retryable(format!("{what}: cannot capture its output: {e}")))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            Failure::permanent(format!(
                "database `{}`: cannot run {program}: {e}",
                self.name
            ))
        })?;
        let status = match tokio::time::timeout(work.time_left(), child.wait_with_output()).await {
            Ok(Ok(out)) => out.status,
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&log);
                return Err(Failure::retryable(format!("{what}: {e}")));
            }
            Err(_) => {
                let _ = std::fs::remove_file(&log);
                return Err(Failure::retryable(format!(
                    "{what}: the attempt's time ran out"
                )));
            }
        };
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        let code = status.code().unwrap_or(-1);
        work.say(format!("{what}: exit {code}")).await;
        Ok((code, out))
    }
}

/// A file of this process's own for a command's output.
fn tempfile_path() -> PathBuf {
    std::env::temp_dir().join(format!(
        "lifeboat-{}-{}.out",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ))
}

/// Whether this process runs as root: `/proc/self` belongs to the effective user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
