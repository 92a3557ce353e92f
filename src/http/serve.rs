//! Serving the router, with limits on how long a client may take: 10 s to send its request
//! headers (from the moment it connects), 30 s for the whole request. A client that sends
//! slowly, or connects and sends nothing, is cut off and holds nothing. HTTP/1.1 only:
//! every sender Lifeboat serves speaks it, and a protocol sniff or an HTTP/2 connection
//! would be one more thing a silent client could hold open.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
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

/// How long a client may take to send a whole request, its body included.
pub const WHOLE: Duration = Duration::from_secs(30);

/// Reads the request's body before the handler sees it, for at most `WHOLE`: a body still
/// arriving then gets 408 and nothing is done. Only the client is timed. A handler that
/// takes longer (a store failing over) still answers with what it did, so a 408 never
/// follows a run that was started.
pub async fn bounded(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    // `Bytes` keeps to the body limit set outside this layer (413 beyond it).
    let whole = Request::from_parts(parts.clone(), body);
    let body = match tokio::time::timeout(WHOLE, Bytes::from_request(whole, &())).await {
        Ok(Ok(body)) => body,
        Ok(Err(refused)) => {
            return ApiError::new(refused.status(), refused.body_text()).into_response();
        }
        Err(_) => {
            return ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "the request took longer than 30 s to arrive",
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
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

#[cfg(test)]
mod tests {
    use axum::routing::post;
    use hyper::service::Service;

    use super::*;

    /// The 30 s are the client's: a handler that takes longer answers what it did.
    #[tokio::test(start_paused = true)]
    async fn only_the_client_is_timed() {
        let router = Router::new()
            .route(
                "/slow",
                post(|body: String| async move {
                    tokio::time::sleep(WHOLE * 2).await;
                    format!("started {body}")
                }),
            )
            .layer(axum::middleware::from_fn(bounded))
            .layer(axum::extract::DefaultBodyLimit::max(16));
        let service = TowerToHyperService::new(router);
        let send = |body: &'static str| {
            let request = Request::post("/slow")
                .body(Body::from(body))
                .expect("a request");
            service.call(request)
        };
        let answer = send("run-1").await.expect("an answer");
        assert_eq!(answer.status(), 200);
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .expect("a body");
        assert_eq!(&body[..], b"started run-1");

        let answer = send("a body longer than the limit")
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 413);
    }
}
