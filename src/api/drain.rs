//! Reading what is left of a request body that no handler read, before the answer goes out.
//!
//! Many answers are decided without the body: a bad name or digest, an unknown upload, a
//! chunk out of order, 401/403, a 413 by Content-Length. If the worker answers and leaves the
//! body unread, the runtime closes the connection: a keep-alive client (Go's net/http, Python's
//! http.client) that sends its whole body before reading gets a reset or a broken pipe instead of
//! the answer, and cannot even learn where to resume an upload. So the entry point calls
//! [`unread_body`] on every request: the rest of the body is streamed through JS and discarded
//! (never buffered, never copied into wasm), up to [`limit`] bytes; past that the connection may
//! close, after the answer. A handler that stops reading a body midway (an error mid-chunk)
//! releases its reader, so the rest is drained the same way.

/// How much of an unread body is read to keep the connection: twice the request-body ceiling,
/// and at least twice the platform's 100 MB, so the 413 for a body just over the ceiling reaches
/// the client too.
pub fn limit(max_body: u64) -> u64 {
    max_body.max(crate::app::DEFAULT_MAX_BODY).saturating_mul(2)
}

/// Reads and discards the rest of `request`'s body, if a handler left any (see the module doc).
pub async fn unread_body(request: &web_sys::Request, limit: u64) {
    // Most requests (every pull) have no body: no call into JS for them.
    if request.body().is_none() {
        return;
    }
    if crate::storage::r2::discard_body(request, limit).await.is_none() {
        worker::console_warn!("request body longer than {limit} bytes left unread; the connection will close");
    }
}
