//! The store over TLS: a PostgreSQL that takes only TLS connections, with a certificate
//! from a CA made here. `sslmode=verify-full` with `sslrootcert` runs Lifeboat on it; a
//! certificate from another CA is refused with a clear error that never shows the password.

use crate::common;

use common::kafka_secure::make_certs;
use common::services::PrivatePostgres;
use lifeboat::app::Options;
use lifeboat::secret::DatabaseUrl;

const PASSWORD: &str = "pg-tls-5e1f-secret";

fn url(port: u16, ca: &std::path::Path, mode: &str) -> String {
    format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/postgres?sslmode={mode}&sslrootcert={}",
        ca.display()
    )
}

#[tokio::test]
#[ignore = "needs PostgreSQL's server binaries"]
async fn the_store_runs_over_verified_tls_and_refuses_another_ca() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = make_certs(dir.path());
    pg.require_tls(&certs.server_cert, &certs.server_key, PASSWORD)
        .await;

    // The server takes nothing but TLS now, so a run that works went over TLS.
    let plain = lifeboat::store::Store::connect(&url(pg.port(), &certs.ca, "disable")).await;
    assert!(plain.is_err(), "a plaintext connection was taken");

    let verified = url(pg.port(), &certs.ca, "verify-full");
    let wf = "name: shop\nstages:\n  one: { agent: noop }\n  two: { agent: noop, after: [one] }\n";
    let t = common::spawn_configured(
        &[("shop.yaml", wf), ("groups.yaml", common::GROUPS)],
        &[],
        Options::default(),
        |s| s.database_url = DatabaseUrl::new(verified.clone()),
    )
    .await;
    let id = t.create(r#"{"group": "shop"}"#).await;
    t.wait_state(&id, "succeeded").await;
    t.shutdown().await;

    // Another CA: `lifeboat serve` says what failed and where, and no password.
    let untrusted = url(pg.port(), &certs.other_ca, "verify-full");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .arg("serve")
        .env("LIFEBOAT_DATABASE_URL", &untrusted)
        .env(
            "LIFEBOAT_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env("LIFEBOAT_WORKFLOWS", workflows_in(dir.path(), wf))
        .env_remove("LIFEBOAT_KAFKA_BROKERS")
        .env_remove("LIFEBOAT_CONFIG")
        .output()
        .expect("lifeboat runs");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cannot connect to PostgreSQL at postgres://postgres:***@127.0.0.1"),
        "{said}"
    );
    assert!(said.to_lowercase().contains("certificate"), "{said}");
    assert!(!said.contains(PASSWORD), "the password was printed: {said}");
}

fn workflows_in(dir: &std::path::Path, wf: &str) -> std::path::PathBuf {
    common::write_workflows(dir, &[("shop.yaml", wf), ("groups.yaml", common::GROUPS)])
}
