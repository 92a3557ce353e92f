//! Services a fault test owns alone, so that it can stop and start them: a PostgreSQL
//! cluster of its own (Debian's binaries) and a Kafka-protocol broker of its own (tansu,
//! keeping its data in an S3 bucket on the test S3 server, so that a restart keeps topics,
//! messages and offsets as a Kafka broker's disk would).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Proc, free_port, required, until};

/// Runs a command to completion, as the `postgres` user when this process is root
/// (PostgreSQL refuses to run as root).
fn run(as_postgres: bool, program: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Debian's PostgreSQL server binaries (`/usr/lib/postgresql/N/bin`), newest first.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// A new cluster, started; `None` (skip) when the server binaries are not installed.
    pub fn start() -> Option<PrivatePostgres> {
        let Some(bin) = postgres_bin() else {
            required(
                "PostgreSQL server binaries (/usr/lib/postgresql/N/bin; scripts/postgres.sh installs them)",
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let as_postgres = is_root();
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let data_arg = data.to_str().expect("a UTF-8 path");
        let init = run(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                data_arg,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        pg.start_again();
        Some(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Turns TLS on with this certificate and key, and from then on takes TCP connections
    /// only over TLS and with `password` for the `postgres` role.
    pub async fn require_tls(&self, cert: &Path, key: &Path, password: &str) {
        use sqlx::Connection;
        let data = self.dir.path().join("data");
        let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
        std::fs::copy(cert, &cert_file).expect("copy the certificate");
        std::fs::copy(key, &key_file).expect("copy the key");
        let owner = self.as_postgres.then_some("postgres");
        super::kafka_secure::protect_key(&cert_file, owner);
        super::kafka_secure::protect_key(&key_file, owner);
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 0.0.0.0/0 reject\n",
        )
        .expect("write pg_hba.conf");
        let mut admin = sqlx::PgConnection::connect(&self.url())
            .await
            .expect("connect as the superuser");
        for sql in [
            format!("ALTER ROLE postgres PASSWORD '{password}'"),
            format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert_file.display()),
            format!("ALTER SYSTEM SET ssl_key_file = '{}'", key_file.display()),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            sqlx::query(&sql)
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let _ = admin.close().await;
    }

    /// A streaming replica of `primary`, made with `pg_basebackup -R` and started.
    pub fn replica_of(primary: &PrivatePostgres) -> PrivatePostgres {
        let dir = tempfile::tempdir().expect("tempdir");
        if primary.as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(chown.success(), "chown the replica directory to postgres");
        }
        let data = dir.path().join("data");
        let port = primary.port.to_string();
        let backup = run(
            primary.as_postgres,
            &primary.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().expect("a UTF-8 path"),
                "-R",
                "-X",
                "stream",
            ],
        );
        assert!(
            backup.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        let replica = PrivatePostgres {
            dir,
            bin: primary.bin.clone(),
            port: free_port(),
            as_postgres: primary.as_postgres,
        };
        replica.start_again();
        replica
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().expect("a UTF-8 path")];
        all.extend_from_slice(args);
        run(self.as_postgres, &self.bin.join("pg_ctl"), &all)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// `pg_ctl start`'s arguments after `-D DATA`: the port, socket directory and log.
    fn start_args(&self) -> Vec<String> {
        let socket_dir = self.dir.path().to_str().expect("a UTF-8 path").to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {socket_dir} -c fsync=off",
            self.port
        );
        let log = self.dir.path().join("server.log");
        vec![
            "-o".into(),
            options,
            "-l".into(),
            log.to_str().expect("a UTF-8 path").into(),
            "-w".into(),
            "start".into(),
        ]
    }

    /// The whole `pg_ctl … start` that starts this server, as a target's `start` says it.
    pub fn start_command(&self) -> Vec<String> {
        let mut argv = vec![
            self.bin.join("pg_ctl").display().to_string(),
            "-D".into(),
            self.data_dir().display().to_string(),
        ];
        argv.extend(self.start_args());
        argv
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts.
    pub fn start_again(&self) {
        let args = self.start_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&args);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A fast shutdown: connections are closed, as in a restart for maintenance.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }
}

/// tansu from PATH or `~/.cargo/bin` (where scripts/kafka.sh installs it).
pub fn tansu() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/tansu"));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tansu"))
        .chain(home)
        .find(|p| p.exists())
}

pub struct PrivateBroker {
    dir: tempfile::TempDir,
    tansu: PathBuf,
    s3: String,
    bucket: String,
    port: u16,
    process: Option<Proc>,
    starts: usize,
}

impl PrivateBroker {
    /// A broker of its own, started; `None` (skip) without tansu or the test S3 server
    /// (LIFEBOAT_TEST_S3_URL, from scripts/s3.sh).
    pub async fn start() -> Option<PrivateBroker> {
        let s3 = match std::env::var("LIFEBOAT_TEST_S3_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                required("LIFEBOAT_TEST_S3_URL (scripts/s3.sh)");
                return None;
            }
        };
        let Some(tansu) = tansu() else {
            required("tansu (scripts/kafka.sh installs it)");
            return None;
        };
        let bucket = format!("broker-{}", uuid::Uuid::now_v7().simple());
        let made = reqwest::Client::new()
            .put(format!("{s3}/{bucket}"))
            .send()
            .await
            .expect("the test S3 server answers");
        assert!(made.status().is_success(), "create bucket: {made:?}");
        let mut broker = PrivateBroker {
            dir: tempfile::tempdir().expect("tempdir"),
            tansu,
            s3,
            bucket,
            port: free_port(),
            process: None,
            starts: 0,
        };
        broker.start_again().await;
        Some(broker)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker (again) on the same port and bucket, and waits until it listens.
    pub async fn start_again(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("tansu-{}.log", self.starts));
        let url = format!("tcp://{}", self.brokers());
        let child = Command::new(&self.tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("s3://{}/", self.bucket)])
            .env("AWS_ENDPOINT", &self.s3)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start tansu");
        self.process = Some(Proc(child));
        let addr = self.brokers();
        until(
            "the broker to listen",
            Duration::from_secs(30),
            async || tokio::net::TcpStream::connect(&addr).await.ok(),
        )
        .await;
    }

    /// Kills the broker, as a crash or a lost machine would.
    pub fn stop(&mut self) {
        self.process = None;
    }
}
