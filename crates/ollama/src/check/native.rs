//! Native API checks: `/api/tags`, `/api/show`, `/api/generate`, `/api/chat`, `/api/ps`.

use std::time::Instant;

use serde_json::{Map, Value, json};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::probe::{Probe, contract, whole_response_stats};
use super::{Family, Needs, Passed, Runner};
use crate::error::Error;
use crate::types::native::{
    ChatMessage, ChatRequest, ChatResponse, GenerateRequest, GenerateResponse, Metrics, PsResponse,
    ShowRequest, ShowResponse, TagsResponse,
};

pub(crate) const PROMPT: &str = "In one short sentence: is this server working?";
const NDJSON: &str = "application/x-ndjson";

pub(super) fn run(runner: &mut Runner<'_>) {
    let wanted = runner.probe.options.model.clone();
    let model = runner.check(
        "native.tags",
        Family::Native,
        "GET /api/tags lists models",
        Needs::NOTHING,
        |probe| {
            let tags: TagsResponse = probe.get("/api/tags", "model list")?;
            let names: Vec<&str> = tags.models.iter().map(|m| m.name.as_str()).collect();
            let chosen = match &wanted {
                Some(wanted) => names
                    .iter()
                    .find(|n| same_model(n, wanted))
                    .map(|n| n.to_string())
                    .ok_or_else(|| {
                        contract(
                            "GET /api/tags",
                            format!(
                                "model {wanted:?} is not installed (installed: {})",
                                list(&names)
                            ),
                        )
                    })?,
                None => names.first().map(|n| n.to_string()).ok_or_else(|| {
                    contract(
                        "GET /api/tags",
                        "the server has no models; pull one with `ollama pull MODEL`",
                    )
                })?,
            };
            let detail = format!("{} model(s); using {chosen}", names.len());
            Ok((Passed::detail(detail), chosen))
        },
    );
    // Even when the listing failed, an explicitly named model can still be exercised.
    runner.probe.model = model.or(wanted);

    let capabilities = runner.check(
        "native.show",
        Family::Native,
        "POST /api/show describes the model",
        Needs::MODEL,
        |probe| {
            let show: ShowResponse = probe.post(
                "/api/show",
                &[],
                &ShowRequest {
                    model: probe.model().into(),
                },
                "model description",
            )?;
            let mut detail = format!(
                "family {}",
                if show.details.family.is_empty() {
                    "?"
                } else {
                    &show.details.family
                }
            );
            if let Some(context) = show.context_length() {
                detail.push_str(&format!(", trained context {context}"));
            }
            if let Some(capabilities) = &show.capabilities {
                detail.push_str(&format!(", capabilities {}", capabilities.join("/")));
            }
            Ok((Passed::detail(detail), show.capabilities))
        },
    );
    runner.supports_tools = capabilities
        .flatten()
        .map(|c| c.iter().any(|c| c == "tools"));

    runner.check(
        "native.generate",
        Family::Native,
        "POST /api/generate, not streamed",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /api/generate";
            let body = generate_request(probe.model(), probe.options.max_tokens, false);
            let (response, elapsed) = whole_answer_of::<GenerateResponse>(
                probe,
                "/api/generate",
                &body,
                "generate response",
            )?;
            require_output(endpoint, &response.response, response.thinking.as_deref())?;
            Ok((whole_answer(&response, elapsed), ()))
        },
    );

    runner.check(
        "native.generate.stream",
        Family::Native,
        "POST /api/generate, streamed as NDJSON",
        Needs::MODEL,
        |probe| {
            let body = generate_request(probe.model(), probe.options.max_tokens, true);
            streamed_answer::<GenerateResponse>(probe, "/api/generate", &body)
        },
    );

    runner.check(
        "native.chat",
        Family::Native,
        "POST /api/chat, not streamed",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /api/chat";
            let body = chat_request(probe.model(), probe.options.max_tokens, false);
            let (response, elapsed) =
                whole_answer_of::<ChatResponse>(probe, "/api/chat", &body, "chat response")?;
            if response.message.role != "assistant" {
                return Err(contract(
                    endpoint,
                    format!(
                        "message role is {:?}, expected \"assistant\"",
                        response.message.role
                    ),
                ));
            }
            require_output(
                endpoint,
                &response.message.content,
                response.message.thinking.as_deref(),
            )?;
            Ok((whole_answer(&response, elapsed), ()))
        },
    );

    runner.check(
        "native.chat.stream",
        Family::Native,
        "POST /api/chat, streamed as NDJSON",
        Needs::MODEL,
        |probe| {
            let body = chat_request(probe.model(), probe.options.max_tokens, true);
            streamed_answer::<ChatResponse>(probe, "/api/chat", &body)
        },
    );

    runner.check(
        "native.ps",
        Family::Native,
        "GET /api/ps lists loaded models",
        Needs::NOTHING,
        |probe| {
            let ps: PsResponse = probe.get("/api/ps", "running-model list")?;
            let loaded = probe
                .model
                .as_deref()
                .and_then(|m| ps.models.iter().find(|r| same_model(&r.name, m)));
            let detail = match loaded {
                Some(running) => match running.context_length {
                    Some(context) => format!("{} loaded, context {context}", running.name),
                    None => format!("{} loaded", running.name),
                },
                None => format!("{} model(s) loaded", ps.models.len()),
            };
            Ok((Passed::detail(detail), ()))
        },
    );
}

fn generate_request(model: &str, max_tokens: u32, stream: bool) -> GenerateRequest {
    GenerateRequest {
        model: model.to_string(),
        prompt: PROMPT.to_string(),
        stream,
        options: Some(num_predict(max_tokens)),
        ..GenerateRequest::default()
    }
}

fn chat_request(model: &str, max_tokens: u32, stream: bool) -> ChatRequest {
    ChatRequest {
        model: model.to_string(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: PROMPT.into(),
            ..ChatMessage::default()
        }],
        stream,
        options: Some(num_predict(max_tokens)),
        ..ChatRequest::default()
    }
}

fn num_predict(max_tokens: u32) -> Map<String, Value> {
    let mut options = Map::new();
    options.insert("num_predict".into(), json!(max_tokens));
    options
}

/// A generation must produce something: text, or thinking for reasoning models that
/// spent the token budget before answering.
/// What `/api/generate` and `/api/chat` answers share, so one routine judges both.
trait NativeAnswer: DeserializeOwned {
    fn done(&self) -> bool;
    fn done_reason(&self) -> Option<&str>;
    fn metrics(&self) -> &Metrics;
    /// This object (a whole answer or one streamed chunk) carries output: text,
    /// thinking, or a tool call.
    fn has_output(&self) -> bool;
}

impl NativeAnswer for GenerateResponse {
    fn done(&self) -> bool {
        self.done
    }
    fn done_reason(&self) -> Option<&str> {
        self.done_reason.as_deref()
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn has_output(&self) -> bool {
        !self.response.is_empty() || self.thinking.as_deref().is_some_and(|t| !t.is_empty())
    }
}

impl NativeAnswer for ChatResponse {
    fn done(&self) -> bool {
        self.done
    }
    fn done_reason(&self) -> Option<&str> {
        self.done_reason.as_deref()
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn has_output(&self) -> bool {
        let message = &self.message;
        !message.content.is_empty()
            || message.thinking.as_deref().is_some_and(|t| !t.is_empty())
            || message.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
    }
}

/// A non-streamed answer from `path`, timed, which must say `done: true`.
fn whole_answer_of<T: NativeAnswer>(
    probe: &Probe<'_>,
    path: &str,
    body: &impl Serialize,
    what: &'static str,
) -> Result<(T, std::time::Duration), Error> {
    let start = Instant::now();
    let answer: T = probe.post(path, &[], body, what)?;
    let elapsed = start.elapsed();
    if !answer.done() {
        return Err(contract(
            &format!("POST {path}"),
            "a non-streamed answer must have done: true",
        ));
    }
    Ok((answer, elapsed))
}

/// A whole (not streamed) answer that passed: its speed, from the server's counts
/// where it gave them.
fn whole_answer(answer: &impl NativeAnswer, elapsed: std::time::Duration) -> Passed {
    let metrics = answer.metrics();
    let stats = whole_response_stats(metrics.eval_count, elapsed, metrics.tokens_per_second());
    Passed::generation(stats, done_detail(answer.done_reason()))
}

/// A streamed NDJSON answer: each chunk with output is a timed piece, and the
/// stream must end in a `done: true` object after at least one of them.
fn streamed_answer<T: NativeAnswer>(
    probe: &Probe<'_>,
    path: &str,
    body: &impl Serialize,
) -> Result<(Passed, ()), Error> {
    let (mut stream, mut clock, endpoint) =
        probe.open_stream(path, &[], body, NDJSON)?.ndjson::<T>();
    while let Some(chunk) = stream.next_item()? {
        if chunk.has_output() {
            clock.piece();
        }
        if chunk.done() {
            if clock.pieces() == 0 {
                return Err(contract(&endpoint, "the model produced no output"));
            }
            let stats = clock.stats(chunk.metrics().eval_count);
            return Ok((
                Passed::generation(stats, done_detail(chunk.done_reason())),
                (),
            ));
        }
    }
    Err(Error::StreamEnded {
        endpoint,
        expected: "a done: true object",
    })
}

fn require_output(endpoint: &str, text: &str, thinking: Option<&str>) -> Result<(), Error> {
    if !text.trim().is_empty() || thinking.is_some_and(|t| !t.trim().is_empty()) {
        return Ok(());
    }
    Err(contract(endpoint, "the model produced no output"))
}

fn done_detail(reason: Option<&str>) -> String {
    format!("done_reason {}", reason.unwrap_or("(none)"))
}

/// Ollama treats `name` and `name:latest` as the same model.
pub(crate) fn same_model(a: &str, b: &str) -> bool {
    let full = |n: &str| {
        let last = n.rsplit('/').next().unwrap_or(n);
        if last.contains(':') {
            n.to_string()
        } else {
            format!("{n}:latest")
        }
    };
    full(a) == full(b)
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
