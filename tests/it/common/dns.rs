//! A BIND `named` of a test's own: one zone, `example.com.`, that takes dynamic updates
//! signed with one TSIG key, on a free loopback port. Debian's bind9 (scripts/bind.sh).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Proc, free_port, required, until};

pub const KEY_NAME: &str = "lifeboat-key";
/// A fixed HMAC-SHA256 secret, base64, as `tsig-keygen` prints one.
pub const KEY_SECRET: &str = "c2VjcmV0LWtleS1mb3ItbGlmZWJvYXQtdGVzdHMtMzJieXRlcw==";

pub struct PrivateBind {
    _dir: tempfile::TempDir,
    pub port: u16,
    _named: Proc,
}

fn named_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("LIFEBOAT_TEST_NAMED")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    ["/usr/sbin/named", "/usr/bin/named"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl PrivateBind {
    /// `named` serving example.com with `records` (zone-file lines, relative names);
    /// `None` (skip) when BIND is not installed.
    pub async fn start(records: &str) -> Option<PrivateBind> {
        let Some(bin) = named_bin() else {
            required("BIND's named (scripts/bind.sh installs it; LIFEBOAT_TEST_NAMED)");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let d = dir.path().display();
        let zone = format!(
            "$TTL 60\n@ IN SOA ns1.example.com. admin.example.com. 1 3600 600 86400 60\n@ IN NS ns1.example.com.\nns1 IN A 127.0.0.1\n{records}\n"
        );
        std::fs::write(dir.path().join("example.com.zone"), zone).expect("zone");
        let conf = format!(
            r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
}};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{KEY_SECRET}"; }};
zone "example.com" {{
    type primary;
    file "{d}/example.com.zone";
    update-policy {{ grant {KEY_NAME} zonesub ANY; }};
}};
"#
        );
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf).expect("named.conf");
        let log = std::fs::File::create(dir.path().join("named.log")).expect("log");
        let child = Command::new(&bin)
            .arg("-g")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let bind = PrivateBind {
            _dir: dir,
            port,
            _named: Proc(child),
        };
        until("named to answer", Duration::from_secs(20), async || {
            (!bind.dig("ns1.example.com", "A").is_empty()).then_some(())
        })
        .await;
        Some(bind)
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The authoritative answer for `name` and `kind`, sorted, as `dig +short` prints it.
    pub fn dig(&self, name: &str, kind: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+tries=1",
                "+time=2",
            ])
            .args([name, kind])
            .output();
        let Ok(out) = out else {
            return Vec::new();
        };
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(';'))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }
}
