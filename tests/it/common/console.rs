//! The console's test estate: a group `shop` whose run waits at a gate, then fails at a
//! stage a person skips; a group `other` that only `ci` may act on; a countdown route;
//! and tokens for an operator, a read-only viewer and a CI token. And a cookie-keeping
//! client that signs in and posts forms as a browser does, without a browser.

use lifeboat::config::ApiToken;
use reqwest::redirect::Policy;

use super::{TestApp, spawn_configured};

pub const OPS: &str = "console-ops-0123456789";
pub const VIEWER: &str = "console-viewer-0123456789";
pub const CI: &str = "console-ci-0123456789";

pub const SHOP: &str = r#"
name: shop
params:
  to: { default: region-b, enum: [region-a, region-b] }
stages:
  scale:
    agent: capacity
    spec: { cluster: k8s, namespace: shop, replicas: 3, duration: 400ms }
  dial:
    agent: dial
    approval: required
    after: [scale]
    spec: { endpoint: shop.example.com, region: "${to}", duration: 400ms }
  broken:
    agent: exec
    after: [dial]
    spec: { command: [/nonexistent/lifeboat-console-fix] }
  last:
    agent: capacity
    after: [broken]
    spec: { cluster: k8s, namespace: shop, replicas: 1, duration: 10ms }
"#;

pub const GROUPS: &str = r#"
groups:
  shop:
    description: The pet shop
    services: [shop-web, shop-db]
    workflows: { failover: shop }
    allow: { api: [ops, viewer] }
    people:
      alice: { api: ops }
  other:
    workflows: { failover: shop }
    allow: { api: [ci] }
"#;

pub const ROUTES: &str = r#"
routes:
  - name: shop-countdown
    match: { alertname: RegionDown }
    group: shop
    mode: countdown
    delay: 1h
"#;

/// The estate, served with these tokens and open Alertmanager webhooks (loopback).
pub async fn estate(configure: impl FnOnce(&mut lifeboat::config::Settings)) -> TestApp {
    spawn_configured(
        &[
            ("shop.yaml", SHOP),
            ("groups.yaml", GROUPS),
            ("routes.yaml", ROUTES),
        ],
        &[("ops", OPS)],
        Default::default(),
        |s| {
            s.api_tokens = vec![
                ApiToken::new("ops", OPS),
                ApiToken::read_only("viewer", VIEWER),
                ApiToken::new("ci", CI),
            ];
            s.alerts.open = vec!["alertmanager".into()];
            configure(s);
        },
    )
    .await
}

/// A browser without a browser: keeps the session cookie, follows no redirect.
pub struct Visitor {
    base: String,
    client: reqwest::Client,
    pub cookie: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Visitor {
    pub fn new(t: &TestApp) -> Visitor {
        Visitor {
            base: t.url(""),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("a client"),
            cookie: None,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", c),
            None => req,
        };
        let resp = req.send().await.expect("a request");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        Answer {
            status: resp.status().as_u16(),
            location,
            set_cookie,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }

    /// Signs in with `token`; the answer, with the cookie kept when one was set.
    pub async fn sign_in(&mut self, token: &str) -> Answer {
        let answer = self.post("/sign-in", &[("token", token)]).await;
        if let Some(set) = &answer.set_cookie {
            self.cookie = set.split(';').next().map(str::to_string);
        }
        answer
    }
}

/// The form token a page carries.
pub fn csrf(html: &str) -> String {
    let at = html
        .find(r#"name="csrf" value=""#)
        .unwrap_or_else(|| panic!("no form token in the page:\n{html}"));
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').expect("the token ends")].to_string()
}
