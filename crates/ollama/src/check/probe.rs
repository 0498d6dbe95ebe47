//! Request helpers for checks: every call is bounded by the per-request timeout and
//! by what is left of the overall deadline.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CheckOptions, GenerationStats, millis};
use crate::client::{
    NdjsonStream, Wire, decode, expect_success, io_error, read_body, read_json, to_json,
};
use crate::error::Error;
use crate::stream::{LineReader, SseEvent, SseParser};
use crate::transport::{HttpResponse, Transport};
use crate::version::OllamaVersion;

/// Headers real clients of each family send; Ollama accepts and ignores the keys.
pub const OPENAI_HEADERS: &[(&str, &str)] = &[("authorization", "Bearer ollama")];
pub const ANTHROPIC_HEADERS: &[(&str, &str)] =
    &[("x-api-key", "ollama"), ("anthropic-version", "2023-06-01")];

/// JSON and tool calls need room to finish; a cut-off object would be a false failure.
pub const ROOMY_MAX_TOKENS: u32 = 256;
/// Room for a reasoning model's thinking before the answer.
pub const THINKING_ROOM_TOKENS: u32 = 4096;

pub(crate) struct Probe<'a> {
    transport: &'a dyn Transport,
    base_url: String,
    pub options: &'a CheckOptions,
    deadline: Instant,
    /// The model generations use, once known.
    pub model: Option<String>,
    /// An installed embedding model, for the embeddings checks.
    pub embedding_model: Option<String>,
    /// The chosen model thinks by default (`thinking` capability): checks turn
    /// thinking off where the version can, and leave room for it where not.
    pub thinks: bool,
    /// The server's version, once health passed.
    pub version: Option<OllamaVersion>,
}

/// A streamed response whose headers have arrived.
pub(crate) struct OpenStream {
    pub endpoint: String,
    pub response: HttpResponse,
    pub clock: StreamClock,
    pub timeout: Duration,
}

impl<'a> Probe<'a> {
    pub fn new(
        transport: &'a dyn Transport,
        base_url: String,
        options: &'a CheckOptions,
        deadline: Instant,
    ) -> Probe<'a> {
        Probe {
            transport,
            base_url,
            options,
            deadline,
            model: None,
            embedding_model: None,
            thinks: false,
            version: None,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model, for checks that declared `Needs::MODEL` (the runner guarantees it).
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or_default()
    }

    /// Whether the server is at least `version` (unknown counts as yes: a gate
    /// that cannot be judged should not turn a feature off).
    pub fn at_least(&self, version: &OllamaVersion) -> bool {
        self.version.as_ref().is_none_or(|v| v >= version)
    }

    /// Output budget for answers that must be complete (JSON, tool calls): a
    /// thinking model may think first even when asked not to (gpt-oss only knows
    /// levels), and a cut-off answer would be a false failure.
    pub fn roomy_tokens(&self) -> u32 {
        if self.thinks {
            THINKING_ROOM_TOKENS
        } else {
            ROOMY_MAX_TOKENS
        }
    }

    /// Time allowed for the next request.
    pub fn budget(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::DeadlineExceeded(self.options.overall_timeout));
        }
        Ok(left.min(self.options.request_timeout))
    }

    fn wire(&self) -> Wire<'_> {
        Wire {
            transport: self.transport,
            base_url: &self.base_url,
        }
    }

    fn send(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(HttpResponse, Duration), Error> {
        self.send_within(method, path, headers, body, Duration::MAX)
    }

    fn send_within(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<(HttpResponse, Duration), Error> {
        let timeout = self.budget()?.min(limit);
        let headers = headers.iter().map(|(n, v)| (*n, v.to_string())).collect();
        let response = self
            .wire()
            .send(method, path, headers, body, Some(timeout), None)?;
        Ok((response, timeout))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str, what: &'static str) -> Result<T, Error> {
        self.get_with(path, &[], what)
    }

    /// A GET that must answer within `limit` (connecting included), for the
    /// reachability probe: a silent address must not cost the whole request timeout.
    pub fn get_within<T: DeserializeOwned>(
        &self,
        path: &str,
        what: &'static str,
        limit: Duration,
    ) -> Result<T, Error> {
        let (response, timeout) = self.send_within("GET", path, &[], None, limit)?;
        read_json(&format!("GET {path}"), what, response, Some(timeout))
    }

    /// `host:port` of the server, for hints.
    pub fn address(&self) -> &str {
        let rest = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    pub fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
        what: &'static str,
    ) -> Result<T, Error> {
        let (response, timeout) = self.send("GET", path, headers, None)?;
        read_json(&format!("GET {path}"), what, response, Some(timeout))
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
        body: &impl Serialize,
        what: &'static str,
    ) -> Result<T, Error> {
        let (response, timeout) = self.send("POST", path, headers, Some(to_json(body)))?;
        read_json(&format!("POST {path}"), what, response, Some(timeout))
    }

    /// Any status is an answer here; returns it with the body.
    pub fn exchange(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), Error> {
        let (mut response, timeout) = self.send(method, path, headers, body)?;
        let body = read_body(&format!("{method} {path}"), &mut response, Some(timeout))?;
        Ok((response.status, body))
    }

    /// POSTs and waits for a 2xx streamed answer with the expected Content-Type.
    pub fn open_stream(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
        body: &impl Serialize,
        content_type: &str,
    ) -> Result<OpenStream, Error> {
        let endpoint = format!("POST {path}");
        let clock = StreamClock::start();
        let (response, timeout) = self.send("POST", path, headers, Some(to_json(body)))?;
        let response = expect_success(&endpoint, response, Some(timeout))?;
        let actual = response.content_type.clone().unwrap_or_default();
        if !actual.to_ascii_lowercase().starts_with(content_type) {
            return Err(Error::Contract {
                endpoint,
                message: format!("Content-Type is {actual:?}, expected {content_type}"),
            });
        }
        Ok(OpenStream {
            endpoint,
            response,
            clock,
            timeout,
        })
    }
}

impl OpenStream {
    pub fn ndjson<T: DeserializeOwned>(self) -> (NdjsonStream<T>, StreamClock, String) {
        let stream = NdjsonStream::new(&self.endpoint, self.response, self.timeout);
        (stream, self.clock, self.endpoint)
    }

    pub fn sse(self) -> (SseReader, StreamClock) {
        let reader = SseReader {
            endpoint: self.endpoint,
            lines: LineReader::new(self.response.body),
            parser: SseParser::new(),
            timeout: self.timeout,
        };
        (reader, self.clock)
    }
}

pub(crate) struct SseReader {
    pub endpoint: String,
    lines: LineReader<Box<dyn Read + Send>>,
    parser: SseParser,
    timeout: Duration,
}

impl SseReader {
    /// The next event; `None` when the connection ends cleanly.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, Error> {
        loop {
            let line = self
                .lines
                .next_line()
                .map_err(|e| io_error(&self.endpoint, e, Some(self.timeout)))?;
            let Some(line) = line else {
                return Ok(None);
            };
            if let Some(event) = self.parser.push_line(&line) {
                return Ok(Some(event));
            }
        }
    }

    pub fn decode<T: DeserializeOwned>(&self, what: &'static str, data: &str) -> Result<T, Error> {
        decode(&self.endpoint, what, data.as_bytes())
    }

    pub fn contract(&self, message: impl Into<String>) -> Error {
        Error::Contract {
            endpoint: self.endpoint.clone(),
            message: message.into(),
        }
    }

    pub fn ended(&self, expected: &'static str) -> Error {
        Error::StreamEnded {
            endpoint: self.endpoint.clone(),
            expected,
        }
    }
}

/// Measures time to first token and the streaming rate on the client side.
pub(crate) struct StreamClock {
    start: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    pieces: u64,
}

impl StreamClock {
    pub fn start() -> StreamClock {
        StreamClock {
            start: Instant::now(),
            first: None,
            last: None,
            pieces: 0,
        }
    }

    /// A chunk carrying output (text, thinking or a tool call) arrived.
    pub fn piece(&mut self) {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.pieces += 1;
    }

    pub fn pieces(&self) -> u64 {
        self.pieces
    }

    /// `server_tokens` is the server's own output count, when it gives one.
    pub fn stats(&self, server_tokens: Option<u64>) -> GenerationStats {
        let rate = match (self.first, self.last) {
            (Some(first), Some(last)) if self.pieces >= 2 && last > first => {
                Some((self.pieces - 1) as f64 / (last - first).as_secs_f64())
            }
            _ => None,
        };
        GenerationStats {
            ttft_ms: self.first.map(|f| millis(f - self.start)),
            output_tokens: server_tokens.or(Some(self.pieces)),
            tokens_per_second: rate.map(round1),
        }
    }
}

/// Stats for a non-streamed generation: tokens over the whole exchange.
pub(crate) fn whole_response_stats(
    tokens: Option<u64>,
    elapsed: Duration,
    server_rate: Option<f64>,
) -> GenerationStats {
    let rate = server_rate.or_else(|| {
        let secs = elapsed.as_secs_f64();
        tokens.filter(|_| secs > 0.0).map(|t| t as f64 / secs)
    });
    GenerationStats {
        ttft_ms: None,
        output_tokens: tokens,
        tokens_per_second: rate.map(round1),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Shorthand for a broken contract on `endpoint`.
pub(crate) fn contract(endpoint: &str, message: impl Into<String>) -> Error {
    Error::Contract {
        endpoint: endpoint.to_string(),
        message: message.into(),
    }
}
