use std::time::Duration;

/// Everything that can go wrong talking to an Ollama server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{endpoint}: cannot connect: {message}")]
    Connect { endpoint: String, message: String },
    #[error("{endpoint}: timed out after {}", format_duration(*.after))]
    Timeout { endpoint: String, after: Duration },
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint}: HTTP {status}: {body}")]
    Status {
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("{endpoint}: not a valid {what}: {source} (got: {snippet})")]
    Decode {
        endpoint: String,
        what: &'static str,
        snippet: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{endpoint}: the response ended before {expected}")]
    StreamEnded {
        endpoint: String,
        expected: &'static str,
    },
    #[error("{endpoint}: server reported an error mid-stream: {message}")]
    StreamError { endpoint: String, message: String },
    /// The response parsed but broke the API contract.
    #[error("{endpoint}: {message}")]
    Contract { endpoint: String, message: String },
    #[error("overall deadline of {} exceeded", format_duration(*.0))]
    DeadlineExceeded(Duration),
}

pub(crate) fn format_duration(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}
