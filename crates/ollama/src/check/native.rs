//! Native API checks: `/api/tags`, `/api/show`, `/api/generate`, `/api/chat`, `/api/ps`.

use std::time::Instant;

use serde_json::{Map, Value, json};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::probe::{Probe, contract, whole_response_stats};
use super::{Family, Needs, Passed, Runner};
use crate::error::Error;
use crate::types::native::{
    ChatMessage, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, EmbeddingsRequest,
    EmbeddingsResponse, GenerateRequest, GenerateResponse, KeepAlive, Metrics, PsResponse,
    ShowRequest, ShowResponse, TagsResponse,
};
use crate::version::{EMBED_SINCE, OllamaVersion, SCHEMA_SINCE};

/// `think` in api.GenerateRequest/ChatRequest (api/types.go@v0.9.0).
static THINK_SINCE: OllamaVersion = OllamaVersion::new(0, 9, 0);
/// `context_length` in `/api/ps` (api/types.go@v0.10.0 ProcessModelResponse).
static PS_CONTEXT_SINCE: OllamaVersion = OllamaVersion::new(0, 10, 0);
/// What Claude Code, Codex and other coding agents need to hold their system
/// prompt, tools and a working file set (and what sovereign configures).
pub(crate) const AGENT_CONTEXT: u64 = 65_536;

pub(crate) const PROMPT: &str = "In one short sentence: is this server working?";
const NDJSON: &str = "application/x-ndjson";

pub(super) fn run(runner: &mut Runner<'_>) {
    let wanted = runner.probe.options.model.clone();
    let mut embedding_model = None;
    let model = runner.check(
        "native.tags",
        Family::Native,
        "GET /api/tags lists models; a chat model is chosen by its capabilities",
        Needs::NOTHING,
        |probe| {
            let tags: TagsResponse = probe.get("/api/tags", "model list")?;
            let names: Vec<&str> = tags.models.iter().map(|m| m.name.as_str()).collect();
            if let Some(wanted) = &wanted {
                let chosen = names
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
                    })?;
                embedding_model = choose(probe, &tags).embedding;
                let detail = format!("{} model(s); using {chosen} (as asked)", names.len());
                return Ok((Passed::detail(detail), chosen));
            }
            if names.is_empty() {
                return Err(contract(
                    "GET /api/tags",
                    "the server has no models; pull one with `ollama pull MODEL`",
                ));
            }
            let choice = choose(probe, &tags);
            embedding_model = choice.embedding.clone();
            let chosen = choice.chat.ok_or_else(|| {
                contract(
                    "GET /api/tags",
                    format!(
                        "no local chat model among {} (embedding-only or cloud models cannot chat); pull one, e.g. `ollama pull llama3.2`, or pass --model",
                        list(&names)
                    ),
                )
            })?;
            let mut detail = format!("{} model(s); using {chosen}", names.len());
            if let Some(embedding) = &embedding_model {
                detail.push_str(&format!(", embeddings with {embedding}"));
            }
            Ok((Passed::detail(detail), chosen))
        },
    );
    runner.probe.embedding_model = embedding_model;
    // Even when the listing failed, an explicitly named model can still be exercised.
    runner.probe.model = model.or(wanted);

    let mut cannot_chat = false;
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
                if !capabilities.iter().any(|c| c == "completion") {
                    // Only an explicit --model gets here: the choice skips these.
                    cannot_chat = true;
                    return Err(contract(
                        "POST /api/show",
                        format!(
                            "{} cannot chat or generate (capabilities {}): pass a chat model with --model",
                            probe.model(),
                            capabilities.join("/")
                        ),
                    ));
                }
            }
            Ok((Passed::detail(detail), show.capabilities))
        },
    );
    if cannot_chat {
        // Nothing to generate with; an embedding model still serves the embeddings checks.
        let model = runner.probe.model.take();
        if runner.probe.embedding_model.is_none() {
            runner.probe.embedding_model = model;
        }
    }
    let capabilities = capabilities.flatten();
    let has = |name: &str| capabilities.as_ref().map(|c| c.iter().any(|c| c == name));
    runner.supports_tools = has("tools");
    runner.supports_insert = has("insert");
    runner.probe.thinks = has("thinking") == Some(true);

    runner.check(
        "native.generate",
        Family::Native,
        "POST /api/generate, not streamed",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /api/generate";
            let body = generate_request(probe, probe.options.max_tokens, false);
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
            let body = generate_request(probe, probe.options.max_tokens, true);
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
            let body = chat_request(probe, probe.options.max_tokens, false);
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
            let body = chat_request(probe, probe.options.max_tokens, true);
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

    runner.check(
        "native.context",
        Family::Native,
        "the loaded model's context holds what coding agents need (64k)",
        Needs::MODEL.since(&PS_CONTEXT_SINCE, "context_length in /api/ps"),
        |probe| {
            let ps: PsResponse = probe.get("/api/ps", "running-model list")?;
            let loaded = ps.models.iter().find(|r| same_model(&r.name, probe.model()));
            let Some(context) = loaded.and_then(|r| r.context_length) else {
                // Unloaded already (OLLAMA_KEEP_ALIVE=0?): nothing to judge.
                return Ok((Passed::detail("model not loaded; context not reported"), ()));
            };
            if context < AGENT_CONTEXT {
                return Err(contract(
                    "GET /api/ps",
                    format!(
                        "{} runs with a {context}-token context; coding agents (Claude Code, Codex) need {AGENT_CONTEXT}: set OLLAMA_CONTEXT_LENGTH={AGENT_CONTEXT} (sovereign's ollama.context_length)",
                        probe.model()
                    ),
                ));
            }
            Ok((Passed::detail(format!("context {context}")), ()))
        },
    );

    runner.check(
        "native.chat.schema",
        Family::Native,
        "POST /api/chat with a JSON schema as format yields a matching object",
        Needs::MODEL.since(&SCHEMA_SINCE, "a JSON schema as format"),
        |probe| {
            let endpoint = "POST /api/chat";
            let mut body = chat_request(probe, probe.roomy_tokens(), false);
            body.messages[0].content = SCHEMA_PROMPT.into();
            body.format = Some(status_schema());
            let (response, _) =
                whole_answer_of::<ChatResponse>(probe, "/api/chat", &body, "chat response")?;
            let detail = matches_status_schema(endpoint, &response.message.content)?;
            Ok((Passed::detail(detail), ()))
        },
    );

    runner.check(
        "native.embed",
        Family::Native,
        "POST /api/embed embeds a batch with the embedding model",
        Needs::EMBEDDING.since(&EMBED_SINCE, "/api/embed"),
        |probe| {
            let endpoint = "POST /api/embed";
            let model = probe.embedding_model.clone().unwrap_or_default();
            let answer: EmbedResponse = probe.post(
                "/api/embed",
                &[],
                &EmbedRequest {
                    model: model.clone(),
                    input: json!(EMBED_INPUTS),
                },
                "embed response",
            )?;
            let dimensions = check_vectors(endpoint, &answer.embeddings, EMBED_INPUTS.len())?;
            Ok((
                Passed::detail(format!("{model}: {} x {dimensions}", EMBED_INPUTS.len())),
                (),
            ))
        },
    );

    runner.check(
        "native.embeddings",
        Family::Native,
        "POST /api/embeddings (the older single-prompt form) embeds",
        Needs::EMBEDDING,
        |probe| {
            let endpoint = "POST /api/embeddings";
            let model = probe.embedding_model.clone().unwrap_or_default();
            let answer: EmbeddingsResponse = probe.post(
                "/api/embeddings",
                &[],
                &EmbeddingsRequest {
                    model: model.clone(),
                    prompt: EMBED_INPUTS[0].into(),
                },
                "embeddings response",
            )?;
            let dimensions = check_vectors(endpoint, &[answer.embedding], 1)?;
            Ok((
                Passed::detail(format!("{model}: {dimensions} dimensions")),
                (),
            ))
        },
    );
}

/// `keep_alive: 0` unloads the model, an empty prompt loads it again (done_reason
/// "unload"/"load", server/routes.go since v0.3.11), and `/api/ps` follows. It
/// leaves the model loaded, as it found it.
pub(super) fn run_keep_alive(runner: &mut Runner<'_>) {
    runner.check(
        "native.keep_alive",
        Family::Native,
        "keep_alive 0 unloads the model and an empty prompt loads it again",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /api/generate";
            let load = |keep_alive: Option<KeepAlive>| -> Result<GenerateResponse, Error> {
                let body = GenerateRequest {
                    model: probe.model().to_string(),
                    keep_alive,
                    ..GenerateRequest::default()
                };
                probe.post("/api/generate", &[], &body, "generate response")
            };
            let unloaded = load(Some(KeepAlive::Seconds(0)))?;
            if unloaded.done_reason.as_deref() != Some("unload") {
                return Err(contract(
                    endpoint,
                    format!(
                        "keep_alive 0 answered done_reason {:?}, expected \"unload\"",
                        unloaded.done_reason
                    ),
                ));
            }
            // The scheduler unloads in the background; give it a moment.
            let listed = |probe: &Probe<'_>| -> Result<bool, Error> {
                let ps: PsResponse = probe.get("/api/ps", "running-model list")?;
                Ok(ps.models.iter().any(|r| same_model(&r.name, probe.model())))
            };
            let mut still_loaded = listed(probe)?;
            for _ in 0..20 {
                if !still_loaded {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
                still_loaded = listed(probe)?;
            }
            if still_loaded {
                return Err(contract(
                    "GET /api/ps",
                    "the model is still listed 5 s after keep_alive 0",
                ));
            }
            let loaded = load(None)?;
            if loaded.done_reason.as_deref() != Some("load") {
                return Err(contract(
                    endpoint,
                    format!(
                        "an empty prompt answered done_reason {:?}, expected \"load\"",
                        loaded.done_reason
                    ),
                ));
            }
            if !listed(probe)? {
                return Err(contract(
                    "GET /api/ps",
                    "the model is not listed after loading it",
                ));
            }
            Ok((Passed::detail("unloaded, then loaded again"), ()))
        },
    );
}

pub(crate) const SCHEMA_PROMPT: &str =
    "Report the server status as JSON: status \"ok\" and count 1.";
const EMBED_INPUTS: [&str; 2] = ["a private server", "a quiet tunnel"];

/// The schema the structured-output checks ask for.
pub(crate) fn status_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": { "type": "string", "enum": ["ok"] },
            "count": { "type": "integer" },
        },
        "required": ["status", "count"],
    })
}

/// The answer must be a JSON object with a string `status` and an integer `count`.
pub(crate) fn matches_status_schema(endpoint: &str, content: &str) -> Result<String, Error> {
    let value: Value = serde_json::from_str(content.trim())
        .map_err(|e| contract(endpoint, format!("content is not JSON ({e}): {content}")))?;
    let fine = value.get("status").is_some_and(Value::is_string)
        && value.get("count").is_some_and(|c| c.is_i64() || c.is_u64());
    if !fine {
        return Err(contract(
            endpoint,
            format!("content does not match the schema (string status, integer count): {content}"),
        ));
    }
    Ok(format!("{value}"))
}

/// `count` vectors of one non-zero length, not all zero, and different from each other.
pub(crate) fn check_vectors(
    endpoint: &str,
    vectors: &[Vec<f64>],
    count: usize,
) -> Result<usize, Error> {
    if vectors.len() != count {
        return Err(contract(
            endpoint,
            format!("{} vector(s) for {count} input(s)", vectors.len()),
        ));
    }
    let dimensions = vectors[0].len();
    if dimensions == 0 || vectors.iter().any(|v| v.len() != dimensions) {
        return Err(contract(
            endpoint,
            "vectors are empty or of different lengths",
        ));
    }
    if vectors.iter().any(|v| v.iter().all(|x| *x == 0.0)) {
        return Err(contract(endpoint, "a vector is all zeros"));
    }
    if count > 1 && vectors.windows(2).any(|w| w[0] == w[1]) {
        return Err(contract(endpoint, "different inputs got the same vector"));
    }
    Ok(dimensions)
}

/// `think: false` for a thinking model (Ollama >= 0.9.0 reads it; a model
/// without the capability gets nothing, since older servers refuse `think` there).
fn think_off(probe: &Probe<'_>) -> Option<bool> {
    (probe.thinks && probe.at_least(&THINK_SINCE)).then_some(false)
}

fn generate_request(probe: &Probe<'_>, max_tokens: u32, stream: bool) -> GenerateRequest {
    GenerateRequest {
        model: probe.model().to_string(),
        prompt: PROMPT.to_string(),
        stream,
        options: Some(num_predict(max_tokens)),
        think: think_off(probe),
        ..GenerateRequest::default()
    }
}

fn chat_request(probe: &Probe<'_>, max_tokens: u32, stream: bool) -> ChatRequest {
    ChatRequest {
        model: probe.model().to_string(),
        messages: vec![ChatMessage {
            role: "user".into(),
            content: PROMPT.into(),
            ..ChatMessage::default()
        }],
        stream,
        options: Some(num_predict(max_tokens)),
        think: think_off(probe),
        ..ChatRequest::default()
    }
}

/// What the model list offers, judged by `/api/show` capabilities.
#[derive(Debug, Default)]
struct Choice {
    chat: Option<String>,
    embedding: Option<String>,
}

/// Models asked about at most: a server with hundreds should not stall the check.
const MAX_SHOWN: usize = 24;

/// Picks a local chat model (`completion` capability; tools preferred) and an
/// embedding model. Cloud models (`remote_host`, or a `-cloud`/`:cloud` name) are
/// skipped: they need ollama.com. Without capabilities (Ollama < 0.6) a name
/// containing "embed" counts as an embedding model and anything else as chat.
fn choose(probe: &Probe<'_>, tags: &TagsResponse) -> Choice {
    let mut choice = Choice::default();
    let mut chat_without_tools = None;
    let mut show_works = true;
    for listed in tags.models.iter().take(MAX_SHOWN) {
        let name = listed.name.as_str();
        let cloud = listed.remote_host.is_some()
            || name.ends_with("-cloud")
            || name.contains(":cloud")
            || name.contains("-cloud:");
        if cloud {
            continue;
        }
        // A failing /api/show is native.show's to report; here it only means the
        // capabilities are unknown (and it is not asked again, so a hanging server
        // costs one timeout, not one per model).
        let show: Option<ShowResponse> = if show_works {
            let shown = probe.post(
                "/api/show",
                &[],
                &ShowRequest { model: name.into() },
                "model description",
            );
            show_works = shown.is_ok();
            shown.ok()
        } else {
            None
        };
        if show.as_ref().is_some_and(|s| s.remote_host.is_some()) {
            continue;
        }
        let caps = show.and_then(|s| s.capabilities).unwrap_or_else(|| {
            if name.contains("embed") {
                vec!["embedding".into()]
            } else {
                vec!["completion".into(), "tools".into()]
            }
        });
        let has = |c: &str| caps.iter().any(|x| x == c);
        if has("embedding") && choice.embedding.is_none() {
            choice.embedding = Some(name.to_string());
        }
        if has("completion") {
            if has("tools") && choice.chat.is_none() {
                choice.chat = Some(name.to_string());
            } else if chat_without_tools.is_none() {
                chat_without_tools = Some(name.to_string());
            }
        }
        if choice.chat.is_some() && choice.embedding.is_some() {
            break;
        }
    }
    choice.chat = choice.chat.or(chat_without_tools);
    choice
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
