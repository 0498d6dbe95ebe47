//! OpenAI-compatible checks: models, chat completions (plain, SSE, usage, JSON mode,
//! tools) and the Responses API.

use std::time::Instant;

use serde_json::{Value, json};

use super::native::{
    PROMPT, SCHEMA_PROMPT, check_vectors, matches_status_schema, same_model, status_schema,
};
use super::probe::Probe;
use super::probe::{OPENAI_HEADERS, contract, whole_response_stats};
use super::{Family, Needs, Passed, Runner};
use crate::error::Error;
use crate::types::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Completion, CompletionRequest,
    EmbeddingList, EmbeddingRequest, FunctionCall, Message, Model, ModelList, OutputItem, Response,
    ResponseFormat, ResponsesEvent, ResponsesRequest, StreamOptions, Tool, ToolCall, ToolFunction,
};
use crate::version::{EMBED_SINCE, OllamaVersion, RESPONSES_SINCE, SCHEMA_SINCE};

const SSE: &str = "text/event-stream";
pub(crate) const TOOL_NAME: &str = "get_current_time";
pub(crate) const TOOL_CALL_ID: &str = "call_sovereign_check";
pub(crate) const TOOL_RESULT: &str = "12:00 UTC";
pub(crate) const TOOL_PROMPT: &str = "What time is it in UTC? Use the get_current_time tool.";
/// `reasoning_effort: "none"` (openai/openai.go@v0.12.4; before, "none" was an
/// invalid effort).
static EFFORT_NONE_SINCE: OllamaVersion = OllamaVersion::new(0, 12, 4);
/// Responses `reasoning.effort` maps to think (openai/responses.go@v0.22.0).
static RESPONSES_EFFORT_SINCE: OllamaVersion = OllamaVersion::new(0, 22, 0);

pub(crate) fn tool_parameters() -> Value {
    json!({
        "type": "object",
        "properties": { "timezone": { "type": "string", "description": "IANA time zone, e.g. UTC" } },
        "required": ["timezone"],
    })
}

pub(super) fn run(runner: &mut Runner<'_>) {
    runner.check(
        "openai.models",
        Family::OpenAi,
        "GET /v1/models lists models",
        Needs::NOTHING,
        |probe| {
            let endpoint = "GET /v1/models";
            let list: ModelList = probe.get_with("/v1/models", OPENAI_HEADERS, "model list")?;
            if list.object != "list" {
                return Err(contract(
                    endpoint,
                    format!("object is {:?}, expected \"list\"", list.object),
                ));
            }
            if let Some(model) = &probe.model
                && !list.data.iter().any(|m| same_model(&m.id, model))
            {
                return Err(contract(
                    endpoint,
                    format!("{model} is missing from the list"),
                ));
            }
            Ok((Passed::detail(format!("{} model(s)", list.data.len())), ()))
        },
    );

    runner.check(
        "openai.model",
        Family::OpenAi,
        "GET /v1/models/{model} describes the model",
        Needs::MODEL,
        |probe| {
            if probe.model().contains('/') {
                // gin's `/v1/models/:model` matches one segment, so Ollama answers
                // 404 for `user/model` and `hf.co/...` at every version; that is
                // the route's limit, not a broken server.
                return Ok((
                    Passed::detail(format!(
                        "not addressable: {} has a '/' and the route takes one path segment",
                        probe.model()
                    )),
                    (),
                ));
            }
            let path = format!("/v1/models/{}", probe.model());
            let model: Model = probe.get_with(&path, OPENAI_HEADERS, "model object")?;
            if model.object != "model" || !same_model(&model.id, probe.model()) {
                return Err(contract(
                    &format!("GET {path}"),
                    format!("got object {:?} id {:?}", model.object, model.id),
                ));
            }
            Ok((Passed::detail(format!("owned_by {}", model.owned_by)), ()))
        },
    );

    runner.check(
        "openai.chat",
        Family::OpenAi,
        "POST /v1/chat/completions, not streamed",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /v1/chat/completions";
            let start = Instant::now();
            let completion: ChatCompletion = probe.post(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &chat(probe, probe.options.max_tokens),
                "chat completion",
            )?;
            let elapsed = start.elapsed();
            let message = first_message(endpoint, &completion)?;
            let has_output = message
                .content
                .as_deref()
                .is_some_and(|c| !c.trim().is_empty())
                || message
                    .reasoning
                    .as_deref()
                    .is_some_and(|r| !r.trim().is_empty());
            if !has_output {
                return Err(contract(endpoint, "the model produced no output"));
            }
            let tokens = completion.usage.as_ref().map(|u| u.completion_tokens);
            let reason = completion.choices[0]
                .finish_reason
                .clone()
                .unwrap_or_else(|| "(none)".into());
            Ok((
                Passed::generation(
                    whole_response_stats(tokens, elapsed, None),
                    format!("finish_reason {reason}"),
                ),
                (),
            ))
        },
    );

    runner.check(
        "openai.chat.stream",
        Family::OpenAi,
        "POST /v1/chat/completions, streamed over SSE to [DONE]",
        Needs::MODEL,
        |probe| {
            let mut request = chat(probe, probe.options.max_tokens);
            request.stream = true;
            let outcome = read_chat_stream(probe.open_stream(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                SSE,
            )?)?;
            if outcome.finish_reason.is_none() {
                return Err(contract(
                    &outcome.endpoint,
                    "no chunk carried a finish_reason",
                ));
            }
            if outcome.text.trim().is_empty() && outcome.clock.pieces() == 0 {
                return Err(contract(&outcome.endpoint, "the model produced no output"));
            }
            let stats = outcome.clock.stats(None);
            Ok((
                Passed::generation(stats, format!("{} chunks", outcome.chunks)),
                (),
            ))
        },
    );

    runner.check(
        "openai.chat.usage",
        Family::OpenAi,
        "stream_options.include_usage adds a usage chunk",
        Needs::MODEL,
        |probe| {
            let mut request = chat(probe, probe.options.max_tokens);
            request.stream = true;
            request.stream_options = Some(StreamOptions {
                include_usage: true,
            });
            let outcome = read_chat_stream(probe.open_stream(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                SSE,
            )?)?;
            let usage = outcome
                .usage
                .ok_or_else(|| contract(&outcome.endpoint, "no chunk carried usage"))?;
            if usage.total_tokens != usage.prompt_tokens + usage.completion_tokens {
                return Err(contract(
                    &outcome.endpoint,
                    "usage.total_tokens is not prompt + completion",
                ));
            }
            let stats = outcome.clock.stats(Some(usage.completion_tokens));
            let detail = format!(
                "{} prompt + {} completion tokens",
                usage.prompt_tokens, usage.completion_tokens
            );
            Ok((Passed::generation(stats, detail), ()))
        },
    );

    runner.check(
        "openai.chat.json",
        Family::OpenAi,
        "response_format json_object yields a JSON object",
        Needs::MODEL,
        |probe| {
            let endpoint = "POST /v1/chat/completions";
            let mut request = chat(probe, probe.roomy_tokens());
            request.messages[0].content =
                Some("Return a JSON object with one field \"status\" set to \"ok\".".into());
            request.response_format = Some(ResponseFormat {
                kind: "json_object".into(),
                json_schema: None,
            });
            let completion: ChatCompletion = probe.post(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                "chat completion",
            )?;
            let content = first_message(endpoint, &completion)?
                .content
                .clone()
                .unwrap_or_default();
            match serde_json::from_str::<Value>(&content) {
                Ok(Value::Object(fields)) => Ok((
                    Passed::detail(format!("object with {} field(s)", fields.len())),
                    (),
                )),
                Ok(_) => Err(contract(
                    endpoint,
                    format!("content is JSON but not an object: {content}"),
                )),
                Err(e) => Err(contract(
                    endpoint,
                    format!("content is not JSON ({e}): {content}"),
                )),
            }
        },
    );

    runner.check(
        "openai.chat.tools",
        Family::OpenAi,
        "a chat completion calls an offered tool",
        Needs::TOOLS,
        |probe| {
            let endpoint = "POST /v1/chat/completions";
            let mut request = chat(probe, probe.roomy_tokens());
            request.messages[0].content = Some(TOOL_PROMPT.into());
            request.tools = Some(vec![offered_tool()]);
            let completion: ChatCompletion = probe.post(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                "chat completion",
            )?;
            let message = first_message(endpoint, &completion)?;
            let call = message
                .tool_calls
                .as_ref()
                .and_then(|calls| calls.first())
                .ok_or_else(|| contract(endpoint, "no tool_calls in the answer"))?;
            let name = call.function.name.as_deref().unwrap_or_default();
            if name != TOOL_NAME {
                return Err(contract(
                    endpoint,
                    format!("called {name:?}, expected {TOOL_NAME:?}"),
                ));
            }
            let arguments = call.function.arguments.as_deref().unwrap_or_default();
            if !matches!(
                serde_json::from_str::<Value>(arguments),
                Ok(Value::Object(_))
            ) {
                return Err(contract(
                    endpoint,
                    format!("arguments are not a JSON object: {arguments}"),
                ));
            }
            let reason = completion.choices[0]
                .finish_reason
                .as_deref()
                .unwrap_or("(none)");
            if reason != "tool_calls" {
                return Err(contract(
                    endpoint,
                    format!("finish_reason is {reason:?}, expected \"tool_calls\""),
                ));
            }
            Ok((Passed::detail(format!("{name}({arguments})")), ()))
        },
    );

    runner.check(
        "openai.chat.schema",
        Family::OpenAi,
        "response_format json_schema yields an object matching the schema",
        Needs::MODEL.since(&SCHEMA_SINCE, "response_format json_schema"),
        |probe| {
            let endpoint = "POST /v1/chat/completions";
            let mut request = chat(probe, probe.roomy_tokens());
            request.messages[0].content = Some(SCHEMA_PROMPT.into());
            request.response_format = Some(ResponseFormat {
                kind: "json_schema".into(),
                json_schema: Some(
                    json!({ "name": "status", "schema": status_schema(), "strict": true }),
                ),
            });
            let completion: ChatCompletion = probe.post(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                "chat completion",
            )?;
            let content = first_message(endpoint, &completion)?
                .content
                .clone()
                .unwrap_or_default();
            Ok((
                Passed::detail(matches_status_schema(endpoint, &content)?),
                (),
            ))
        },
    );

    runner.check(
        "openai.chat.tools.stream",
        Family::OpenAi,
        "a streamed chat completion calls an offered tool (delta.tool_calls)",
        Needs::TOOLS,
        |probe| {
            let mut request = chat(probe, probe.roomy_tokens());
            request.messages[0].content = Some(TOOL_PROMPT.into());
            request.tools = Some(vec![offered_tool()]);
            request.stream = true;
            let outcome = read_chat_stream(probe.open_stream(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                SSE,
            )?)?;
            let Some((name, arguments)) = outcome.tool_calls.first() else {
                return Err(contract(&outcome.endpoint, "no chunk carried tool_calls"));
            };
            if name != TOOL_NAME {
                return Err(contract(
                    &outcome.endpoint,
                    format!("called {name:?}, expected {TOOL_NAME:?}"),
                ));
            }
            if !matches!(
                serde_json::from_str::<Value>(arguments),
                Ok(Value::Object(_))
            ) {
                return Err(contract(
                    &outcome.endpoint,
                    format!("streamed arguments are not a JSON object: {arguments}"),
                ));
            }
            if outcome.finish_reason.as_deref() != Some("tool_calls") {
                return Err(contract(
                    &outcome.endpoint,
                    format!(
                        "finish_reason is {:?}, expected \"tool_calls\"",
                        outcome.finish_reason
                    ),
                ));
            }
            Ok((Passed::detail(format!("{name}({arguments})")), ()))
        },
    );

    runner.check(
        "openai.chat.tools.result",
        Family::OpenAi,
        "a tool result (role tool, tool_call_id) gets an answer",
        Needs::TOOLS,
        |probe| {
            let endpoint = "POST /v1/chat/completions";
            let mut request = chat(probe, probe.roomy_tokens());
            request.messages = vec![
                Message {
                    role: "user".into(),
                    content: Some(TOOL_PROMPT.into()),
                    ..Message::default()
                },
                Message {
                    role: "assistant".into(),
                    content: None,
                    tool_calls: Some(vec![ToolCall {
                        id: Some(TOOL_CALL_ID.into()),
                        index: None,
                        kind: Some("function".into()),
                        function: FunctionCall {
                            name: Some(TOOL_NAME.into()),
                            arguments: Some(r#"{"timezone":"UTC"}"#.into()),
                        },
                    }]),
                    ..Message::default()
                },
                Message {
                    role: "tool".into(),
                    content: Some(TOOL_RESULT.into()),
                    tool_call_id: Some(TOOL_CALL_ID.into()),
                    ..Message::default()
                },
            ];
            request.tools = Some(vec![offered_tool()]);
            let completion: ChatCompletion = probe.post(
                "/v1/chat/completions",
                OPENAI_HEADERS,
                &request,
                "chat completion",
            )?;
            let message = first_message(endpoint, &completion)?;
            let text = message.content.as_deref().unwrap_or_default().trim();
            let calls = message.tool_calls.as_ref().map_or(0, Vec::len);
            if text.is_empty() && calls == 0 && message.reasoning.is_none() {
                return Err(contract(endpoint, "no answer to the tool result"));
            }
            let detail = if text.is_empty() {
                format!("answered with {calls} more tool call(s)")
            } else {
                format!("answered in text ({} chars)", text.len())
            };
            Ok((Passed::detail(detail), ()))
        },
    );

    runner.check(
        "openai.completions.suffix",
        Family::OpenAi,
        "POST /v1/completions with a suffix (fill-in-the-middle, editor autocomplete)",
        Needs::INSERT.since(&EMBED_SINCE, "suffix on /v1/completions"),
        |probe| {
            let endpoint = "POST /v1/completions";
            let completion: Completion = probe.post(
                "/v1/completions",
                OPENAI_HEADERS,
                &CompletionRequest {
                    model: probe.model().to_string(),
                    prompt: "def add(a, b):\n    return ".into(),
                    suffix: Some("\n\nprint(add(1, 2))\n".into()),
                    max_tokens: Some(probe.options.max_tokens),
                    stream: false,
                },
                "completion",
            )?;
            if completion.object != "text_completion" {
                return Err(contract(
                    endpoint,
                    format!(
                        "object is {:?}, expected \"text_completion\"",
                        completion.object
                    ),
                ));
            }
            let choice = completion
                .choices
                .first()
                .ok_or_else(|| contract(endpoint, "no choices"))?;
            Ok((
                Passed::detail(format!(
                    "{} chars, finish_reason {}",
                    choice.text.len(),
                    choice.finish_reason.as_deref().unwrap_or("(none)")
                )),
                (),
            ))
        },
    );

    runner.check(
        "openai.embeddings",
        Family::OpenAi,
        "POST /v1/embeddings embeds a batch with the embedding model",
        Needs::EMBEDDING.since(&EMBED_SINCE, "/v1/embeddings"),
        |probe| {
            let endpoint = "POST /v1/embeddings";
            let model = probe.embedding_model.clone().unwrap_or_default();
            let inputs = ["a private server", "a quiet tunnel"];
            let list: EmbeddingList = probe.post(
                "/v1/embeddings",
                OPENAI_HEADERS,
                &EmbeddingRequest {
                    model: model.clone(),
                    input: json!(inputs),
                    encoding_format: Some("float".into()),
                },
                "embedding list",
            )?;
            if list.object != "list" || list.data.iter().any(|d| d.object != "embedding") {
                return Err(contract(
                    endpoint,
                    "expected a list of \"embedding\" objects",
                ));
            }
            let mut data = list.data;
            data.sort_by_key(|d| d.index);
            let vectors: Vec<Vec<f64>> = data.into_iter().map(|d| d.embedding).collect();
            let dimensions = check_vectors(endpoint, &vectors, inputs.len())?;
            Ok((
                Passed::detail(format!("{model}: {} x {dimensions}", inputs.len())),
                (),
            ))
        },
    );

    let responses = Needs::MODEL.since(&RESPONSES_SINCE, "/v1/responses");
    runner.check(
        "openai.responses",
        Family::OpenAi,
        "POST /v1/responses, not streamed",
        responses,
        |probe| {
            let endpoint = "POST /v1/responses";
            let start = Instant::now();
            let response: Response = probe.post(
                "/v1/responses",
                OPENAI_HEADERS,
                &responses_request(probe, probe.options.max_tokens, false),
                "response object",
            )?;
            let elapsed = start.elapsed();
            if response.object != "response" || response.status != "completed" {
                return Err(contract(
                    endpoint,
                    format!(
                        "object {:?} status {:?}, expected \"response\" \"completed\"",
                        response.object, response.status
                    ),
                ));
            }
            let produced = !response.output_text().trim().is_empty()
                || response.output.iter().any(|item| {
                    matches!(
                        item,
                        OutputItem::Reasoning { .. } | OutputItem::FunctionCall { .. }
                    )
                });
            if !produced {
                return Err(contract(endpoint, "no output items with content"));
            }
            let tokens = response.usage.as_ref().map(|u| u.output_tokens);
            Ok((
                Passed::generation(
                    whole_response_stats(tokens, elapsed, None),
                    format!("{} output item(s)", response.output.len()),
                ),
                (),
            ))
        },
    );

    runner.check(
        "openai.responses.stream",
        Family::OpenAi,
        "POST /v1/responses, streamed events",
        responses,
        |probe| {
            let request = responses_request(probe, probe.options.max_tokens, true);
            let (mut reader, mut clock) = probe
                .open_stream("/v1/responses", OPENAI_HEADERS, &request, SSE)?
                .sse();
            let mut first = true;
            let mut deltas = String::new();
            let mut done_text = None;
            let mut events = 0;
            while let Some(event) = reader.next_event()? {
                events += 1;
                let name = event
                    .event
                    .clone()
                    .ok_or_else(|| reader.contract("an event without an event: line"))?;
                let data_type = reader
                    .decode::<TypeOnly>("event payload", &event.data)?
                    .kind;
                if data_type != name {
                    return Err(reader
                        .contract(format!("event {name:?} carries data of type {data_type:?}")));
                }
                let parsed: ResponsesEvent = reader.decode("Responses API event", &event.data)?;
                if first && !matches!(parsed, ResponsesEvent::Created { .. }) {
                    return Err(reader.contract(format!(
                        "first event is {name:?}, expected \"response.created\""
                    )));
                }
                first = false;
                match parsed {
                    ResponsesEvent::OutputTextDelta { delta, .. } => {
                        clock.piece();
                        deltas.push_str(&delta);
                    }
                    ResponsesEvent::FunctionCallArgumentsDelta { .. } => clock.piece(),
                    ResponsesEvent::Other if name.starts_with("response.reasoning") => {
                        clock.piece()
                    }
                    ResponsesEvent::OutputTextDone { text, .. } => done_text = Some(text),
                    ResponsesEvent::Failed { .. } => {
                        return Err(reader.contract("the server sent response.failed"));
                    }
                    ResponsesEvent::Completed { response } => {
                        if response.status != "completed" {
                            return Err(reader.contract(format!(
                                "response.completed has status {:?}",
                                response.status
                            )));
                        }
                        if done_text.as_ref().is_some_and(|t| *t != deltas) {
                            return Err(reader.contract(
                                "output_text.done differs from the concatenated deltas",
                            ));
                        }
                        let tokens = response.usage.as_ref().map(|u| u.output_tokens);
                        return Ok((
                            Passed::generation(clock.stats(tokens), format!("{events} events")),
                            (),
                        ));
                    }
                    _ => {}
                }
            }
            Err(reader.ended("response.completed"))
        },
    );

    let responses_tools = Needs::TOOLS.since(&RESPONSES_SINCE, "/v1/responses");
    runner.check(
        "openai.responses.tool_result",
        Family::OpenAi,
        "POST /v1/responses with a function_call_output (as Codex sends) gets an answer",
        responses_tools,
        |probe| {
            let endpoint = "POST /v1/responses";
            let mut request = responses_request(probe, probe.roomy_tokens(), false);
            request.input = json!([
                { "type": "message", "role": "user", "content": TOOL_PROMPT },
                { "type": "function_call", "call_id": TOOL_CALL_ID, "name": TOOL_NAME, "arguments": r#"{"timezone":"UTC"}"# },
                { "type": "function_call_output", "call_id": TOOL_CALL_ID, "output": TOOL_RESULT },
            ]);
            request.tools = Some(json!([{
                "type": "function", "name": TOOL_NAME,
                "description": "Returns the current time in a time zone",
                "parameters": tool_parameters(),
            }]));
            let response: Response =
                probe.post("/v1/responses", OPENAI_HEADERS, &request, "response object")?;
            if response.status != "completed" || response.output.is_empty() {
                return Err(contract(
                    endpoint,
                    format!(
                        "status {:?} with {} output item(s)",
                        response.status,
                        response.output.len()
                    ),
                ));
            }
            Ok((
                Passed::detail(format!("{} output item(s)", response.output.len())),
                (),
            ))
        },
    );
}

#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

/// A one-turn chat; a thinking model is told `reasoning_effort: "none"` where the
/// version knows it.
fn chat(probe: &Probe<'_>, max_tokens: u32) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: probe.model().to_string(),
        messages: vec![Message {
            role: "user".into(),
            content: Some(PROMPT.into()),
            ..Message::default()
        }],
        max_tokens: Some(max_tokens),
        reasoning_effort: (probe.thinks && probe.at_least(&EFFORT_NONE_SINCE))
            .then(|| "none".into()),
        ..ChatCompletionRequest::default()
    }
}

fn responses_request(probe: &Probe<'_>, max_tokens: u32, stream: bool) -> ResponsesRequest {
    // Before 0.22.0 the effort is ignored and a thinking model thinks: give it room.
    let can_stop_thinking = probe.at_least(&RESPONSES_EFFORT_SINCE);
    let max_tokens = if probe.thinks && !can_stop_thinking {
        max_tokens.max(super::probe::THINKING_ROOM_TOKENS)
    } else {
        max_tokens
    };
    ResponsesRequest {
        model: probe.model().to_string(),
        input: json!(PROMPT),
        stream,
        instructions: None,
        max_output_tokens: Some(max_tokens),
        tools: None,
        reasoning: (probe.thinks && can_stop_thinking).then(|| json!({ "effort": "none" })),
    }
}

fn offered_tool() -> Tool {
    Tool {
        kind: "function".into(),
        function: ToolFunction {
            name: TOOL_NAME.into(),
            description: "Returns the current time in a time zone".into(),
            parameters: tool_parameters(),
        },
    }
}

fn first_message<'c>(endpoint: &str, completion: &'c ChatCompletion) -> Result<&'c Message, Error> {
    if completion.object != "chat.completion" {
        return Err(contract(
            endpoint,
            format!(
                "object is {:?}, expected \"chat.completion\"",
                completion.object
            ),
        ));
    }
    let choice = completion
        .choices
        .first()
        .ok_or_else(|| contract(endpoint, "no choices"))?;
    if choice.message.role != "assistant" {
        return Err(contract(
            endpoint,
            format!(
                "message role is {:?}, expected \"assistant\"",
                choice.message.role
            ),
        ));
    }
    Ok(&choice.message)
}

struct ChatStreamOutcome {
    endpoint: String,
    /// Streamed tool calls by index: (name, concatenated arguments).
    tool_calls: Vec<(String, String)>,
    text: String,
    chunks: usize,
    finish_reason: Option<String>,
    usage: Option<crate::types::openai::Usage>,
    clock: super::probe::StreamClock,
}

/// Reads `data:` chunks up to `data: [DONE]`, which must come.
fn read_chat_stream(stream: super::probe::OpenStream) -> Result<ChatStreamOutcome, Error> {
    let (mut reader, mut clock) = stream.sse();
    let mut outcome = ChatStreamOutcome {
        endpoint: reader.endpoint.clone(),
        tool_calls: Vec::new(),
        text: String::new(),
        chunks: 0,
        finish_reason: None,
        usage: None,
        clock: super::probe::StreamClock::start(),
    };
    while let Some(event) = reader.next_event()? {
        if event.data == "[DONE]" {
            outcome.clock = clock;
            return Ok(outcome);
        }
        let chunk: ChatCompletionChunk = reader.decode("chat completion chunk", &event.data)?;
        if chunk.object != "chat.completion.chunk" {
            return Err(reader.contract(format!(
                "chunk object is {:?}, expected \"chat.completion.chunk\"",
                chunk.object
            )));
        }
        outcome.chunks += 1;
        if let Some(usage) = chunk.usage {
            outcome.usage = Some(usage);
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            let content = delta.content.as_deref().unwrap_or_default();
            let has_piece = !content.is_empty()
                || delta.reasoning.as_deref().is_some_and(|r| !r.is_empty())
                || delta.tool_calls.as_ref().is_some_and(|t| !t.is_empty());
            if has_piece {
                clock.piece();
            }
            outcome.text.push_str(content);
            for (n, call) in delta.tool_calls.iter().flatten().enumerate() {
                // OpenAI streams a call as pieces sharing an index; Ollama sends
                // each whole, with or without an index.
                let index = call.index.map_or(n, |i| i as usize);
                if outcome.tool_calls.len() <= index {
                    outcome
                        .tool_calls
                        .resize(index + 1, (String::new(), String::new()));
                }
                let slot = &mut outcome.tool_calls[index];
                slot.0
                    .push_str(call.function.name.as_deref().unwrap_or_default());
                slot.1
                    .push_str(call.function.arguments.as_deref().unwrap_or_default());
            }
            if let Some(reason) = &choice.finish_reason {
                outcome.finish_reason = Some(reason.clone());
            }
        }
    }
    Err(reader.ended("data: [DONE]"))
}
