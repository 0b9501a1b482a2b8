//! `--access-log`: one line per request on stderr, `narfs: access: METHOD PATH
//! STATUS`, written when the response head is ready (a streamed body may still fail
//! after it). What an operator reads to see who asked for what, and what a test reads
//! to check which requests a server answered (e.g. that a publisher behind a
//! substituter proxy was never asked for a NAR). The query string is left out: no
//! route reads one but `/ipfs/`, whose parameters say only the format.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: logs the request once its response head is ready.
pub async fn log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = next.run(req).await;
    eprintln!(
        "narfs: access: {method} {} {}",
        path.escape_debug(),
        response.status().as_u16()
    );
    response
}
