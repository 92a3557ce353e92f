//! `lifeboat validate [PATH]` end to end: every bad input is reported as
//! `file:line:column: message` on stdout and the command exits 1; a clean directory exits 0
//! with a one-line summary. Each case writes its YAML into a fresh temporary directory and
//! runs the built binary. Expected lines and columns are counted by hand from the YAML
//! written (both 1-based).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// What one run of the binary printed, and how it exited.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn dump(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary in `cwd`, with none of the caller's Lifeboat settings leaking in.
fn lifeboat(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
    cmd.args(args).current_dir(cwd);
    for var in [
        "LIFEBOAT_CONFIG",
        "LIFEBOAT_WORKFLOWS",
        "LIFEBOAT_LISTEN",
        "LIFEBOAT_DATABASE_URL",
        "LIFEBOAT_KAFKA_BROKERS",
        "LIFEBOAT_API_TOKENS",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the lifeboat binary runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Writes `files` into a fresh directory and runs `lifeboat validate DIR`.
fn validate(files: &[(&str, &str)]) -> (TempDir, Outcome) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a case file");
    }
    let target = dir
        .path()
        .to_str()
        .expect("temporary path is UTF-8")
        .to_owned();
    let out = lifeboat(dir.path(), &["validate", &target], &[]);
    (dir, out)
}

/// One expected diagnostic: the file (inside the case directory), where, and a distinctive
/// part of the message.
struct Expect<'a> {
    file: &'a str,
    line: u32,
    column: u32,
    message: &'a str,
}

fn at<'a>(file: &'a str, line: u32, column: u32, message: &'a str) -> Expect<'a> {
    Expect {
        file,
        line,
        column,
        message,
    }
}

/// The run failed with exit 1, and stdout is exactly these diagnostics, one per line, each
/// starting with its exact `file:line:column: `.
fn assert_errors(dir: &TempDir, out: &Outcome, expected: &[Expect<'_>]) {
    assert_eq!(out.code, Some(1), "validate must exit 1\n{}", out.dump());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per problem, and no other problems\n{}",
        out.dump()
    );
    for e in expected {
        let prefix = format!(
            "{}:{}:{}: ",
            dir.path().join(e.file).display(),
            e.line,
            e.column
        );
        let line = lines
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no diagnostic at `{prefix}`\n{}", out.dump()));
        assert!(
            line.contains(e.message),
            "diagnostic at `{prefix}` should mention {:?}, got: {line}\n{}",
            e.message,
            out.dump()
        );
    }
    assert!(
        out.stderr
            .contains(&format!("{} problem(s) found", expected.len())),
        "stderr counts the problems\n{}",
        out.dump()
    );
}

fn repo_workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows")
}

/// A valid workflow and group, for the cases about groups and routes.
const PETSTORE: &str = "\
name: petstore-failover
stages:
  prescale:
    agent: noop
";

const PETSTORE_GROUP: &str = "\
groups:
  petstore:
    services: [petstore-api]
    workflows: { failover: petstore-failover }
";

#[test]
fn clean_directory_exits_zero_with_a_one_line_summary() {
    let (_dir, out) = validate(&[
        (
            "wf.yaml",
            "\
name: w
params:
  to: region-a
stages:
  a:
    agent: noop
  b:
    agent: dial
    spec: { endpoint: petstore.example.com, region: \"${to}\" }
    retry: { max_attempts: 5, initial_backoff: 2s, max_backoff: 60s }
    timeout: 10m
",
        ),
        ("groups.yaml", PETSTORE_GROUP),
        ("petstore.yaml", PETSTORE),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert_eq!(
        out.stdout,
        "ok: 2 workflows (3 stages), 1 groups, 0 routes in 3 files\n",
        "{}",
        out.dump()
    );
}

#[test]
fn yaml_syntax_error() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: broken
stages:
  a:
    agent: noop
    spec: { x: [1, 2
",
    )]);
    // Points at the `[` that is never closed.
    assert_errors(&dir, &out, &[at("wf.yaml", 5, 16, "unclosed bracket")]);
}

#[test]
fn misspelt_stage_field() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: typo
stages:
  a:
    agent: noop
  b:
    agnet: noop
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            6,
            5,
            "unknown field `agnet`, expected one of agent",
        )],
    );
}

#[test]
fn unknown_agent() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  scale:
    agent: capcity
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            4,
            12,
            "stage `scale`: unknown agent `capcity`",
        )],
    );
}

#[test]
fn capacity_spec_with_misspelt_field_points_into_the_spec() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  scale:
    agent: capacity
    spec:
      cluster: k8s-a
      namespace: petstore
      replica: 6
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            8,
            16,
            "stage `scale`: capacity spec rejected at `replica`: unknown field `replica`",
        )],
    );
}

#[test]
fn exec_spec_with_empty_command_points_into_the_spec() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  run:
    agent: exec
    spec:
      command: []
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            6,
            16,
            "stage `run`: exec spec rejected at `command`: command must name a program",
        )],
    );
}

#[test]
fn after_names_a_missing_stage() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
  b:
    agent: noop
    after: [a, c]
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            7,
            16,
            "stage `b`: `after` names missing stage `c`",
        )],
    );
}

#[test]
fn cycle_between_stages() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
    after: [c]
  b:
    agent: noop
    after: [a]
  c:
    agent: noop
    after: [b]
",
    )]);
    // Reported once, at the first stage of the cycle in file order.
    assert_errors(
        &dir,
        &out,
        &[at("wf.yaml", 3, 3, "stages form a cycle: a → b → c → a")],
    );
}

#[test]
fn cycle_through_file_order_names_the_implicit_wait() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
  b:
    agent: noop
    after: [c]
  c:
    agent: noop
",
    )]);
    // `c` has no `after`, so it waits for `b`; the message must say so.
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            5,
            3,
            "stages form a cycle: b → c → b (`c` has no `after`, so it waits for `b`",
        )],
    );
}

#[test]
fn duplicate_stage_name() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
  b:
    agent: noop
  a:
    agent: noop
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at("wf.yaml", 7, 3, "duplicate mapping key `a`")],
    );
    assert!(
        !out.stdout.contains("DuplicateKeyPolicy"),
        "no advice meant for programmers\n{}",
        out.dump()
    );
}

#[test]
fn undefined_param() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
params:
  to: region-a
stages:
  dial:
    agent: dial
    spec:
      endpoint: \"petstore-${to}\"
      region: \"${form}\"
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            9,
            15,
            "undefined parameter `${form}` (defined: to)",
        )],
    );
}

#[test]
fn bad_timeout_duration() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
    timeout: 10 minutes-ish
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at("wf.yaml", 5, 14, "bad duration \"10 minutes-ish\"")],
    );
}

#[test]
fn bad_retry_backoff() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: noop
    retry: { max_attempts: 3, initial_backoff: fast, max_backoff: 1m }
",
    )]);
    assert_errors(&dir, &out, &[at("wf.yaml", 5, 48, "bad duration \"fast\"")]);
}

#[test]
fn group_names_a_missing_workflow() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  petstore:
    services: [petstore-api]
    workflows:
      failover: petstore-failover
      failback: petstore-failbak
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "groups.yaml",
            6,
            17,
            "group `petstore`: failback workflow `petstore-failbak` is not defined",
        )],
    );
}

#[test]
fn empty_stages() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages: {}
",
    )]);
    assert_errors(&dir, &out, &[at("wf.yaml", 2, 9, "`stages` is empty")]);
}

#[test]
fn stages_with_nothing_under_it() {
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
params: {}
",
    )]);
    assert_errors(&dir, &out, &[at("wf.yaml", 2, 7, "`stages` is empty")]);
}

#[test]
fn every_error_in_a_directory_is_reported() {
    let (dir, out) = validate(&[
        (
            "one.yaml",
            "\
name: one
stages:
  a:
    agent: noop
    after: [zz]
",
        ),
        (
            "two.yaml",
            "\
name: two
stages:
  a:
    agent: bogus
  b:
    agent: noop
    timeout: soon
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at("one.yaml", 5, 13, "`after` names missing stage `zz`"),
            at("two.yaml", 4, 12, "unknown agent `bogus`"),
            at("two.yaml", 7, 14, "bad duration \"soon\""),
        ],
    );
}

#[test]
fn route_with_bad_regex() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        ("groups.yaml", PETSTORE_GROUP),
        (
            "routes.yaml",
            "\
routes:
  - name: region-down
    match_re: { service: \"petstore-(\" }
    group: petstore
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "routes.yaml",
            3,
            26,
            "route `region-down`: bad regex for `service`: unclosed group",
        )],
    );
}

#[test]
fn route_naming_an_unknown_group() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        ("groups.yaml", PETSTORE_GROUP),
        (
            "routes.yaml",
            "\
routes:
  - name: region-down
    group: petstre
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "routes.yaml",
            3,
            12,
            "route `region-down`: unknown group `petstre`",
        )],
    );
}

#[test]
fn route_modes_and_their_delay() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        ("groups.yaml", PETSTORE_GROUP),
        (
            "routes.yaml",
            "\
routes:
  - name: no-delay
    group: petstore
    mode: countdown
  - name: zero
    group: petstore
    mode: countdown
    delay: 0s
  - name: stray-delay
    group: petstore
    mode: auto
    delay: 2m
  - name: made-up
    group: petstore
    mode: whenever
  - name: fine
    group: petstore
    mode: countdown
    delay: 2m
  - name: eager
    group: petstore
    starts_per_minute: lots
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "routes.yaml",
                4,
                11,
                "route `no-delay`: mode `countdown` needs a `delay` (like `delay: 2m`)",
            ),
            at(
                "routes.yaml",
                8,
                12,
                "route `zero`: a countdown's `delay` must be more than 0",
            ),
            at(
                "routes.yaml",
                12,
                12,
                "route `stray-delay`: `delay` is for mode `countdown` only",
            ),
            at(
                "routes.yaml",
                15,
                11,
                "route `made-up`: mode must be `auto`, `confirm` or `countdown`, not `whenever`",
            ),
            at(
                "routes.yaml",
                22,
                24,
                "route `eager`: starts_per_minute must be a whole number above 0, not `lots`",
            ),
        ],
    );
}

#[test]
fn generic_sources_and_the_sources_routes_name() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        ("groups.yaml", PETSTORE_GROUP),
        (
            "routes.yaml",
            "\
sources:
  - name: datadog
    secret: ${env:DATADOG_WEBHOOK_SECRET}
    status: $.alert_transition
    tags: [$.tags]
  - name: grafana
    secret: ${env:X}
    status: $.state
  - name: zabbix
    secret: hunter2
    status: event.value
routes:
  - name: from-datadog
    source: datadog
    group: petstore
  - name: from-nowhere
    source: datadgo
    group: petstore
",
        ),
    ]);
    // The file's own problems first; the sources routes name are checked once it is clean.
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "routes.yaml",
                10,
                13,
                "source `zabbix`: a secret is never written here: read it with ${env:NAME} or ${file:PATH}",
            ),
            at(
                "routes.yaml",
                11,
                13,
                "source `zabbix`: `event.value` is not a path: write `$.field.inner` or `/field/inner`",
            ),
        ],
    );
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        ("groups.yaml", PETSTORE_GROUP),
        (
            "routes.yaml",
            "\
sources:
  - name: datadog
    secret: ${env:DATADOG_WEBHOOK_SECRET}
    status: $.alert_transition
  - name: grafana
    secret: ${env:X}
    status: $.state
routes:
  - name: from-datadog
    source: datadog
    group: petstore
  - name: from-nowhere
    source: datadgo
    group: petstore
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "routes.yaml",
                5,
                11,
                "source `grafana`: the name is a built-in source's",
            ),
            at(
                "routes.yaml",
                13,
                13,
                "route `from-nowhere`: unknown source `datadgo` (alertmanager, pagerduty, grafana, datadog or any)",
            ),
        ],
    );
}

#[test]
fn chat_keys_a_group_gives_no_platform_are_named() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  petstore:
    workflows: { failover: petstore-failover }
    channel: dr-petstore
    discrd_channel: \"5000\"
    allow: { slack_users: [U1], slak_groups: [S1], discord_roles: [\"123\"] }
    owners: { slack: [U1], teams: [x] }
    people:
      alice: { slack: U1, icq: \"12345\" }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "groups.yaml",
                2,
                3,
                "group `petstore`: unknown key `discrd_channel` (channel, discord_channel",
            ),
            at("groups.yaml", 6, 33, "unknown `allow` list `slak_groups`"),
            at("groups.yaml", 7, 28, "unknown `owners` platform `teams`"),
            at("groups.yaml", 9, 27, "unknown kind of id in `people` `icq`"),
        ],
    );
}

#[test]
fn repository_workflows_validate() {
    let cwd = tempfile::tempdir().expect("a temporary directory");
    let workflows = repo_workflows();
    let out = lifeboat(
        cwd.path(),
        &[
            "validate",
            workflows.to_str().expect("repository path is UTF-8"),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.dump());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "a one-line summary\n{}", out.dump());
    assert!(
        lines[0].starts_with("ok: ") && lines[0].contains(" workflows ("),
        "{}",
        out.dump()
    );
}

#[test]
fn plan_prints_the_waves_of_the_repository_petstore_group() {
    let cwd = tempfile::tempdir().expect("a temporary directory");
    let workflows = repo_workflows();
    let out = lifeboat(
        cwd.path(),
        &["plan", "petstore"],
        &[("LIFEBOAT_WORKFLOWS", workflows.as_path())],
    );
    assert_eq!(out.code, Some(0), "{}", out.dump());
    let wave = |n: usize| {
        out.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("wave {n}:")))
            .unwrap_or_else(|| panic!("no wave {n}\n{}", out.dump()))
    };
    let first = wave(1);
    assert!(
        first.contains("prescale") && first.contains("promote-database"),
        "wave 1 runs prescale and promote-database in parallel\n{}",
        out.dump()
    );
    assert!(wave(2).contains("demote-database"), "{}", out.dump());
    assert!(wave(3).contains("dial"), "{}", out.dump());
    assert!(
        out.stdout
            .starts_with("petstore failover → petstore-failover"),
        "{}",
        out.dump()
    );
}

#[test]
fn yes_and_no_stay_strings_in_specs() {
    // Under YAML 1.1 `n` and `no` would be booleans and these specs would be rejected.
    let (_dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  a:
    agent: capacity
    spec: { cluster: on, namespace: n, replicas: 2 }
  b:
    agent: dial
    spec: { endpoint: api.example.com, region: no }
",
    )]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
}

#[test]
fn group_params_must_belong_to_each_workflow_and_keep_specs_valid() {
    let wf = |name: &str, params: &str| {
        format!(
            "name: {name}\nparams: {{ {params} }}\nstages:\n  scale:\n    agent: capacity\n    spec: {{ cluster: c, namespace: n, replicas: \"${{count}}\" }}\n"
        )
    };
    let (dir, out) = validate(&[
        ("a.yaml", &wf("a", "count: 2")),
        ("b.yaml", &wf("b", "count: 2, size: 1")),
        (
            "groups.yaml",
            "\
groups:
  one:
    workflows: { failover: a }
    params: { count: many }
  two:
    workflows: { failover: a, failback: b }
    params: { size: 3 }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "groups.yaml",
                2,
                3,
                "group `one`: with the group's params, failover workflow `a`: stage `scale`: capacity spec rejected: invalid type: string \"many\", expected u32",
            ),
            at(
                "groups.yaml",
                7,
                15,
                "group `two`: param `size` is not a param of its failover workflow `a`",
            ),
        ],
    );
}

/// A workflow of one database, one capacity and one dial stage, for the target cases.
const ESTATE: &str = "\
name: w
params: { to: region-a }
stages:
  promote:
    agent: database
    spec: { cluster: \"db-${to}\", role: writer }
  scale:
    agent: capacity
    spec: { cluster: k8s-a, namespace: shop, replicas: 2 }
  dial:
    agent: dial
    spec: { endpoint: shop.example.com, region: \"${to}\" }
";

#[test]
fn targets_must_define_every_name_a_stage_uses() {
    let (dir, out) = validate(&[
        ("wf.yaml", ESTATE),
        (
            "targets.yaml",
            "\
databases:
  db-region-b: { provider: sim }
clusters:
  k8s-a: { provider: sim }
endpoints:
  shop.example.com:
    provider: sim
    regions: { region-b: { A: [198.51.100.10] } }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "wf.yaml",
                6,
                22,
                "stage `promote`: database spec rejected at `cluster`: database `db-region-a` is not in targets.yaml (databases: db-region-b)",
            ),
            at(
                "wf.yaml",
                12,
                49,
                "stage `dial`: dial spec rejected at `region`: endpoint `shop.example.com` has no region `region-a` in targets.yaml (regions: region-b)",
            ),
        ],
    );
}

#[test]
fn targets_name_known_providers_with_fields_that_fit() {
    let (dir, out) = validate(&[
        ("wf.yaml", ESTATE),
        (
            "targets.yaml",
            "\
databases:
  db-region-a: { provider: postgress, url: x }
clusters:
  k8s-a: { provider: sim, context: region-a }
endpoints:
  shop.example.com:
    regions: { region-a: { A: [192.0.2.10] } }
  other.example.com:
    provider: sim
    regions: { region-a: { MX: [mail.example.com] } }
",
        ),
    ]);
    // Which providers a build has depends on its features (AWS is one).
    let (databases, endpoints) = if cfg!(feature = "aws") {
        (
            "sim, postgres, rds, aurora, aurora-global",
            "sim, rfc2136, route53",
        )
    } else {
        ("sim, postgres", "sim, rfc2136")
    };
    let unknown = format!(
        "database `db-region-a`: unknown provider `postgress` (database providers: {databases})"
    );
    let needs = format!("endpoint `shop.example.com` needs a `provider` ({endpoints})");
    assert_errors(
        &dir,
        &out,
        &[
            at("targets.yaml", 2, 28, &unknown),
            at(
                "targets.yaml",
                4,
                36,
                "cluster `k8s-a`: sim target rejected at `context`: unknown field `context`",
            ),
            at("targets.yaml", 6, 3, &needs),
            at(
                "targets.yaml",
                10,
                26,
                "endpoint `other.example.com`: sim target rejected at `regions.region-a`: unknown variant `MX`",
            ),
        ],
    );
}

#[test]
fn secrets_in_targets_are_references_never_values() {
    let (dir, out) = validate(&[
        ("wf.yaml", ESTATE.replace("db-${to}", "db-a").as_str()),
        (
            "targets.yaml",
            "\
databases:
  db-a: { provider: postgres, url: \"postgres://app:hunter2@db.internal/app\" }
  db-b: { provider: postgres, url: \"${vault:db-b}\" }
  db-c: { provider: postgres, url: \"postgres://app:${env:DB_C_PASSWORD}@db.internal/app\" }
clusters: { k8s-a: { provider: sim } }
endpoints:
  shop.example.com: { provider: sim, regions: { region-a: { A: [192.0.2.10] } } }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "targets.yaml",
                2,
                36,
                "database `db-a`: postgres target rejected at `url`: a password is written here: read it with ${env:NAME} or ${file:PATH}",
            ),
            at(
                "targets.yaml",
                3,
                36,
                "database `db-b`: postgres target rejected at `url`: `${vault:db-b}`: write `${env:NAME}` or `${file:PATH}`",
            ),
        ],
    );
    assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
}

#[test]
fn rfc2136_endpoints_need_a_referenced_secret_a_known_algorithm_and_good_records() {
    let (dir, out) = validate(&[
        ("wf.yaml", ESTATE.replace("db-${to}", "db-a").as_str()),
        (
            "targets.yaml",
            "\
databases: { db-a: { provider: sim } }
clusters: { k8s-a: { provider: sim } }
endpoints:
  shop.example.com:
    provider: rfc2136
    server: 192.0.2.53
    zone: example.com.
    key: { name: k, algorithm: hmac-md5, secret: \"${env:TSIG}\" }
    regions: { region-a: { A: [192.0.2.10] } }
  other.example.com:
    provider: rfc2136
    server: 192.0.2.53
    zone: example.com.
    key: { name: k, secret: c2VjcmV0 }
    regions: { region-a: { A: [192.0.2.10] } }
  third.example.com:
    provider: rfc2136
    server: 192.0.2.53
    zone: example.com.
    key: { name: k, secret: \"${env:TSIG}\" }
    regions: { region-a: { A: [not-an-address] } }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "targets.yaml",
                8,
                32,
                "endpoint `shop.example.com`: rfc2136 target rejected at `key.algorithm`: `hmac-md5` is not supported (hmac-sha256, hmac-sha384, hmac-sha512)",
            ),
            at(
                "targets.yaml",
                14,
                29,
                "endpoint `other.example.com`: rfc2136 target rejected at `key.secret`: a secret is written here: read it with ${env:NAME} or ${file:PATH}",
            ),
            at(
                "targets.yaml",
                21,
                26,
                "endpoint `third.example.com`: rfc2136 target rejected at `regions.region-a`: A value \"not-an-address\": invalid IPv4 address syntax",
            ),
        ],
    );
    assert!(!out.stdout.contains("c2VjcmV0"));
}

#[test]
fn with_targets_a_clean_directory_counts_them() {
    let (_dir, out) = validate(&[
        ("wf.yaml", ESTATE.replace("db-${to}", "db-a").as_str()),
        (
            "targets.yaml",
            "\
databases: { db-a: { provider: sim } }
clusters: { k8s-a: { provider: sim } }
endpoints:
  shop.example.com: { provider: sim, ttl: 30, regions: { region-a: { CNAME: [lb-a.example.net] } } }
",
        ),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert_eq!(
        out.stdout,
        "ok: 1 workflows (3 stages), 0 groups, 0 routes, 3 targets in 2 files\n",
        "{}",
        out.dump()
    );
}

#[test]
fn a_provider_named_in_a_spec_must_agree_with_the_target() {
    // Workflows written before targets.yaml named the provider in the spec.
    let (dir, out) = validate(&[(
        "wf.yaml",
        "\
name: w
stages:
  old:
    agent: database
    spec: { cluster: c, role: writer, provider: sim }
  wrong:
    agent: database
    spec: { cluster: c, role: writer, provider: kubernetes }
",
    )]);
    assert_errors(
        &dir,
        &out,
        &[at(
            "wf.yaml",
            8,
            49,
            "stage `wrong`: database spec rejected at `provider`: database `c` is driven by sim, not kubernetes: targets.yaml chooses the provider",
        )],
    );
}

const TEMPLATED: &str = "\
name: w
stages:
  promote:
    uses: postgres-promote
    spec: { cluster: db-a }
  fence:
    uses: postgres-demote
    spec: { cluster: db-b, unreachable: fail }
    retry: { max_attempts: 1 }
  dial:
    uses: dns-failover
    spec: { endpoint: shop.example.com, region: region-a }
    timeout: 1m
";

const SIM_ESTATE: &str = "\
databases: { db-a: { provider: sim }, db-b: { provider: sim } }
endpoints:
  shop.example.com: { provider: sim, regions: { region-a: { A: [192.0.2.10] } } }
";

#[test]
fn templates_fill_in_a_stage_and_what_the_stage_writes_wins() {
    let dir = TempDir::new().expect("tempdir");
    let wf = dir.path().join("workflows");
    std::fs::create_dir_all(&wf).expect("mkdir");
    std::fs::write(wf.join("w.yaml"), TEMPLATED).expect("write");
    std::fs::write(wf.join("targets.yaml"), SIM_ESTATE).expect("write");
    let catalog = lifeboat::workflow::Catalog::load(
        &wf,
        std::sync::Arc::new(lifeboat::agents::Registry::builtin()),
    )
    .expect("the templated workflow is valid");
    let stages = &catalog.workflows["w"].stages;
    let by = |n: &str| stages.iter().find(|s| s.name == n).expect("stage");

    let promote = by("promote");
    assert_eq!(promote.agent, "database");
    assert_eq!(
        promote.spec.value.to_json(),
        serde_json::json!({ "role": "writer", "max_lag": "10s", "cluster": "db-a" })
    );
    assert_eq!(promote.retry.max_attempts, 5);
    assert_eq!(promote.timeout, std::time::Duration::from_secs(300));

    let fence = by("fence");
    assert_eq!(
        fence.spec.value.to_json(),
        serde_json::json!({ "role": "reader", "unreachable": "fail", "cluster": "db-b" }),
        "the stage's own value replaces the template's"
    );
    assert_eq!(fence.retry.max_attempts, 1);
    assert_eq!(
        fence.retry.initial_backoff,
        std::time::Duration::from_secs(1)
    );

    let dial = by("dial");
    assert_eq!(dial.agent, "dial");
    assert_eq!(dial.timeout, std::time::Duration::from_secs(60));
}

#[test]
fn template_uses_are_checked_like_any_stage() {
    let (dir, out) = validate(&[
        (
            "w.yaml",
            "\
name: w
stages:
  promote:
    uses: postgres-promot
    spec: { cluster: db-a }
  lagging:
    uses: postgres-promote
    spec: { cluster: db-a, max_lag: lots }
  wrong:
    agent: dial
    uses: postgres-demote
    spec: { cluster: db-b }
  bare:
    spec: { cluster: db-b }
  missing:
    uses: postgres-demote
    spec: { cluster: db-z }
",
        ),
        ("targets.yaml", SIM_ESTATE),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "w.yaml",
                4,
                11,
                "stage `promote`: unknown template `postgres-promot` (templates: postgres-promote,",
            ),
            at(
                "w.yaml",
                8,
                37,
                "stage `lagging`: database spec rejected at `max_lag`: bad duration \"lots\"",
            ),
            at(
                "w.yaml",
                10,
                12,
                "stage `wrong`: template `postgres-demote` runs the database agent, not `dial`",
            ),
            at(
                "w.yaml",
                13,
                3,
                "stage `bare` needs an `agent`, or `uses` with a template (postgres-promote,",
            ),
            at(
                "w.yaml",
                17,
                22,
                "stage `missing`: database spec rejected at `cluster`: database `db-z` is not in targets.yaml",
            ),
        ],
    );
}

#[test]
fn an_unset_secret_variable_is_a_warning_not_an_error() {
    let (dir, out) = validate(&[
        ("wf.yaml", ESTATE.replace("db-${to}", "db-a").as_str()),
        (
            "targets.yaml",
            "\
databases:
  db-a: { provider: postgres, url: \"postgres://app:${env:LIFEBOAT_SURELY_UNSET_PW}@db/app\" }
clusters: { k8s-a: { provider: sim } }
endpoints:
  shop.example.com: { provider: sim, regions: { region-a: { A: [192.0.2.10] } } }
",
        ),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    assert!(
        out.stderr.contains(&format!(
            "warning: {}:2:3: database `db-a` reads ${{env:LIFEBOAT_SURELY_UNSET_PW}}, which is not set here",
            dir.path().join("targets.yaml").display()
        )),
        "{}",
        out.dump()
    );
}

#[test]
fn approvals_out_of_range_and_an_id_given_to_two_people() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  petstore:
    workflows: { failover: petstore-failover }
    approvals: 0
    people:
      alice: { slack: U1, discord: \"42\" }
      bob: { slack: U1 }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "groups.yaml",
                4,
                16,
                "group `petstore`: approvals must be 1 to 5, not 0",
            ),
            at(
                "groups.yaml",
                7,
                12,
                "group `petstore`: slack id `U1` is given to both `alice` and `bob`",
            ),
        ],
    );
}

#[test]
fn a_drill_schedule_is_refused_where_it_is_wrong() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  often:
    workflows: { failover: petstore-failover }
    drill: { every: 500ms }
  cronless:
    workflows: { failover: petstore-failover }
    drill: { cron: \"61 * * * *\" }
  both:
    workflows: { failover: petstore-failover }
    drill: { every: 1h, cron: \"0 3 * * *\" }
  hopeful:
    workflows: { failover: petstore-failover }
    objectives: { rto: soon, rpo: 30s }
",
        ),
    ]);
    let text = out.dump();
    assert_eq!(out.code, Some(1), "{text}");
    for expected in [
        "groups.yaml:4:21: group `often`: drill: `500ms` is under a second",
        "groups.yaml:7:20: group `cronless`: drill: `61 * * * *` is not a cron schedule",
        "groups.yaml:10:12: group `both`: drill: give `every` or `cron`, not both",
        "groups.yaml:13:24: group `hopeful`: objectives: rto `soon` is not a duration",
    ] {
        let expected = format!("{}/{expected}", dir.path().display());
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "groups:\n  typo:\n    workflows: { failover: petstore-failover }\n    drill: { evry: 1h }\n",
        ),
    ]);
    let expected = format!(
        "{}/groups.yaml:4:14: unknown field `evry`, expected one of every, cron",
        dir.path().display()
    );
    assert!(out.dump().contains(&expected), "{}", out.dump());
}

#[test]
fn a_group_open_to_every_api_token_is_a_warning() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  petstore:
    workflows: { failover: petstore-failover }
  guarded:
    workflows: { failover: petstore-failover }
    allow: { api: [ci] }
",
        ),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.dump());
    let groups = dir.path().join("groups.yaml");
    assert!(
        out.stderr.contains(&format!(
            "warning: {}:2:3: group `petstore` has no `allow.api`",
            groups.display()
        )),
        "{}",
        out.dump()
    );
    assert!(!out.stderr.contains("`guarded`"), "{}", out.dump());
}

#[test]
fn declared_params_and_the_group_params_that_do_not_fit_them() {
    let (dir, out) = validate(&[
        (
            "shop.yaml",
            "\
name: shop
params:
  to: { default: region-c, enum: [region-a, region-b] }
  size: { default: 3, pattern: \"[0-9\" }
  tier: { default: gold, colour: red }
  zone: { enum: [] }
stages:
  scale: { agent: noop, spec: {} }
",
        ),
        (
            "ok.yaml",
            "\
name: ok
params:
  to: { default: region-a, enum: [region-a, region-b] }
  size: { default: 3, pattern: \"[0-9]+\" }
stages:
  scale: { agent: noop, spec: {} }
",
        ),
        (
            "groups.yaml",
            "\
groups:
  shop:
    workflows: { failover: ok }
    params: { to: region-z, size: \"3;\" }
",
        ),
    ]);
    assert_errors(
        &dir,
        &out,
        &[
            at(
                "groups.yaml",
                4,
                19,
                "group `shop`: failover workflow `ok`: param `to`: \"region-z\" is not one of region-a, region-b",
            ),
            at(
                "groups.yaml",
                4,
                35,
                "group `shop`: failover workflow `ok`: param `size`: \"3;\" does not match its pattern `[0-9]+`",
            ),
            at(
                "shop.yaml",
                3,
                7,
                "the default of param `to`: \"region-c\" is not one of region-a, region-b",
            ),
            at(
                "shop.yaml",
                4,
                32,
                "param `size`: `pattern` is not a regular expression: unclosed character class",
            ),
            at(
                "shop.yaml",
                5,
                26,
                "param `tier`: unknown field `colour` (default, enum, pattern)",
            ),
            at(
                "shop.yaml",
                6,
                17,
                "param `zone`: `enum` must be a list of the values it may take, not an empty list",
            ),
        ],
    );
}

/// A spec nested far deeper than any workflow needs is refused where it goes too deep,
/// on a worker thread's stack, not by overflowing it.
#[test]
fn a_spec_nested_too_deep_is_refused_where_it_goes_too_deep() {
    let depth = 60;
    let deep = format!(
        "name: x\nstages:\n  a:\n    agent: capacity\n    spec: {}1{}\n",
        "{a: ".repeat(depth),
        "}".repeat(depth)
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("x.yaml"), &deep).expect("write");
    // Loaded as `serve` and a test would: on a 2 MiB thread.
    let path = dir.path().to_path_buf();
    let loaded = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            lifeboat::app::catalog_at(&path, &lifeboat::agents::Registry::builtin()).map(drop)
        })
        .expect("a thread")
        .join()
        .expect("no overflow");
    let diagnostics = loaded.expect_err("refused");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    assert_eq!(d.line, 5, "{d}");
    assert!(d.message.contains("limits breached"), "{d}");
}

#[test]
fn dependencies_between_groups_are_refused_where_they_are_wrong() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
groups:
  db:
    workflows: { failover: petstore-failover }
    depends_on: [app]
  auth:
    workflows: { failover: petstore-failover }
    depends_on: [db]
  app:
    workflows: { failover: petstore-failover }
    depends_on: [auth, cache, app]
",
        ),
    ]);
    let text = out.dump();
    assert_eq!(out.code, Some(1), "{text}");
    for expected in [
        "groups.yaml:10:24: group `app` depends on `cache`, which is no group (groups: db, auth, app)",
        "groups.yaml:10:31: group `app` depends on itself",
        "groups.yaml:7:18: groups depend on each other in a cycle: db → app → auth → db",
    ] {
        let expected = format!("{}/{expected}", dir.path().display());
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn limits_name_what_exists_and_cap_at_a_whole_number() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "targets.yaml",
            "\
databases:
  petstore-region-a: { provider: sim }
  petstore-region-b: { provider: sim }
clusters:
  my-k8s-cluster-region-a: { provider: sim }
  my-k8s-cluster-region-b: { provider: sim }
endpoints:
  petstore.example.com:
    provider: sim
    regions: { region-a: { A: [192.0.2.10] }, region-b: { A: [198.51.100.10] } }
limits:
  providers: { sim: 2, rdss: 5 }
  targets: { petstore-region-a: 0, nowhere: 1 }
  agents: { database: 1.5, teleport: 3 }
  regions: {}
",
        ),
    ]);
    let text = out.dump();
    assert_eq!(out.code, Some(1), "{text}");
    for expected in [
        "targets.yaml:12:24: limits.providers.rdss: no such provider (aurora, aurora-global, autoscaling, kubernetes, postgres, rds, rfc2136, route53, sim)",
        "targets.yaml:13:33: limits.targets.petstore-region-a: a limit is a whole number from 1 to 10000, not 0",
        "targets.yaml:13:36: limits.targets.nowhere: no such target (petstore-region-a, petstore-region-b, my-k8s-cluster-region-a, my-k8s-cluster-region-b, petstore.example.com)",
        "targets.yaml:14:23: limits.agents.database: a limit is a whole number from 1 to 10000, not 1.5",
        "targets.yaml:14:28: limits.agents.teleport: no such agent kind",
        "targets.yaml:15:3: limits: unknown section `regions` (providers, targets, agents)",
    ] {
        let expected = format!("{}/{expected}", dir.path().display());
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn an_evacuation_channel_names_a_chat_platform() {
    let (dir, out) = validate(&[
        ("petstore.yaml", PETSTORE),
        (
            "groups.yaml",
            "\
evacuation_channel: { slack: C0DR, teams: x, discord: '' }
groups:
  db:
    workflows: { failover: petstore-failover }
",
        ),
    ]);
    let text = out.dump();
    assert_eq!(out.code, Some(1), "{text}");
    for expected in [
        "groups.yaml:1:36: evacuation_channel: unknown chat platform `teams` (slack, discord, mattermost)",
        "groups.yaml:1:55: evacuation_channel.discord: the channel is empty",
    ] {
        let expected = format!("{}/{expected}", dir.path().display());
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
}
