//! The conformance check behind `sovereign check`.
//!
//! It asks `/api/version` first, then exercises every API family that version
//! supports, parsing each answer into the typed structs in [`crate::types`]. Every
//! request has a timeout and the whole run has a deadline, so a hanging or broken
//! server yields failures, never a hang.

mod anthropic;
mod errors;
mod native;
mod openai;
mod probe;
mod render;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::normalize_base_url;
use crate::error::Error;
use crate::transport::{Transport, UreqTransport};
use crate::version::OllamaVersion;

pub use render::render_table;

use probe::Probe;

/// What to check and how patiently.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Server base URL: `host`, `host:port` or `http://host:port`.
    pub url: String,
    /// Model for generations; `None` picks the first local chat model by its
    /// `/api/show` capabilities (never an embedding-only or cloud model).
    pub model: Option<String>,
    /// Budget for one request, a streamed body included. A cold model load counts.
    pub request_timeout: Duration,
    /// Budget for the whole run; checks that would start after it fail.
    pub overall_timeout: Duration,
    /// Output-token cap for generations (JSON mode and tools get a little more).
    pub max_tokens: u32,
    /// An Origin the server must refuse with 403.
    pub foreign_origin: String,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            url: format!("http://127.0.0.1:{}", crate::DEFAULT_PORT),
            model: None,
            request_timeout: Duration::from_secs(120),
            overall_timeout: Duration::from_secs(600),
            max_tokens: 32,
            foreign_origin: "http://sovereign-check.invalid".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Health,
    Native,
    OpenAi,
    Anthropic,
    Errors,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail { reason: String },
    Skip { reason: String },
}

/// Speed figures for generations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Time from sending the request to the first content-bearing chunk (streams only).
    pub ttft_ms: Option<f64>,
    /// Output tokens as the server counted them (or chunks, if it did not say).
    pub output_tokens: Option<u64>,
    /// Streams: chunks per second after the first one. Non-streamed: the server's
    /// eval rate where reported (native), else output tokens over the whole latency.
    pub tokens_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable identifier such as `openai.chat.stream`.
    pub id: String,
    pub family: Family,
    pub description: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Wall time of the check's HTTP exchange(s); absent when skipped.
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationStats>,
    /// What a passing check saw, e.g. `Ollama 0.14.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub url: String,
    pub server_version: Option<String>,
    pub model: Option<String>,
    pub duration_ms: f64,
    pub summary: Summary,
    pub checks: Vec<CheckResult>,
}

impl CheckReport {
    /// True when no check failed (skips are fine).
    pub fn passed(&self) -> bool {
        self.summary.failed == 0
    }
}

/// Runs the check over plain HTTP.
pub fn run(options: &CheckOptions) -> CheckReport {
    run_with(&UreqTransport::new(), options)
}

/// Runs the check over any transport (tests use fakes).
pub fn run_with(transport: &dyn Transport, options: &CheckOptions) -> CheckReport {
    let started = Instant::now();
    let mut runner = match normalize_base_url(&options.url) {
        Ok(base_url) => Runner::new(Probe::new(
            transport,
            base_url,
            options,
            started + options.overall_timeout,
        )),
        Err(e) => return invalid_url_report(options, e, started),
    };
    runner.run_all();
    runner.into_report(started)
}

fn invalid_url_report(options: &CheckOptions, error: Error, started: Instant) -> CheckReport {
    let checks = vec![CheckResult {
        id: "health".into(),
        family: Family::Health,
        description: HEALTH.to_string(),
        outcome: Outcome::Fail {
            reason: error.to_string(),
        },
        latency_ms: None,
        generation: None,
        detail: None,
    }];
    CheckReport {
        url: options.url.clone(),
        server_version: None,
        model: None,
        duration_ms: millis(started.elapsed()),
        summary: summarize(&checks),
        checks,
    }
}

const HEALTH: &str = "GET /api/version answers with a version";

/// How long the reachability probe waits. `/api/version` answers at once even
/// while a model loads, so silence this long means the path to the server is down;
/// every later check then skips instead of waiting its own timeout.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Names the layer to look at when the server cannot be reached.
fn unreachable_hint(address: &str, error: Error) -> Error {
    match error {
        Error::Timeout { endpoint, after } => Error::Contract {
            endpoint,
            message: format!(
                "timed out: no answer from {address} within {}: is the tunnel up? run `sovereign doctor`",
                crate::error::format_duration(after)
            ),
        },
        Error::Connect { endpoint, message } => Error::Connect {
            endpoint,
            message: format!(
                "{message} ({address}): is Ollama running there and the tunnel up? run `sovereign doctor`"
            ),
        },
        Error::Transport { endpoint, message } if message.contains("lookup") => Error::Transport {
            endpoint,
            message: format!(
                "{message}: cannot resolve {address}; check the server address (--url, sovereign.toml)"
            ),
        },
        other => other,
    }
}

/// What a check needs before it can run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    pub model: bool,
    pub tools: bool,
    /// An embedding model (chosen by its `embedding` capability).
    pub embedding: bool,
    /// Fill-in-the-middle (`insert` capability).
    pub insert: bool,
    /// (minimum version, what appeared in it)
    pub since: Option<(&'static OllamaVersion, &'static str)>,
}

impl Needs {
    pub const NOTHING: Needs = Needs {
        model: false,
        tools: false,
        embedding: false,
        insert: false,
        since: None,
    };
    pub const MODEL: Needs = Needs {
        model: true,
        ..Needs::NOTHING
    };
    pub const TOOLS: Needs = Needs {
        model: true,
        tools: true,
        ..Needs::NOTHING
    };
    pub const EMBEDDING: Needs = Needs {
        embedding: true,
        ..Needs::NOTHING
    };
    pub const INSERT: Needs = Needs {
        model: true,
        insert: true,
        ..Needs::NOTHING
    };

    pub const fn since(self, version: &'static OllamaVersion, feature: &'static str) -> Needs {
        Needs {
            since: Some((version, feature)),
            ..self
        }
    }
}

/// What a passing check reports beyond "pass".
#[derive(Debug, Default)]
pub(crate) struct Passed {
    pub detail: Option<String>,
    pub generation: Option<GenerationStats>,
}

impl Passed {
    pub fn detail(detail: impl Into<String>) -> Passed {
        Passed {
            detail: Some(detail.into()),
            generation: None,
        }
    }

    pub fn generation(stats: GenerationStats, detail: impl Into<String>) -> Passed {
        Passed {
            detail: Some(detail.into()),
            generation: Some(stats),
        }
    }
}

pub(crate) struct Runner<'a> {
    pub probe: Probe<'a>,
    results: Vec<CheckResult>,
    /// Set when the server is unreachable: everything after is skipped with this reason.
    blocked: Option<String>,
    pub version: Option<OllamaVersion>,
    /// `None` when the server did not say (no `/api/show` capabilities).
    pub supports_tools: Option<bool>,
    /// Whether the chosen model does fill-in-the-middle (`insert`); `None` unknown.
    pub supports_insert: Option<bool>,
}

impl<'a> Runner<'a> {
    fn new(probe: Probe<'a>) -> Runner<'a> {
        Runner {
            probe,
            results: Vec::new(),
            blocked: None,
            version: None,
            supports_tools: None,
            supports_insert: None,
        }
    }

    fn run_all(&mut self) {
        let version = self.check("health", Family::Health, HEALTH, Needs::NOTHING, |probe| {
            let response: crate::types::native::VersionResponse = probe
                .get_within("/api/version", "version response", HEALTH_TIMEOUT)
                .map_err(|e| unreachable_hint(probe.address(), e))?;
            let version =
                OllamaVersion::parse(&response.version).ok_or_else(|| Error::Contract {
                    endpoint: "GET /api/version".into(),
                    message: format!("version {:?} is not MAJOR.MINOR.PATCH", response.version),
                })?;
            Ok((Passed::detail(format!("Ollama {version}")), version))
        });
        match version {
            Some(version) => {
                self.probe.version = Some(version.clone());
                self.version = Some(version);
            }
            None => self.blocked = Some("health check failed".into()),
        }
        native::run(self);
        openai::run(self);
        anthropic::run(self);
        errors::run(self);
        // Last: it unloads and reloads the model, which would slow the others.
        native::run_keep_alive(self);
    }

    /// Runs one check unless its needs are unmet; returns what the check produced.
    pub fn check<T>(
        &mut self,
        id: &str,
        family: Family,
        description: &str,
        needs: Needs,
        body: impl FnOnce(&Probe<'a>) -> Result<(Passed, T), Error>,
    ) -> Option<T> {
        let mut result = CheckResult {
            id: id.to_string(),
            family,
            description: description.to_string(),
            outcome: Outcome::Pass,
            latency_ms: None,
            generation: None,
            detail: None,
        };
        if let Some(reason) = self.unmet(needs) {
            result.outcome = Outcome::Skip { reason };
            self.results.push(result);
            return None;
        }
        if let Err(e) = self.probe.budget() {
            result.outcome = Outcome::Fail {
                reason: format!("not run: {e}"),
            };
            self.results.push(result);
            return None;
        }
        let start = Instant::now();
        let outcome = body(&self.probe);
        result.latency_ms = Some(millis(start.elapsed()));
        let value = match outcome {
            Ok((passed, value)) => {
                result.detail = passed.detail;
                result.generation = passed.generation;
                Some(value)
            }
            Err(e) => {
                result.outcome = Outcome::Fail {
                    reason: e.to_string(),
                };
                None
            }
        };
        self.results.push(result);
        value
    }

    fn unmet(&self, needs: Needs) -> Option<String> {
        if let Some(reason) = &self.blocked {
            return Some(format!("not run: {reason}"));
        }
        if let (Some((minimum, feature)), Some(version)) = (needs.since, &self.version)
            && version < minimum
        {
            return Some(format!(
                "{feature} not available in {version} (added in {minimum})"
            ));
        }
        if needs.model && self.probe.model.is_none() {
            return Some("no model to generate with".into());
        }
        if needs.tools && self.supports_tools == Some(false) {
            return Some("model does not list the \"tools\" capability".into());
        }
        if needs.insert && self.supports_insert != Some(true) {
            return Some(
                "model does not list the \"insert\" capability (fill-in-the-middle)".into(),
            );
        }
        if needs.embedding && self.probe.embedding_model.is_none() {
            return Some(
                "no embedding model installed (e.g. `ollama pull nomic-embed-text`)".into(),
            );
        }
        None
    }

    fn into_report(self, started: Instant) -> CheckReport {
        CheckReport {
            url: self.probe.base_url().to_string(),
            server_version: self.version.map(|v| v.to_string()),
            model: self.probe.model.clone(),
            duration_ms: millis(started.elapsed()),
            summary: summarize(&self.results),
            checks: self.results,
        }
    }
}

fn summarize(checks: &[CheckResult]) -> Summary {
    let mut summary = Summary::default();
    for check in checks {
        match check.outcome {
            Outcome::Pass => summary.passed += 1,
            Outcome::Fail { .. } => summary.failed += 1,
            Outcome::Skip { .. } => summary.skipped += 1,
        }
    }
    summary
}

pub(crate) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_hints_name_the_layer() {
        let endpoint = || "GET /api/version".to_string();
        let timeout = unreachable_hint(
            "10.0.0.2:11434",
            Error::Timeout {
                endpoint: endpoint(),
                after: HEALTH_TIMEOUT,
            },
        );
        let text = timeout.to_string();
        assert!(
            text.contains("no answer from 10.0.0.2:11434 within 3.0s"),
            "{text}"
        );
        assert!(
            text.contains("tunnel") && text.contains("sovereign doctor"),
            "{text}"
        );
        let refused = unreachable_hint(
            "10.0.0.2:11434",
            Error::Connect {
                endpoint: endpoint(),
                message: "Connection refused".into(),
            },
        );
        assert!(refused.to_string().contains("is Ollama running there"));
        let lookup = unreachable_hint(
            "nas:11434",
            Error::Transport {
                endpoint: endpoint(),
                message: "io: failed to lookup address information".into(),
            },
        );
        assert!(lookup.to_string().contains("cannot resolve nas:11434"));
    }
}
