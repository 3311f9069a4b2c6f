//! Server-Sent Events, read by hand: a sans-IO parser of the
//! `text/event-stream` format, and a stream over it that reconnects with
//! `Last-Event-ID` when the connection drops.

use std::time::Duration;

use futures_util::StreamExt;

use super::{Client, ClientError};

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// The `text/event-stream` parser: feed it bytes as they come, in chunks of
/// any size, and it returns the events they complete. Comments (`: heartbeat`)
/// and `retry:` are read and ignored.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of a line not yet complete.
    line: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// The id of the last whole event, which a reconnect sends as
    /// `Last-Event-ID`.
    last_id: Option<String>,
    /// The previous chunk ended in `\r`: a `\n` right after it is part of
    /// the same line end.
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id a reconnect should resume after.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Drops a partial event (the connection broke in the middle of it);
    /// keeps the last id.
    pub fn interrupt(&mut self) {
        self.line.clear();
        self.event = None;
        self.id = None;
        self.data = None;
        self.after_cr = false;
    }

    /// Reads `bytes`; returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&String::from_utf8_lossy(&line)) {
                        out.push(e);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            let id = self.id.take();
            // An event without data is not dispatched (the format's rule).
            let data = self.data.take()?;
            // A reconnect resumes after the last event received whole.
            if id.is_some() {
                self.last_id.clone_from(&id);
            }
            return Some(SseEvent {
                event: event.unwrap_or_else(|| "message".into()),
                id,
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => {
                self.id = Some(value.to_string());
            }
            _ => {}
        }
        None
    }
}

/// What [`EventStream::next`] returns besides events.
#[derive(Debug)]
pub enum StreamItem {
    Event(SseEvent),
    /// The connection dropped; the stream reconnects after this pause.
    Reconnecting(Duration, String),
    /// Connected again (with `Last-Event-ID` when there was one).
    Reconnected,
}

/// The first pause before a reconnect, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The body of a live connection, chunk by chunk.
type Body = futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>;

/// The live stream of a subtree: events in order across reconnects.
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    glob: String,
    parser: SseParser,
    body: Option<BodyDebug>,
    pending: std::collections::VecDeque<SseEvent>,
    backoff: Duration,
}

/// [`Body`] with a `Debug` that says what it is.
struct BodyDebug(Body);

impl std::fmt::Debug for BodyDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Body")
    }
}

impl EventStream {
    /// Connects to `/api/stream?path=GLOB`. An unreachable node or an API
    /// error is an error here; later drops reconnect.
    pub async fn connect(client: &Client, glob: &str) -> Result<EventStream, ClientError> {
        let mut s = EventStream {
            client: client.clone(),
            glob: glob.to_string(),
            parser: SseParser::new(),
            body: None,
            pending: Default::default(),
            backoff: FIRST_BACKOFF,
        };
        s.body = Some(BodyDebug(s.open().await?));
        Ok(s)
    }

    async fn open(&self) -> Result<Body, ClientError> {
        let resp = self
            .client
            .open_stream(&self.glob, self.parser.last_id())
            .await?;
        Ok(resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed())
    }

    /// The next event, or a note that the connection dropped and is being
    /// restored. Errors only for what a reconnect cannot mend: the node
    /// refusing the request (a token removed, a scope changed).
    pub async fn next(&mut self) -> Result<StreamItem, ClientError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(StreamItem::Event(e));
            }
            let Some(body) = &mut self.body else {
                tokio::time::sleep(self.backoff).await;
                match self.open().await {
                    Ok(b) => {
                        self.body = Some(BodyDebug(b));
                        self.backoff = FIRST_BACKOFF;
                        return Ok(StreamItem::Reconnected);
                    }
                    Err(e @ ClientError::Api { .. }) => return Err(e),
                    Err(e) => {
                        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                        return Ok(StreamItem::Reconnecting(self.backoff, e.to_string()));
                    }
                }
            };
            match body.0.next().await {
                Some(Ok(chunk)) => self.pending.extend(self.parser.feed(&chunk)),
                end => {
                    let why = match end {
                        Some(Err(e)) => format!("the connection broke: {e}"),
                        _ => "the node closed the stream".to_string(),
                    };
                    self.parser.interrupt();
                    self.body = None;
                    return Ok(StreamItem::Reconnecting(self.backoff, why));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, id: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            id: id.map(str::to_string),
            data: data.into(),
        }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let mut p = SseParser::new();
        let text = ": heartbeat\n\nevent: state\nid: 1f.7\ndata: {\"a\":1}\n\n\
                    data: one\ndata:two\n\nevent: reset\ndata: {}\n\n";
        let got = p.feed(text.as_bytes());
        assert_eq!(
            got,
            vec![
                ev("state", Some("1f.7"), "{\"a\":1}"),
                ev("message", None, "one\ntwo"),
                ev("reset", None, "{}"),
            ]
        );
        assert_eq!(p.last_id(), Some("1f.7"));
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_events() {
        let text = "event: alarm\r\nid: 2.1\r\ndata: {\"x\":\"é\"}\r\n\r\nevent: state\rid: 2.2\rdata: 1\r\r";
        let whole = SseParser::new().feed(text.as_bytes());
        assert_eq!(whole.len(), 2);
        let bytes = text.as_bytes();
        for at in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut got = p.feed(&bytes[..at]);
            got.extend(p.feed(&bytes[at..]));
            assert_eq!(got, whole, "split at {at}");
            assert_eq!(p.last_id(), Some("2.2"));
        }
    }

    #[test]
    fn an_interrupted_event_is_dropped_and_resumes_after_the_last_whole_one() {
        let mut p = SseParser::new();
        assert_eq!(
            p.feed(b"id: 3.1\ndata: a\n\nevent: state\nid: 3.2\ndata: {\"pa")
                .len(),
            1
        );
        p.interrupt();
        assert_eq!(p.last_id(), Some("3.1"));
        assert_eq!(
            p.feed(b"event: state\ndata: b\n\n"),
            vec![ev("state", None, "b")]
        );
    }
}
