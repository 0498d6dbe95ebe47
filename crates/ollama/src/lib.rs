//! Ollama for sovereign: typed wire formats for Ollama's native, OpenAI-compatible and
//! Anthropic-compatible APIs, a small synchronous [`Client`], and the conformance
//! check behind `sovereign check` ([`check::run`]).
//!
//! All HTTP goes through the [`Transport`] trait; [`UreqTransport`] is the real one.

pub mod check;
mod client;
mod error;
pub mod stream;
pub mod transport;
pub mod types;
pub mod version;

pub use client::{Client, DEFAULT_PORT, normalize_base_url};
pub use error::Error;
pub use transport::{HttpRequest, HttpResponse, Transport, TransportError, UreqTransport};
pub use version::OllamaVersion;
