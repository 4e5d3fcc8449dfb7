//! `GET /v1/tenants/{tid}/integrations/{iid}/stream`: a `stream` integration's events, live,
//! over WebSocket (or Server-Sent Events with `Accept: text/event-stream`). Every message is a
//! JSON object with a `cursor`; events carry the payload rendered as the integration's profile
//! and privacy rules say. `?cursor=` (or SSE's `Last-Event-ID`) resumes after a cursor.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

mod guard;

pub use guard::{close, Credential};
use guard::{current, Wake, Watched, GONE};

use super::common::*;
use crate::api::AppState;
use crate::auth::Principal;
use crate::cache::Integration;
use crate::deliver::stream::{Progression, Reader, Slot, Step};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::render::RenderContext;
use crate::store::{Cursor, TailItem};

/// The largest message a client may send (it sends none the stream reads; pings and closes).
const MAX_INCOMING: usize = 4096;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamQuery {
    /// Resume after this cursor (the last one received).
    cursor: Option<String>,
}

/// A stream of the integration's events.
#[utoipa::path(get, path = "/v1/tenants/{tid}/integrations/{iid}/stream", tag = "integrations",
    params(("tid" = String, Path), ("iid" = String, Path), StreamQuery),
    responses((status = 101, description = "WebSocket: one JSON text message per event, `{cursor, event_type, event_id, payload}`, and `{cursor, live: true}` once caught up"),
              (status = 200, description = "Server-Sent Events (`Accept: text/event-stream`): the same objects, `id` the cursor", content_type = "text/event-stream"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 406, body = ErrorBody), (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn stream(
    State(s): State<AppState>,
    p: Principal,
    Path(params): Path<Params>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let token = crate::state::api_token(&headers).unwrap_or_default();
    open(s, p, Credential::Token(token), params, q, &headers, ws).await
}

/// Opens the stream for `p`, who came with `credential` (an API token, or the console's
/// session): it ends once that no longer stands.
pub(crate) async fn open(
    s: AppState,
    p: Principal,
    credential: Credential,
    params: Params,
    q: StreamQuery,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let (_owner, i) = owned(&s, &p, &params).await?;
    if !i.valid.spec.destination.is_stream() {
        return Err(ApiError::conflict(
            "not_a_stream",
            format!(
                "integration `{}` delivers to its {} destination; create one with \"destination\": {{\"type\": \"stream\"}} to read events here",
                i.id,
                i.valid.spec.destination.as_str()
            ),
        ));
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    // A browser's EventSource reconnects to the same URL with the last id it saw: that is the
    // newer position.
    let resume = match last_event_id.or(q.cursor.as_deref()) {
        None => None,
        Some(c) => Some(c.parse::<Cursor>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                format!(
                    "`cursor` `{}` is not a cursor this stream gave; send the last `cursor` received, or none to start from now",
                    c.chars().take(40).collect::<String>()
                ),
            )
        })?),
    };
    let tenant = i.tenant_id.clone().unwrap_or_default();
    let Some(slot) = s.streams.admit(&tenant) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "tenant `{tenant}` has {} streams open on this node (or the node {}); close one first or connect to another node",
                crate::deliver::stream::MAX_PER_TENANT,
                crate::deliver::stream::MAX_PER_NODE
            ),
        ));
    };
    let reader = Reader::open(&s.streams, &tenant, resume).await?;
    // Subscribed before the response: a withdrawal from here on is seen.
    let watched = Watched {
        tenant: tenant.clone(),
        iid: i.id.clone(),
        credential,
        withdrawals: s.tokens.withdrawals(),
    };
    let run = Run {
        s: s.clone(),
        iid: i.id.clone(),
        reader,
        progression: Progression::default(),
    };
    if let Ok(ws) = ws {
        return Ok(ws
            .max_message_size(MAX_INCOMING)
            .max_frame_size(MAX_INCOMING)
            .on_upgrade(move |socket| run.websocket(socket, watched, slot)));
    }
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !wants_sse {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "stream_protocol",
            "connect with WebSocket (Upgrade: websocket), or ask for Server-Sent Events with Accept: text/event-stream",
        ));
    }
    Ok(run.sse(watched, slot).into_response())
}

/// One open stream.
struct Run {
    s: AppState,
    iid: String,
    reader: Reader,
    progression: Progression,
}

/// What to tell the client next.
enum Out {
    Text(String),
    Close(u16, String),
}

impl Run {
    /// The next message: an event the integration takes (rendered), the live marker, or why
    /// the stream ends.
    async fn next(&mut self) -> Out {
        loop {
            let step = match self.reader.next().await {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(error = %e, integration = %self.iid, "live stream: reading the event log");
                    return Out::Close(
                        close::ERROR,
                        format!(
                            "the event log could not be read; reconnect with cursor {}",
                            self.reader.cursor()
                        ),
                    );
                }
            };
            let item = match step {
                Step::Event(item) => item,
                Step::Live(at) => return Out::Text(format!(r#"{{"cursor":"{at}","live":true}}"#)),
                Step::Closed => {
                    return Out::Close(
                        close::GOING_AWAY,
                        format!(
                            "the node is stopping; reconnect with cursor {}",
                            self.reader.cursor()
                        ),
                    )
                }
            };
            // The integration as it is now: an edit applies to the next event.
            let Some(i) = self.current() else {
                return Out::Close(close::GONE, GONE.into());
            };
            if let Some(text) = self.render(&i, &item) {
                return Out::Text(text);
            }
        }
    }

    /// The integration, while it exists and is a stream.
    fn current(&self) -> Option<Arc<Integration>> {
        current(&self.s, &self.iid)
    }

    /// The message for `item` if the integration takes it.
    fn render(&mut self, i: &Integration, item: &TailItem) -> Option<String> {
        let event = &item.event.event;
        let trigger = crate::route::route(event, &i.valid)?;
        if !self.progression.advances(event) {
            return None;
        }
        let cursor = item.cursor.to_string();
        let ctx = RenderContext {
            integration_id: &i.id,
            delivery_id: &cursor,
            trigger,
            custom_data: None,
            links: Some(&self.s.links),
            now_ms: self.s.now_ms(),
            cache: None,
        };
        let head = format!(
            r#"{{"cursor":"{cursor}","event_type":"{}","event_id":{}"#,
            trigger.as_str(),
            serde_json::Value::String(event.id.clone())
        );
        Some(match crate::render::render(&item.event, &i.valid, &ctx) {
            Ok(r) => format!(r#"{head},"payload":{}}}"#, String::from_utf8_lossy(&r.body)),
            Err(e) => format!(
                r#"{head},"error":{}}}"#,
                serde_json::Value::String(e.to_string())
            ),
        })
    }

    /// Runs the reader in a task of its own, one message ahead of the client: nothing else
    /// the connection does interrupts a read of the store half-way (which would start it again,
    /// and again). Each message comes with the position after it.
    fn produce(mut self) -> (mpsc::Receiver<(Out, Cursor)>, AbortOnDropHandle<()>) {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            loop {
                let out = self.next().await;
                let last = matches!(out, Out::Close(..));
                if tx.send((out, self.reader.cursor())).await.is_err() || last {
                    break;
                }
            }
        });
        (rx, AbortOnDropHandle::new(task))
    }

    /// `slot`, the stream's place in the node's limits, is given up before the socket closes:
    /// a client that saw its stream end may open another at once.
    async fn websocket(self, mut socket: WebSocket, watched: Watched, slot: Slot) {
        let _slot = slot;
        // How long a message may wait for the client to take it (its socket's buffers full):
        // then it is a slow consumer.
        let send_timeout = Duration::from_millis(self.s.config.stream_send_timeout_ms.max(1));
        let linger = Duration::from_millis(self.s.config.write_timeout_ms.max(1));
        let stop = self.s.streams.stopping();
        let (mut wakes, _guard) = guard::watch(self.s.clone(), watched);
        // The last position the socket took: a message that timed out may never arrive, so a
        // slow consumer resumes from before it (and may get it twice, never not at all).
        let mut taken = self.reader.cursor();
        let (mut rx, _producer) = self.produce();
        let mut unanswered = 0u32;
        let out = loop {
            // In this order: the end of the stream (withdrawn access, the node stopping) and the
            // client's frames are never kept waiting behind a reader that always has more.
            tokio::select! {
                biased;
                _ = stop.cancelled() => break Some(Out::Close(close::GOING_AWAY, format!("the node is stopping; reconnect with cursor {taken}"))),
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Pong(_))) => unanswered = 0,
                    Some(Ok(Message::Text(_))) | Some(Ok(Message::Binary(_))) => break Some(Out::Close(
                        close::POLICY,
                        format!("a stream takes no messages; reconnect with cursor {taken}"),
                    )),
                    Some(Ok(Message::Ping(_))) => {}
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                },
                wake = wakes.recv() => match wake {
                    Some(Wake::Ping) => {
                        unanswered += 1;
                        if unanswered > 2 {
                            break None;
                        }
                        let sent = tokio::time::timeout(send_timeout, socket.send(Message::Ping(Default::default()))).await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break None;
                        }
                    }
                    Some(Wake::End(code, reason)) => break Some(Out::Close(code, reason.into())),
                    // The watch stopped (it never does on its own): no stream goes on unwatched.
                    None => break None,
                },
                got = rx.recv() => match got {
                    Some((Out::Text(text), at)) => {
                        match tokio::time::timeout(send_timeout, socket.send(Message::Text(text.into()))).await {
                            Ok(Ok(())) => taken = at,
                            Ok(Err(_)) => break None,
                            Err(_) => break Some(Out::Close(
                                close::SLOW_CONSUMER,
                                format!("slow consumer: a message waited {} ms to be taken; reconnect with cursor {taken}", send_timeout.as_millis()),
                            )),
                        }
                    }
                    Some((close @ Out::Close(..), _)) => break Some(close),
                    None => break None,
                },
            }
        };
        if let Some(Out::Close(code, reason)) = out {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // Queued behind what the socket still holds: a slow client that is still reading gets
            // it after the rest (up to the write timeout), then its answer is awaited, so the
            // frame is not lost to a reset. A client that reads nothing at all is dropped then.
            let closing = async {
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    while let Some(Ok(m)) = socket.recv().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(linger, closing).await;
        }
    }

    /// Server-Sent Events: the same messages, each with its cursor as `id`; why the stream
    /// ended as a last `close` event with the code a WebSocket would get.
    fn sse(self, watched: Watched, slot: Slot) -> impl IntoResponse {
        let (wakes, guard) = guard::watch(self.s.clone(), watched);
        let state = SseState {
            stop: self.s.streams.stopping(),
            at: self.reader.cursor(),
            wakes,
            _guard: guard,
            _slot: slot,
            produced: self.produce(),
        };
        let events = futures::stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            let out = loop {
                tokio::select! {
                    biased;
                    _ = st.stop.cancelled() => break Out::Close(close::GOING_AWAY, format!("the node is stopping; reconnect with cursor {}", st.at)),
                    wake = st.wakes.recv() => match wake {
                        // The response's keep-alive comments do the pinging.
                        Some(Wake::Ping) => continue,
                        Some(Wake::End(code, reason)) => break Out::Close(code, reason.into()),
                        None => return None,
                    },
                    got = st.produced.0.recv() => match got {
                        Some((Out::Text(text), at)) => {
                            st.at = at;
                            break Out::Text(text);
                        }
                        Some((close, _)) => break close,
                        None => return None,
                    },
                }
            };
            match out {
                Out::Text(text) => {
                    let event = SseEvent::default().id(st.at.to_string()).data(text);
                    Some((Ok::<_, std::convert::Infallible>(event), Some(st)))
                }
                Out::Close(code, reason) => {
                    let data = serde_json::json!({"code": code, "reason": reason}).to_string();
                    Some((Ok(SseEvent::default().event("close").data(data)), None))
                }
            }
        });
        Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    }
}

/// An SSE response's side of a stream: the reader's messages, the guard's, the node stopping.
struct SseState {
    stop: tokio_util::sync::CancellationToken,
    at: Cursor,
    wakes: mpsc::Receiver<Wake>,
    _guard: AbortOnDropHandle<()>,
    _slot: Slot,
    produced: (mpsc::Receiver<(Out, Cursor)>, AbortOnDropHandle<()>),
}
