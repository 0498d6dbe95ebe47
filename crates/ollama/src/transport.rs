//! The HTTP seam. Check and client logic talk to [`Transport`], so tests can drive
//! them with canned responses; [`UreqTransport`] is the real one.

use std::io::{self, Read};
use std::time::Duration;

/// One request. Bodies are small JSON documents, so they are buffered.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Budget for the whole exchange, reading the body included.
    pub timeout: Option<Duration>,
    /// Longest silence allowed between two reads (for long downloads such as pulls).
    pub idle_timeout: Option<Duration>,
}

/// A response whose body is read incrementally, so streamed tokens are seen as they arrive.
pub struct HttpResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Box<dyn Read + Send>,
}

impl std::fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

pub trait Transport: Send + Sync {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Plain-HTTP transport on `ureq` with a keep-alive connection pool.
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl Default for UreqTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl UreqTransport {
    pub fn new() -> UreqTransport {
        let agent = ureq::Agent::config_builder()
            // Error statuses are answers to examine, not failures of the transport.
            .http_status_as_error(false)
            .user_agent(concat!("sovereign/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        UreqTransport { agent }
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        // Method and URL only: headers may carry a client's API key.
        tracing::debug!(method = %request.method, url = %request.url, "http request");
        let started = std::time::Instant::now();
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let result = match request.body {
            Some(body) => run(
                &self.agent,
                builder.body(body),
                request.timeout,
                request.idle_timeout,
            ),
            None => run(
                &self.agent,
                builder.body(()),
                request.timeout,
                request.idle_timeout,
            ),
        };
        let response = result?;
        let status = response.status().as_u16();
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "http response headers"
        );
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.into_body().into_reader();
        Ok(HttpResponse {
            status,
            content_type,
            body: Box::new(IoErrorMapper(body)),
        })
    }
}

fn run<S: ureq::AsSendBody>(
    agent: &ureq::Agent,
    request: Result<ureq::http::Request<S>, ureq::http::Error>,
    timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> Result<ureq::http::Response<ureq::Body>, TransportError> {
    use ureq::RequestExt;
    let request =
        request.map_err(|e| TransportError::Other(format!("cannot build request: {e}")))?;
    request
        .with_agent(agent)
        .configure()
        .timeout_global(timeout)
        .timeout_per_read(idle_timeout)
        .build()
        .run()
        .map_err(map_ureq_error)
}

fn map_ureq_error(error: ureq::Error) -> TransportError {
    match error {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
            TransportError::Connect(error.to_string())
        }
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            TransportError::Connect(e.to_string())
        }
        ureq::Error::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            TransportError::Timeout
        }
        other => TransportError::Other(other.to_string()),
    }
}

/// ureq reports a body-read timeout as an `io::Error` wrapping its own error; make the
/// kind `TimedOut` so callers can tell a hang from a reset.
struct IoErrorMapper<R>(R);

impl<R: Read> Read for IoErrorMapper<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                return e;
            }
            let text = e.to_string();
            if text.contains("timeout") || text.contains("timed out") {
                io::Error::new(io::ErrorKind::TimedOut, text)
            } else {
                e
            }
        })
    }
}
