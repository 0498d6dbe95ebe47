//! A small synchronous Ollama client for `sovereign server status/warm` and the check.

use std::io::{self, Read};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::stream::{LineReader, read_limited};
use crate::transport::{HttpRequest, HttpResponse, Transport, TransportError, UreqTransport};
use crate::types::native::{
    GenerateRequest, GenerateResponse, KeepAlive, PsResponse, PullProgress, PullRequest,
    ShowRequest, ShowResponse, TagsResponse, VersionResponse,
};

/// Ollama's port when a URL names none.
pub const DEFAULT_PORT: u16 = 11434;
/// Bodies larger than this are not what any endpoint here returns.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
    base_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `url` may be `host`, `host:port` or `http://host:port[/prefix]`.
    pub fn new(url: &str) -> Result<Client, Error> {
        Client::with_transport(url, Arc::new(UreqTransport::new()))
    }

    pub fn with_transport(url: &str, transport: Arc<dyn Transport>) -> Result<Client, Error> {
        Ok(Client {
            transport,
            base_url: normalize_base_url(url)?,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Per-request budget; for `pull` it bounds the silence between progress lines instead.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn version(&self) -> Result<VersionResponse, Error> {
        self.get("/api/version", "version response")
    }

    pub fn tags(&self) -> Result<TagsResponse, Error> {
        self.get("/api/tags", "model list")
    }

    pub fn ps(&self) -> Result<PsResponse, Error> {
        self.get("/api/ps", "running-model list")
    }

    pub fn show(&self, model: &str) -> Result<ShowResponse, Error> {
        let request = ShowRequest {
            model: model.to_string(),
        };
        self.post("/api/show", &request, "model description")
    }

    /// Pulls `model`, calling `on_progress` for every progress line as it arrives.
    pub fn pull(
        &self,
        model: &str,
        mut on_progress: impl FnMut(&PullProgress),
    ) -> Result<(), Error> {
        let endpoint = "POST /api/pull";
        let body = PullRequest {
            model: model.to_string(),
            stream: true,
        };
        let response = self.wire().send(
            "POST",
            "/api/pull",
            Vec::new(),
            Some(to_json(&body)),
            None,
            Some(self.timeout),
        )?;
        let response = expect_success(endpoint, response, Some(self.timeout))?;
        let mut lines: NdjsonStream<PullProgress> =
            NdjsonStream::new(endpoint, response, self.timeout);
        let mut last_status = None;
        while let Some(progress) = lines.next_item()? {
            on_progress(&progress);
            last_status = Some(progress.status);
        }
        match last_status.as_deref() {
            Some("success") => Ok(()),
            _ => Err(Error::StreamEnded {
                endpoint: endpoint.into(),
                expected: "status \"success\"",
            }),
        }
    }

    /// A non-streamed generation (`stream` is forced off).
    pub fn generate(&self, request: &GenerateRequest) -> Result<GenerateResponse, Error> {
        let mut request = request.clone();
        request.stream = false;
        self.post("/api/generate", &request, "generate response")
    }

    /// Loads `model` into memory and keeps it there for `keep_alive` (an empty prompt
    /// generates nothing; Ollama answers with `done_reason: "load"`).
    pub fn warm(&self, model: &str, keep_alive: KeepAlive) -> Result<GenerateResponse, Error> {
        self.generate(&GenerateRequest {
            model: model.to_string(),
            keep_alive: Some(keep_alive),
            ..GenerateRequest::default()
        })
    }

    fn wire(&self) -> Wire<'_> {
        Wire {
            transport: self.transport.as_ref(),
            base_url: &self.base_url,
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str, what: &'static str) -> Result<T, Error> {
        let response = self
            .wire()
            .send("GET", path, Vec::new(), None, Some(self.timeout), None)?;
        read_json(&format!("GET {path}"), what, response, Some(self.timeout))
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        what: &'static str,
    ) -> Result<T, Error> {
        let response = self.wire().send(
            "POST",
            path,
            Vec::new(),
            Some(to_json(body)),
            Some(self.timeout),
            None,
        )?;
        read_json(&format!("POST {path}"), what, response, Some(self.timeout))
    }
}

/// Normalizes what users type for a server (`host`, `host:port`, `http://host:port/`).
pub fn normalize_base_url(url: &str) -> Result<String, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = url.trim();
    let rest = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err(invalid(
                "https is not supported: Ollama serves plain HTTP, protected by the tunnel",
            ));
        }
        Some((scheme, _)) => return Err(invalid(&format!("unsupported scheme {scheme:?}"))),
        None => trimmed,
    };
    let rest = rest.trim_end_matches('/');
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    if authority.contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{DEFAULT_PORT}")
    };
    Ok(format!("http://{authority}{path}"))
}

/// Request plumbing shared by the client and the check.
pub(crate) struct Wire<'a> {
    pub transport: &'a dyn Transport,
    pub base_url: &'a str,
}

impl Wire<'_> {
    pub fn send(
        &self,
        method: &'static str,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Result<HttpResponse, Error> {
        let endpoint = format!("{method} {path}");
        let mut headers = headers;
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", "application/json".into()));
        }
        let request = HttpRequest {
            method,
            url: format!("{}{path}", self.base_url),
            headers,
            body,
            timeout,
            idle_timeout,
        };
        self.transport.send(request).map_err(|e| match e {
            TransportError::Timeout => Error::Timeout {
                endpoint,
                after: timeout.or(idle_timeout).unwrap_or_default(),
            },
            TransportError::Connect(message) => Error::Connect { endpoint, message },
            TransportError::Other(message) => Error::Transport { endpoint, message },
        })
    }
}

pub(crate) fn to_json(body: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(body).unwrap_or_default()
}

/// Turns a non-2xx answer into [`Error::Status`] carrying the start of its body.
pub(crate) fn expect_success(
    endpoint: &str,
    mut response: HttpResponse,
    timeout: Option<Duration>,
) -> Result<HttpResponse, Error> {
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let body =
        read_limited(&mut response.body, 64 * 1024).map_err(|e| io_error(endpoint, e, timeout))?;
    Err(Error::Status {
        endpoint: endpoint.into(),
        status: response.status,
        body: snippet(&body),
    })
}

pub(crate) fn read_body(
    endpoint: &str,
    response: &mut HttpResponse,
    timeout: Option<Duration>,
) -> Result<Vec<u8>, Error> {
    read_limited(&mut response.body, MAX_BODY_BYTES).map_err(|e| io_error(endpoint, e, timeout))
}

pub(crate) fn read_json<T: DeserializeOwned>(
    endpoint: &str,
    what: &'static str,
    response: HttpResponse,
    timeout: Option<Duration>,
) -> Result<T, Error> {
    let mut response = expect_success(endpoint, response, timeout)?;
    let body = read_body(endpoint, &mut response, timeout)?;
    decode(endpoint, what, &body)
}

pub(crate) fn decode<T: DeserializeOwned>(
    endpoint: &str,
    what: &'static str,
    body: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        endpoint: endpoint.into(),
        what,
        snippet: snippet(body),
        source,
    })
}

pub(crate) fn io_error(endpoint: &str, error: io::Error, timeout: Option<Duration>) -> Error {
    let endpoint = endpoint.to_string();
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout {
            endpoint,
            after: timeout.unwrap_or_default(),
        },
        io::ErrorKind::UnexpectedEof => Error::Transport {
            endpoint,
            message: "connection closed mid-response".into(),
        },
        _ => Error::Transport {
            endpoint,
            message: format!("reading the response: {error}"),
        },
    }
}

/// First 200 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Typed NDJSON items read one line at a time.
pub(crate) struct NdjsonStream<T> {
    endpoint: String,
    lines: LineReader<Box<dyn Read + Send>>,
    timeout: Duration,
    item: PhantomData<T>,
}

impl<T: DeserializeOwned> NdjsonStream<T> {
    pub fn new(endpoint: &str, response: HttpResponse, timeout: Duration) -> NdjsonStream<T> {
        NdjsonStream {
            endpoint: endpoint.to_string(),
            lines: LineReader::new(response.body),
            timeout,
            item: PhantomData,
        }
    }

    /// The next item; `None` at the end of the stream. A `{"error": ...}` line is an error.
    pub fn next_item(&mut self) -> Result<Option<T>, Error> {
        loop {
            let line = self
                .lines
                .next_line()
                .map_err(|e| io_error(&self.endpoint, e, Some(self.timeout)))?;
            let Some(line) = line else {
                return Ok(None);
            };
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = decode(&self.endpoint, "NDJSON line", line.as_bytes())?;
            if let Some(message) = value.get("error").and_then(Value::as_str) {
                return Err(Error::StreamError {
                    endpoint: self.endpoint.clone(),
                    message: message.to_string(),
                });
            }
            return serde_json::from_value(value)
                .map(Some)
                .map_err(|source| Error::Decode {
                    endpoint: self.endpoint.clone(),
                    what: std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("item"),
                    snippet: snippet(line.as_bytes()),
                    source,
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalized() {
        assert_eq!(
            normalize_base_url("10.10.10.1").unwrap(),
            "http://10.10.10.1:11434"
        );
        assert_eq!(
            normalize_base_url("http://host:8080/").unwrap(),
            "http://host:8080"
        );
        assert_eq!(normalize_base_url("[::1]").unwrap(), "http://[::1]:11434");
        assert_eq!(
            normalize_base_url("http://[::1]:1/ollama").unwrap(),
            "http://[::1]:1/ollama"
        );
        assert!(normalize_base_url("https://host").is_err());
        assert!(normalize_base_url("ftp://host").is_err());
        assert!(normalize_base_url("http://").is_err());
    }
}
