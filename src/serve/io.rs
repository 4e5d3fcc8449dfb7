//! The connection's socket as hyper sees it: writes that make no progress for the write
//! timeout fail (a client that stops reading cannot hold a connection open), and the bodiless
//! answers hyper gives itself to a request it cannot parse (400, 414, 431) are given the JSON
//! error envelope every other error has. hyper offers no hook for those answers; they are
//! written alone just before hyper closes the connection, so they are recognised on the way
//! out: a head with status 400, 414 or 431 and `content-length: 0`, which the application
//! never sends (its errors always carry the envelope). Only the connection's first write is
//! looked at: later writes may be response bodies (a recording's bytes are the tenant's own
//! and could imitate such a head), and rewriting one would corrupt it. A request hyper cannot
//! parse after others on a kept-alive connection gets hyper's answer as it is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct Guarded<T> {
    inner: T,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// A rewritten answer still to be written, and how much of it is.
    pending: Vec<u8>,
    written: usize,
    /// Nothing has been written yet: the next write starts the first response.
    fresh: bool,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, write_timeout: Duration) -> Self {
        Guarded {
            inner,
            write_timeout,
            stalled: None,
            pending: Vec::new(),
            written: 0,
            fresh: true,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// Turns a `Pending` write into an error once no write has progressed for the timeout.
    fn stall<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading the response",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    /// Writes what is left of a rewritten answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let r = Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]);
            match self.stall(cx, r) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Poll::Ready(Err(e)) = this.drain(cx) {
            return Poll::Ready(Err(e));
        }
        if !this.pending.is_empty() {
            return Poll::Pending;
        }
        if let Some(answer) = this.fresh.then(|| with_envelope(buf)).flatten() {
            this.fresh = false;
            this.pending = answer;
            this.written = 0;
            return match this.drain(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                // Taken whole: the rest goes out in later writes and flushes.
                _ => Poll::Ready(Ok(buf.len())),
            };
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        let r = this.stall(cx, r);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.fresh = false;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.fresh || !self.pending.is_empty() {
            // The first response (or a rewritten one still going out): judged whole, as above.
            if total <= 512 {
                let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
                return self.poll_write(cx, &joined);
            }
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            if !self.pending.is_empty() {
                return Poll::Pending;
            }
        }
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let r = this.stall(cx, r);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.fresh = false;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper's own bodiless answer to a request it could not parse, with the envelope added.
fn with_envelope(buf: &[u8]) -> Option<Vec<u8>> {
    if buf.len() > 512 || !(buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.0 4")) {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    let (code, message) = match head.get(9..12)? {
        "400" => (
            "bad_request",
            "the request is not valid HTTP/1.1 (request line or headers)",
        ),
        "414" => (
            "uri_too_long",
            "the request target is longer than this server accepts; send long values in a body",
        ),
        "431" => (
            "headers_too_large",
            "the request headers are larger than this server accepts (64 KiB, 100 headers); send fewer or shorter ones",
        ),
        _ => return None,
    };
    let mut lines: Vec<&str> = head.split("\r\n").collect();
    let at = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    let length = format!("content-length: {}", body.len());
    lines[at] = &length;
    lines.insert(at, "content-type: application/json");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_parse_error_answers_get_the_envelope_and_nothing_else_is_touched() {
        let raw = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = with_envelope(raw).map(|b| String::from_utf8_lossy(&b).to_string());
        let out = out.unwrap_or_default();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains("content-type: application/json\r\ncontent-length: "),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert_eq!(
            head.split("content-length: ")
                .nth(1)
                .and_then(|l| l.split("\r\n").next()),
            Some(body.len().to_string().as_str())
        );
        // An answer of the application's, or one with a body, passes as it is.
        assert!(with_envelope(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            with_envelope(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}").is_none()
        );
        assert!(with_envelope(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    #[tokio::test]
    async fn only_the_first_write_of_a_connection_is_ever_rewritten() {
        use tokio::io::AsyncWriteExt;
        let lookalike: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        // A body chunk that imitates hyper's answer, after a real head, passes untouched.
        let mut later = Guarded::new(Vec::new(), Duration::from_secs(1));
        let head: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 46\r\n\r\n";
        assert!(later.write_all(head).await.is_ok());
        assert!(later.write_all(lookalike).await.is_ok());
        assert!(later.flush().await.is_ok());
        assert_eq!(later.inner, [head, lookalike].concat());
        // On a fresh connection it is hyper's own answer, and gets the envelope.
        let mut first = Guarded::new(Vec::new(), Duration::from_secs(1));
        assert!(first.write_all(lookalike).await.is_ok());
        assert!(first.flush().await.is_ok());
        let out = String::from_utf8_lossy(&first.inner).to_string();
        assert!(out.ends_with(r#"{"error":{"code":"bad_request","message":"the request is not valid HTTP/1.1 (request line or headers)"}}"#), "{out}");
    }
}
