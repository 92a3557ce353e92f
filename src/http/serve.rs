//! Serving the router, with limits on how long a client may take: 10 s to send its request
//! headers (from the moment it connects), 30 s for the whole request. A client that sends
//! slowly, or connects and sends nothing, is cut off and holds nothing. HTTP/1.1 only:
//! every sender Lifeboat serves speaks it, and a protocol sniff or an HTTP/2 connection
//! would be one more thing a silent client could hold open.

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::ApiError;

/// How long a client may take to send its request's headers.
pub const HEADERS: Duration = Duration::from_secs(10);

/// How long a request may take, its body and the answer included.
pub const WHOLE: Duration = Duration::from_secs(30);

/// Ends a request that takes longer than `WHOLE`: 408, and the work it waited for stops.
pub async fn bounded(request: Request, next: Next) -> Response {
    match tokio::time::timeout(WHOLE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "the request took longer than 30 s",
        )
        .into_response(),
    }
}

/// Serves `router` on `listener` until `stop`, then lets requests in flight finish for at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    drain: Duration,
) {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADERS);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: the next accept may do better.
                    tracing::warn!(error = %e, "Could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away, or is cut off, ends only its own connection.
            let _ = connection.await;
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {}
    }
}
