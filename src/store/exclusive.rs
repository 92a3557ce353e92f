//! One embedded process per SQLite store. An embedded process runs the agents of its runs
//! itself and, at start-up, takes back the leases its previous incarnation left; a second
//! process on the same file would take back the first one's leases mid-stage and run those
//! stages again. So an embedded process holds an OS lock on a file beside the database for
//! its whole life. The kernel drops the lock when the process ends, however it ends
//! (`kill -9` included), so a crash never leaves the store locked.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds a store: written into the lock file, for the message a second process shows.
#[derive(Debug, Serialize, Deserialize)]
pub struct Holder {
    pub command: String,
    pub pid: u32,
    pub host: String,
    /// RFC 3339, UTC.
    pub started: String,
    /// Where its HTTP API answers, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_message(.database, .holder.as_deref()))]
    Held {
        database: PathBuf,
        holder: Option<Box<Holder>>,
    },
    #[error("cannot lock the store {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl LockError {
    /// The running service's API, when the holder serves one: where `--server` should point.
    pub fn server(&self) -> Option<String> {
        match self {
            LockError::Held {
                holder: Some(holder),
                ..
            } => holder.listen.as_ref().map(|l| format!("http://{l}")),
            _ => None,
        }
    }
}

fn held_message(database: &Path, holder: Option<&Holder>) -> String {
    let who = match holder {
        Some(h) => format!(
            "`{}` (pid {} on {}, started {})",
            h.command, h.pid, h.host, h.started
        ),
        None => "another Lifeboat process".to_string(),
    };
    let drive = match holder.and_then(|h| h.listen.as_deref()) {
        Some(listen) => format!(
            "drive the running service instead: `lifeboat run GROUP --server http://{listen}` (or the API at http://{listen}/api/v1)"
        ),
        None => "drive the running service through its API (`lifeboat run GROUP --server URL`)"
            .to_string(),
    };
    format!(
        "the store {} is in use by {who}. Only one embedded process may use a store: a second \
         one would take over the first one's running stages. Nothing was changed. Stop that \
         process, use another database (--database or LIFEBOAT_DATABASE_URL), or {drive}",
        database.display()
    )
}

/// The database file a SQLite URL names; `None` for an in-memory database.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory"))
        .then(|| PathBuf::from(path))
}

impl StoreLock {
    /// Takes the lock of the SQLite store at `url`, writing `holder` into it. `Ok(None)`:
    /// the URL names no file, so there is nothing another process could share.
    pub fn take(url: &str, holder: &Holder) -> Result<Option<StoreLock>, LockError> {
        let Some(database) = sqlite_file(url) else {
            return Ok(None);
        };
        let path = lock_path(&database);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Readable by this user alone: whoever can open it can lock it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .map(Box::new);
                return Err(LockError::Held { database, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut lock = StoreLock {
            file,
            path: path.clone(),
        };
        lock.write(holder).map_err(io)?;
        Ok(Some(lock))
    }

    /// Says who holds the store, for the next process that asks.
    pub fn write(&mut self, holder: &Holder) -> std::io::Result<()> {
        let text = serde_json::to_string(holder).unwrap_or_default();
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

/// `DATABASE.lock` in the database's directory, resolved: a symlink or another spelling
/// of the same directory must find the same lock.
fn lock_path(database: &Path) -> PathBuf {
    let dir = match database.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let file = database
        .file_name()
        .map(|f| f.to_os_string())
        .unwrap_or_default();
    // The file itself may be a symlink to a database elsewhere.
    let target = std::fs::canonicalize(dir.join(&file)).unwrap_or_else(|_| dir.join(&file));
    let mut name = target.into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

impl Holder {
    /// This process, as it was started, on `host`.
    pub fn this_process(host: String, listen: Option<String>) -> Holder {
        let args: Vec<String> = std::env::args().collect();
        let program = args
            .first()
            .and_then(|p| Path::new(p).file_name())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lifeboat".into());
        let command = std::iter::once(program)
            .chain(args.into_iter().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
        Holder {
            command,
            pid: std::process::id(),
            host,
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            listen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://lifeboat.db"),
            Some(PathBuf::from("lifeboat.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/lb.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/lb.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/lifeboat"), None);
    }

    #[test]
    fn a_second_holder_is_told_who_holds_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("x.db").display());
        let first = Holder {
            command: "lifeboat serve".into(),
            pid: 4242,
            host: "dr-host".into(),
            started: "2026-12-05T20:00:00Z".into(),
            listen: Some("127.0.0.1:8080".into()),
        };
        let held = StoreLock::take(&url, &first).expect("the first takes it");
        let second = StoreLock::take(&url, &Holder::this_process("here".into(), None));
        let Err(e) = second else {
            panic!("a second lock on the same store");
        };
        let said = e.to_string();
        for part in [
            "lifeboat serve",
            "pid 4242",
            "dr-host",
            "2026-12-05T20:00:00Z",
            "--server http://127.0.0.1:8080",
            "--database",
        ] {
            assert!(said.contains(part), "{part} missing from: {said}");
        }
        assert_eq!(e.server().as_deref(), Some("http://127.0.0.1:8080"));
        drop(held);
        assert!(StoreLock::take(&url, &Holder::this_process("here".into(), None)).is_ok());
    }
}
