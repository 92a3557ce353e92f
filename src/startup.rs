//! Start-up, written once for `lifeboat serve`, the demo and the tests: the app from its
//! settings, its HTTP API on a bound listener, and the address it got (port 0 picks a free
//! one).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{App, Options};
use crate::config::Settings;
use crate::http;

/// How long requests in flight may take to finish when the service stops.
const DRAIN: Duration = Duration::from_secs(10);

pub struct Service {
    /// Where the HTTP API answers.
    pub addr: SocketAddr,
    pub app: App,
    /// Stops the listener and ends the event streams.
    stop: CancellationToken,
    server: JoinHandle<()>,
    /// Reads the events topic for `GET /api/v1/events` and the console.
    feed: JoinHandle<()>,
    /// Starts the groups' scheduled drills.
    drills: Option<JoinHandle<()>>,
    /// Moves evacuations on.
    evacuations: JoinHandle<()>,
}

impl Service {
    /// Refuses an open API on a public address, binds `settings.listen`, starts the app,
    /// and serves the HTTP API.
    pub async fn start(settings: &Settings, options: Options) -> anyhow::Result<Service> {
        http::check_exposure(settings.listen, &settings.api_tokens, &settings.alerts.open)?;
        // Before the listener: a second `serve` on a locked store is told who holds it,
        // not that the address is taken.
        let mut store_lock = crate::app::lock_store(settings, None)?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let addr = listener.local_addr()?;
        if let Some(lock) = &mut store_lock {
            lock.write(&crate::app::holder(Some(addr)))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", lock.path.display()))?;
        }
        let options = Options {
            store_lock,
            ..options
        };
        let app = App::start(settings, options).await?;
        // Dates a change to what a group runs from the first replica that ran with it.
        crate::readiness::note_versions(
            &app.store,
            app.orchestrator.catalog(),
            app.orchestrator.clock().now_ms(),
        )
        .await?;
        let mut state = http::AppState::new(&app, settings.api_tokens.clone());
        state.https = settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let feed = state.feed.start(app.bus.clone(), &app.instance);
        // Groups with a `drill:` schedule are drilled by whichever replica takes each
        // time; a `lifeboat run` in a terminal drills nothing.
        let drills = crate::schedule::spawn(app.orchestrator.clone(), app.store.clone());
        let evacuations = crate::evacuation::spawn(app.orchestrator.clone(), app.store.clone());
        let stop = state.closing.clone();
        let router = http::router(state, app.chat_routes.clone());
        let stopped = stop.clone();
        let server = tokio::spawn(http::serve::serve(listener, router, stopped, DRAIN));
        Ok(Service {
            addr,
            app,
            stop,
            server,
            feed,
            drills,
            evacuations,
        })
    }

    /// The base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `signal`, then stops; an HTTP server that fails first is an error.
    pub async fn serve_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => {
                self.stop().await;
                Ok(())
            }
            ended = &mut self.server => {
                self.feed.abort();
                self.evacuations.abort();
                if let Some(d) = &self.drills {
                    d.abort();
                }
                self.app.shutdown().await;
                match ended {
                    Ok(()) => anyhow::bail!("the HTTP server stopped by itself"),
                    Err(e) => Err(anyhow::anyhow!("the HTTP server task failed: {e}")),
                }
            }
        }
    }

    /// Stops serving (requests in flight get a moment to finish), then the app's tasks;
    /// stored state stays for the next start.
    pub async fn stop(self) {
        self.stop.cancel();
        let mut server = self.server;
        // The server drains for DRAIN itself; a moment more before it is cut off.
        match tokio::time::timeout(DRAIN + Duration::from_secs(1), &mut server).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "The HTTP server task failed."),
            Err(_) => {
                tracing::warn!("Requests still in flight after the drain period; closing them.");
                server.abort();
            }
        }
        self.feed.abort();
        self.evacuations.abort();
        if let Some(d) = &self.drills {
            d.abort();
        }
        self.app.shutdown().await;
    }
}
