//! `ollama-emulator`: a **test double** for an Ollama server.
//!
//! It speaks Ollama's wire formats (native `/api/*`, OpenAI-compatible `/v1/*`,
//! Anthropic-compatible `/v1/messages`) as each release line has them (see
//! [`PROFILES`]), with a deterministic toy model, so the lab, CI,
//! `sovereign server status/warm` and `sovereign check` can run where no real Ollama
//! can be installed. It is not an inference server.
//!
//! ```no_run
//! let emulator = ollama_emulator::Emulator::start("127.0.0.1:0", ollama_emulator::EmulatorConfig::default())?;
//! println!("{}", emulator.base_url());
//! # Ok::<(), std::io::Error>(())
//! ```

mod anthropic;
mod app;
mod cors;
mod http;
mod native;
mod openai;
mod profile;
mod time;
mod toy;

pub use app::ModelKind;
pub use profile::{PROFILES, Profile};
pub use toy::VOCABULARY;

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The Ollama version the emulator claims by default: the newest release compared.
pub const DEFAULT_VERSION: &str = profile::NEWEST;
/// The model the emulator lists when none are configured.
pub const DEFAULT_MODEL: &str = "toy:latest";

/// Help text listing the version profiles and model kinds.
pub fn profiles_help() -> String {
    profile::help_text()
}

#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Reported by `/api/version`; picks the wire format too (see [`PROFILES`]):
    /// below 0.13.3 `/v1/responses` is absent, below 0.14.0 `/v1/messages` is.
    pub version: String,
    /// Installed models; names without a tag get `:latest`. `NAME=cap+cap` sets the
    /// capabilities, else the name implies them ([`ModelKind::from_name`]).
    pub models: Vec<String>,
    /// Pause before each generated token (and each pull progress step).
    pub token_delay: Duration,
    /// Origins allowed on top of Ollama's defaults (like `OLLAMA_ORIGINS`); `*` allows all.
    pub extra_origins: Vec<String>,
    /// Context length reported by `/api/ps` and `/api/show` unless a request sets `num_ctx`.
    pub context_length: u64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            version: DEFAULT_VERSION.to_string(),
            models: vec![DEFAULT_MODEL.to_string()],
            token_delay: Duration::ZERO,
            extra_origins: Vec::new(),
            context_length: 65_536,
        }
    }
}

/// A running emulator. Stops when dropped or on [`Emulator::shutdown`].
pub struct Emulator {
    server: http::Server,
}

impl Emulator {
    /// Binds `addr` (port 0 picks a free port) and serves in background threads.
    pub fn start(addr: impl ToSocketAddrs, config: EmulatorConfig) -> io::Result<Emulator> {
        let listener = TcpListener::bind(addr)?;
        let loopback = listener.local_addr()?.ip().is_loopback();
        let app = Arc::new(app::App::new(config, loopback));
        let server = http::Server::start(listener, app)?;
        Ok(Emulator { server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `http://ADDR`, the base URL clients should use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    pub fn shutdown(mut self) {
        self.server.shutdown();
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        self.server.wait();
    }
}
