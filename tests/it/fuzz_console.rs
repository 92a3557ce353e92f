//! The console's forms, fed arbitrary bytes after a valid form token by a signed-in user:
//! every form answers without a 5xx, and every refusal is a page that says why.

use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;

use crate::common::TestApp;
use crate::common::console::{OPS, Visitor, csrf, estate};
use crate::fuzz::{RUN, config};

struct Served {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    cookie: String,
    token: String,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (app, cookie, token) = runtime.block_on(async {
            let app = estate(|_| {}).await;
            let mut v = Visitor::new(&app);
            v.sign_in(OPS).await;
            let page = v.get("/groups/shop").await;
            let cookie = v.cookie.clone().expect("signed in");
            (app, cookie, csrf(&page.body))
        });
        Served {
            runtime,
            app,
            cookie,
            token,
        }
    })
}

const FORMS: [&str; 6] = [
    "/console/runs",
    "/console/runs/{RUN}/approve",
    "/console/runs/{RUN}/cancel",
    "/console/runs/{RUN}/stages/dial/skip",
    "/console/offers/{RUN}/veto",
    "/sign-out",
];

fn answers(path: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let s = served();
    let url = s.app.url(&path.replace("{RUN}", RUN));
    let (status, text) = s.runtime.block_on(async {
        let resp = s
            .app
            .client
            .post(url)
            .header("cookie", &s.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .timeout(Duration::from_secs(20))
            .body(body)
            .send()
            .await
            .expect("an answer");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    });
    prop_assert!(status < 500, "{path} answered {status}: {text}");
    if status >= 400 {
        prop_assert!(
            text.contains(r#"role="alert""#),
            "{path}: {status} with no reason: {text}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn every_console_form_answers_arbitrary_fields(
        form in 0..FORMS.len() - 1,
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let s = served();
        let body = [format!("csrf={}&", s.token).into_bytes(), bytes].concat();
        answers(FORMS[form], body)?;
    }
}

/// Signing out with arbitrary bytes and no form token keeps the session: the cases above
/// ran signed in, and the last form here still refuses without its token.
#[test]
fn sign_out_needs_its_form_token() {
    answers(FORMS[5], b"csrf=nope".to_vec()).expect("a refusal page");
    let s = served();
    let still = s.runtime.block_on(async {
        s.app
            .client
            .get(s.app.url("/agents"))
            .header("cookie", &s.cookie)
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    });
    assert_eq!(still, 200, "still signed in");
}
