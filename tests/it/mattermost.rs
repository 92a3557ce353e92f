//! Mattermost, end to end against a loopback stand-in of its REST API v4: `/dr` as a
//! custom slash command checked by its token, the incident thread and card, and buttons
//! whose context only Lifeboat can sign.

use crate::common;

use common::TestApp;
use common::crash::{CrashAfter, Victim, died};
use common::evacuation;
use common::mattermost::{BOT_TOKEN, MattermostStandIn, buttons, shown};
use lifeboat::app::Options;
use lifeboat::chat::mattermost::MattermostSettings;
use lifeboat::secret::SecretString;
use serde_json::{Value, json};

const SHOP: &str = "\
name: shop
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 2, duration: 100ms }
  dial:
    agent: dial
    approval: required
    spec: { endpoint: shop.example.com, region: a, duration: 100ms }
";

const GROUPS: &str = "\
groups:
  shop:
    workflows: { failover: shop }
    mattermost_channel: chan-dr
    owners: { mattermost: [u-owner] }
    allow: { mattermost_teams: [team-sre], mattermost_users: [u-carol] }
";

const COMMAND_TOKEN: &str = "mm-command-token-51";

async fn app(standin: &MattermostStandIn) -> TestApp {
    app_on(standin, &[("shop.yaml", SHOP), ("groups.yaml", GROUPS)]).await
}

/// The app on these workflow files, with Mattermost's commands and buttons.
async fn app_on(standin: &MattermostStandIn, files: &[(&str, &str)]) -> TestApp {
    let settings = MattermostSettings {
        url: standin.base.clone(),
        bot_token: SecretString::from(BOT_TOKEN),
        command_tokens: vec![SecretString::from(COMMAND_TOKEN)],
        actions_url: Some("https://lifeboat.example.com/mattermost/actions".into()),
    };
    common::spawn_configured(files, &[], Options::default(), move |s| {
        s.chat.set(settings)
    })
    .await
}

async fn command(t: &TestApp, token: &str, user: &str, team: &str, text: &str) -> (u16, Value) {
    let form: Vec<(&str, &str)> = vec![
        ("token", token),
        ("team_id", team),
        ("team_domain", "acme"),
        ("channel_id", "chan-ops"),
        ("channel_name", "ops"),
        ("user_id", user),
        ("user_name", "alice"),
        ("command", "/dr"),
        ("text", text),
        ("response_url", "http://mattermost.invalid/hooks/commands/x"),
        ("trigger_id", "trigger-1"),
    ];
    let resp = t
        .client
        .post(t.url("/mattermost/commands"))
        .form(&form)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn press(t: &TestApp, user: &str, team: &str, context: &Value) -> (u16, Value) {
    press_as(t, user, "bob", team, context).await
}

/// A press by `user`, whom Mattermost calls `name`.
async fn press_as(
    t: &TestApp,
    user: &str,
    name: &str,
    team: &str,
    context: &Value,
) -> (u16, Value) {
    let body = json!({
        "user_id": user, "user_name": name, "channel_id": "chan-dr", "team_id": team,
        "team_domain": "acme", "post_id": "post2", "trigger_id": "trigger-2",
        "type": "", "data_source": "", "context": context,
    });
    let resp = t
        .client
        .post(t.url("/mattermost/actions"))
        .json(&body)
        .send()
        .await
        .expect("a request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn runs(t: &TestApp) -> Vec<Value> {
    let (_, runs) = t.get("/api/v1/runs").await;
    runs["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn dr_failover_runs_in_an_incident_thread_and_its_buttons_are_lifeboats_own() {
    let standin = MattermostStandIn::start(1).await;
    let t = app(&standin).await;

    // The command's token is checked before anything is read or done.
    let (status, body) = command(&t, "not-the-token", "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = command(&t, "", "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 401);
    assert!(runs(&t).await.is_empty());

    // Someone outside the group's team and users is refused, and it is recorded.
    let (status, body) = command(&t, COMMAND_TOKEN, "u-eve", "team-dev", "failover shop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response_type"], "ephemeral", "{body}");
    assert!(runs(&t).await.is_empty());
    let (_, refusals) = t.get("/api/v1/refusals").await;
    assert_eq!(
        refusals["refusals"][0]["actor"], "mattermost:u-eve",
        "{refusals}"
    );

    let (status, body) = command(&t, COMMAND_TOKEN, "u-alice", "team-sre", "failover shop").await;
    assert_eq!(status, 200, "{body}");
    let started = runs(&t).await;
    assert_eq!(started.len(), 1, "{body}");
    assert_eq!(started[0]["requested_by"], "mattermost:u-alice");
    let id = started[0]["id"].as_str().unwrap_or_default().to_string();

    // The thread opens in the group's channel, naming the requester and the owner; the
    // card is posted in it and waits at the gate with its buttons.
    let root = standin
        .until("the incident thread", |s| {
            s.posts()
                .into_iter()
                .find(|p| p.body["channel_id"] == "chan-dr" && p.body["root_id"].is_null())
        })
        .await;
    let opened = shown(&root.body);
    assert!(
        opened.contains("Failover of `shop`: its incident thread"),
        "{opened}"
    );
    assert!(
        opened.contains("@alice"),
        "the requester, by name: {opened}"
    );
    assert!(
        opened.contains("@name-of-u-owner"),
        "the owner, looked up: {opened}"
    );
    let card = standin
        .until("the card in the thread", |s| {
            s.posts()
                .into_iter()
                .find(|p| p.body["root_id"] == root.id.as_str() && !buttons(&p.body).is_empty())
        })
        .await;
    let approve = standin
        .until("the card at the gate", |s| {
            let latest = s
                .patches_of(&card.id)
                .last()
                .map(|c| c.body.clone())
                .unwrap_or_else(|| card.body.clone());
            buttons(&latest)
                .into_iter()
                .find(|(name, _)| name == "Approve")
                .map(|(_, integration)| integration)
        })
        .await;
    assert_eq!(
        approve["url"], "https://lifeboat.example.com/mattermost/actions",
        "{approve}"
    );
    let context = approve["context"].clone();
    assert_eq!(context["target"], id.as_str(), "{context}");

    // A context Lifeboat did not make does nothing: another run, another button, no
    // signature.
    for forged in [
        json!({ "button": "approve", "target": "01a213a1-0776-769e-b4c5-9785c42f41c5", "signature": context["signature"] }),
        json!({ "button": "cancel", "target": id, "signature": context["signature"] }),
        json!({ "button": "approve", "target": id }),
    ] {
        let (status, body) = press(&t, "u-bob", "team-sre", &forged).await;
        assert_eq!(status, 401, "{forged}: {body}");
    }
    let (_, run) = t.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(run["state"], "awaiting_approval", "{run}");

    // Bob of the SRE team approves from the card; the run goes on and the card ends.
    let (status, body) = press(&t, "u-bob", "team-sre", &context).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["ephemeral_text"]
            .as_str()
            .is_some_and(|t| t.contains("approved")),
        "{body}"
    );
    let done = t.wait_state(&id, "succeeded").await;
    let approved = done["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "stage.approved").cloned())
        .unwrap_or_default();
    assert_eq!(approved["actor"], "mattermost:u-bob", "{done}");
    let last = standin
        .until("the card's final edit", |s| {
            s.patches_of(&card.id)
                .last()
                .filter(|c| shown(&c.body).contains("Failover of shop: succeeded"))
                .cloned()
        })
        .await;
    assert!(
        buttons(&last.body).is_empty(),
        "a finished run has no buttons: {}",
        last.body
    );
    assert!(standin.limited() >= 1, "the stand-in's 429 was waited out");

    // Where it was asked for hears where to follow it.
    standin
        .until("the notice in the asking channel", |s| {
            s.posts().into_iter().find(|p| {
                p.body["channel_id"] == "chan-ops" && shown(&p.body).contains("follow it in")
            })
        })
        .await;
    t.shutdown().await;
}

#[tokio::test]
async fn without_mattermost_configured_its_paths_refuse() {
    let t = common::spawn(&[("shop.yaml", SHOP)], &[]).await;
    let (status, body) = command(&t, COMMAND_TOKEN, "u-alice", "team-sre", "groups").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "Mattermost is not configured here");
    t.shutdown().await;
}

/// The service dies after Mattermost took the incident's root post but before the store
/// heard of it, and again after it took the card: each time the restarted service finds
/// what it made (the root by the run it names, the card in its thread) instead of making
/// a second, and the one card ends on the run's final state.
#[tokio::test]
async fn a_crash_between_mattermost_acting_and_the_store_recording_makes_nothing_twice() {
    let victim = Victim::default();
    let standin = MattermostStandIn::start(0).await;
    standin.crash(CrashAfter::new(&["POST posts"], victim.crash()));
    let dir = tempfile::tempdir().expect("tempdir");
    let wf = "name: shop\nstages:\n  a: { agent: noop }\n  slow: { agent: exec, spec: { command: [sleep, '2'] } }\n";
    common::write_workflows(dir.path(), &[("shop.yaml", wf), ("groups.yaml", GROUPS)]);
    let client = reqwest::Client::new();
    let start = || {
        let port = common::free_port();
        let proc = common::serve(
            dir.path(),
            port,
            &[
                ("MATTERMOST_URL", &standin.base),
                ("MATTERMOST_BOT_TOKEN", BOT_TOKEN),
                ("MATTERMOST_COMMAND_TOKENS", COMMAND_TOKEN),
            ],
        );
        victim.is(&proc);
        (proc, format!("http://127.0.0.1:{port}"))
    };
    // Dies as Mattermost takes the root post.
    let (mut first, base) = start();
    common::until_ready(&client, &base).await;
    let id = common::create_run_at(&client, &base, "shop").await;
    died(&mut first).await;
    let roots = standin.posts();
    assert_eq!(roots.len(), 1, "{roots:?}");
    let root = roots[0].id.clone();

    // Dies as Mattermost takes the card, in the thread it found.
    standin.crash(CrashAfter::new(&["POST posts"], victim.crash()));
    let (mut second, _) = start();
    died(&mut second).await;
    let posts = standin.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(
        posts[1].body["root_id"],
        root.as_str(),
        "the card is in the thread"
    );
    let card = posts[1].id.clone();

    // Finds the card and goes on with it.
    let (_third, base) = start();
    common::until_ready(&client, &base).await;
    common::until(
        "the run to succeed",
        std::time::Duration::from_secs(60),
        async || {
            let run = common::get_json(&client, &format!("{base}/api/v1/runs/{id}"), None).await?;
            (run["state"] == "succeeded").then_some(())
        },
    )
    .await;
    common::until(
        "the card's final state",
        std::time::Duration::from_secs(60),
        async || {
            standin
                .calls()
                .into_iter()
                .rev()
                .find(|c| c.method == "PUT" && c.path == format!("/api/v4/posts/{card}/patch"))
                .filter(|c| c.body.to_string().contains("Total recovery time"))
        },
    )
    .await;
    let posts = standin.posts();
    let roots = posts
        .iter()
        .filter(|p| p.body["root_id"].as_str().is_none_or(str::is_empty))
        .count();
    let cards = posts
        .iter()
        .filter(|p| p.body["props"]["lifeboat_card"] == id.as_str())
        .count();
    assert_eq!((roots, cards), (1, 1), "one thread, one card: {posts:?}");
}

/// Five groups whose incidents open in `chan-dr`, the SRE team allowed on each, and the
/// evacuation card in `chan-evac`.
const EVACUATED: &str = "\
evacuation_channel: { mattermost: chan-evac }
groups:
  east:
    workflows: { failover: mover }
    mattermost_channel: chan-dr
    allow: { mattermost_teams: [team-sre] }
  west:
    workflows: { failover: mover }
    mattermost_channel: chan-dr
    allow: { mattermost_teams: [team-sre] }
  flaky:
    workflows: { failover: flaky }
    mattermost_channel: chan-dr
    allow: { mattermost_teams: [team-sre] }
  broken:
    workflows: { failover: broken }
    mattermost_channel: chan-dr
    allow: { mattermost_teams: [team-sre] }
  after-broken:
    workflows: { failover: mover }
    depends_on: [broken]
    mattermost_channel: chan-dr
    allow: { mattermost_teams: [team-sre] }
";

/// The evacuation's card in `chan-evac`: its post's id, and what it shows now.
fn evacuation_card(standin: &MattermostStandIn, id: &str) -> Option<(String, Value)> {
    let footer = format!("evacuation {id}");
    let post = standin.posts().into_iter().find(|p| {
        p.body["channel_id"] == "chan-evac" && p.body["props"]["attachments"][0]["footer"] == footer
    })?;
    let now = standin
        .patches_of(&post.id)
        .last()
        .map_or_else(|| post.body.clone(), |c| c.body.clone());
    Some((post.id, now))
}

/// The context of a post's button, by the button's name.
fn context_of(post: &Value, name: &str) -> Value {
    buttons(post)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, integration)| integration["context"].clone())
        .unwrap_or_else(|| panic!("no button {name} in {post}"))
}

/// What a press's answer says to the person who pressed.
fn ephemeral(answer: &Value) -> &str {
    answer["ephemeral_text"].as_str().unwrap_or_default()
}

/// The incident threads opened in `chan-dr`, as their root posts read.
fn incidents(standin: &MattermostStandIn) -> Vec<String> {
    standin
        .posts()
        .into_iter()
        .filter(|p| p.body["channel_id"] == "chan-dr" && p.body["root_id"].is_null())
        .map(|p| shown(&p.body))
        .collect()
}

/// An evacuation started with `/dr evacuate` keeps one card in the channel groups.yaml
/// names for evacuations on Mattermost, whose buttons carry contexts only Lifeboat signs.
/// Resume is refused to someone outside the groups' team and changes nothing, and resumes
/// the failed group's run for someone in it; a context signed for another button does
/// nothing; Skip asks for `/dr skip` with a reason, and the command it gives lets the group
/// held behind the skipped one go on, the reason recorded as said; the card ends done, with
/// no buttons, and its earlier Abort, pressed late, aborts nothing.
#[tokio::test]
async fn an_evacuations_card_on_mattermost_resumes_and_skips_its_failed_groups() {
    let standin = MattermostStandIn::start(0).await;
    let mut files = evacuation::workflows();
    files.push(("groups.yaml", EVACUATED.to_string()));
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let t = app_on(&standin, &files).await;

    let (status, started) = command(
        &t,
        COMMAND_TOKEN,
        "u-alice",
        "team-sre",
        "evacuate all --reason region a is gone",
    )
    .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["response_type"], "in_channel", "{started}");
    let said = started["text"].as_str().unwrap_or_default();
    assert!(
        said.contains("@alice started an evacuation of 5 groups"),
        "{said}"
    );
    let id = said.split('`').nth(1).unwrap_or_default().to_string();
    assert_eq!(id.len(), 36, "{said}");

    // The card comes to show the two failures and the group they hold, with buttons.
    let (card, failing) = standin
        .until("the card to show two failures", |s| {
            let (card, now) = evacuation_card(s, &id)?;
            let said = shown(&now);
            (said.contains("2 succeeded") && said.contains("2 failed") && said.contains("1 held"))
                .then_some((card, now))
        })
        .await;
    let said = shown(&failing);
    assert!(
        said.contains("Why: region a is gone (asked by @alice)"),
        "{said}"
    );
    assert!(said.contains("❌ `flaky` failed (run `"), "{said}");
    assert!(said.contains("❌ `broken` failed (run `"), "{said}");
    let names: Vec<String> = buttons(&failing).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Abort the rest",
            "Resume: flaky",
            "Skip: flaky",
            "Resume: broken",
            "Skip: broken"
        ]
    );
    let resume = context_of(&failing, "Resume: flaky");
    assert_eq!(resume["button"], "evacuation_resume", "{resume}");
    assert_eq!(resume["target"], format!("{id}/flaky"), "{resume}");
    let skip = context_of(&failing, "Skip: broken");
    let abort = context_of(&failing, "Abort the rest");
    // Only the failed groups opened an incident thread.
    let opened = standin
        .until("the failed groups' incident threads", |s| {
            let opened = incidents(s);
            (opened.len() >= 2).then_some(opened)
        })
        .await;
    for group in ["flaky", "broken"] {
        assert!(
            opened
                .iter()
                .any(|o| o.contains(&format!("Failover of `{group}`: its incident thread"))),
            "{opened:?}"
        );
    }
    let flaky = evacuation::group(&t, &id, "flaky").await;
    assert_eq!(flaky["state"], "failed", "{flaky}");
    let run = flaky["run"].as_str().expect("flaky's run").to_string();
    t.wait_state(&run, "failed").await;

    // A signature made for one button does not open another.
    let forged = json!({
        "button": "evacuation_resume",
        "target": format!("{id}/broken"),
        "signature": resume["signature"],
    });
    let (status, body) = press_as(&t, "u-alice", "alice", "team-sre", &forged).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        evacuation::group(&t, &id, "broken").await["state"],
        "failed"
    );

    // Resume, from someone outside the team: refused and recorded, and nothing moves.
    let (status, refused) = press_as(&t, "u-mallory", "mallory", "team-dev", &resume).await;
    assert_eq!(status, 200, "{refused}");
    assert!(
        ephemeral(&refused).contains(&format!("@mallory may not do that: `resume {id} flaky`")),
        "{refused}"
    );
    assert_eq!(evacuation::group(&t, &id, "flaky").await["state"], "failed");
    let (_, still) = t.get(&format!("/api/v1/runs/{run}")).await;
    assert_eq!(still["state"], "failed", "{still}");
    let (_, refusals) = t.get("/api/v1/refusals").await;
    assert!(
        refusals["refusals"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["actor"] == "mattermost:u-mallory"),
        "{refusals}"
    );

    // Resume, from someone in it: the same run goes on, and its second attempt passes.
    let (status, resumed) = press_as(&t, "u-alice", "alice", "team-sre", &resume).await;
    assert_eq!(status, 200, "{resumed}");
    assert!(
        ephemeral(&resumed).contains(&format!("@alice resumed `flaky` in evacuation `{id}`")),
        "{resumed}"
    );
    evacuation::resumed(&t, &id, "flaky", &run, "mattermost:u-alice").await;

    // Skip asks why first, and skips nothing yet.
    let (_, asked) = press_as(&t, "u-alice", "alice", "team-sre", &skip).await;
    assert!(
        ephemeral(&asked).contains(&format!("`/dr skip {id} broken REASON`")),
        "{asked}"
    );
    assert_eq!(
        evacuation::group(&t, &id, "broken").await["state"],
        "failed"
    );
    assert_eq!(
        evacuation::group(&t, &id, "after-broken").await["state"],
        "held"
    );
    // The command as the answer gives it.
    let reason = "not needed in region b";
    let said = format!("skip {id} broken {reason}");
    let (status, skipped) = command(&t, COMMAND_TOKEN, "u-alice", "team-sre", &said).await;
    assert_eq!(status, 200, "{skipped}");
    assert_eq!(skipped["response_type"], "in_channel", "{skipped}");
    let skipped = skipped["text"].as_str().unwrap_or_default().to_string();
    assert!(
        skipped.contains(&format!("@alice skipped `broken` in evacuation `{id}`: ")),
        "{skipped}"
    );
    assert_eq!(
        evacuation::group(&t, &id, "broken").await["state"],
        "skipped"
    );

    // What was held goes on, and the card ends done, with no buttons left.
    let last = standin
        .until("the card to show the evacuation done", |s| {
            let (_, now) = evacuation_card(s, &id)?;
            shown(&now)
                .contains("✅ Evacuation: failover of 5 groups: done in")
                .then_some(now)
        })
        .await;
    let said = shown(&last);
    assert!(said.contains("4 succeeded · 1 skipped"), "{said}");
    assert!(buttons(&last).is_empty(), "{last}");
    let (_, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
    assert_eq!(e["state"], "succeeded", "{e}");
    let posted = standin
        .posts()
        .into_iter()
        .filter(|p| p.body["channel_id"] == "chan-evac")
        .count();
    assert_eq!(posted, 1, "the card is posted once, then edited");
    assert!(!standin.patches_of(&card).is_empty(), "edited in place");
    assert_eq!(
        incidents(&standin).len(),
        2,
        "no incident for the groups that went well, nor another for the resumed one"
    );

    // The Abort the card showed while groups waited, pressed now: nothing is left to abort.
    let (status, late) = press_as(&t, "u-alice", "alice", "team-sre", &abort).await;
    assert_eq!(status, 200, "{late}");
    assert!(
        ephemeral(&late).contains(&format!("Cannot abort evacuation `{id}`")),
        "{late}"
    );
    let (_, e) = t.get(&format!("/api/v1/evacuations/{id}")).await;
    assert_eq!(e["state"], "succeeded", "{e}");

    // The reason is recorded and said as the person gave it, not with the answer's flag.
    let broken = evacuation::group(&t, &id, "broken").await;
    assert_eq!(
        broken["note"],
        format!("skipped by mattermost:u-alice: {reason}"),
        "{broken}"
    );
    assert!(skipped.ends_with(&format!(": {reason}")), "{skipped}");
    t.shutdown().await;
}
