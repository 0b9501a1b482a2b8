//! The bound on streaming responses (`/nar/…`, `/ipfs/…`): at most
//! [`Options::max_streams`](crate::Options::max_streams) in flight. A request over the
//! bound waits up to [`Options::queue_wait`](crate::Options::queue_wait) for one to end,
//! then gets `503 Service Unavailable` with `Retry-After`. The permit lives in the
//! response body, so it is held until the body has been sent or dropped (a stalled
//! client's, by [`crate::stall`]), not merely until the handler returns.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;

use crate::{text, AppState};

/// Middleware: runs the request under a stream permit, or answers 503.
pub async fn limit(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let wait = st.options.queue_wait;
    let permit = match tokio::time::timeout(wait, st.streams.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        // Timed out (or the semaphore closed, which it never is).
        _ => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "all {} streams are busy; try again later\n",
                    st.options.max_streams
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    next.run(req).await.map(|body| {
        Body::new(Permitted {
            body,
            _permit: permit,
        })
    })
}

/// A body holding its stream permit until it is dropped.
struct Permitted {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for Permitted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
