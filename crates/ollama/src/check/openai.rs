//! OpenAI-compatible checks: models, chat completions (plain, SSE, usage, JSON mode,
//! tools) and the Responses API.

use std::time::Instant;

use serde_json::{Value, json};

use super::native::{PROMPT, same_model};
use super::probe::{OPENAI_HEADERS, contract, whole_response_stats};
use super::{Family, Needs, Passed, Runner};
use crate::error::Error;
use crate::types::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Message, Model, ModelList,
    OutputItem, Response, ResponseFormat, ResponsesEvent, ResponsesRequest, StreamOptions, Tool,
    ToolFunction,
};
use crate::version::RESPONSES_SINCE;

const SSE: &str = "text/event-stream";
pub(crate) const TOOL_NAME: &str = "get_current_time";
pub(crate) const TOOL_PROMPT: &str = "What time is it in UTC? Use the get_current_time tool.";
/// JSON and tool calls need room to finish; a cut-off object would be a false failure.
const ROOMY_MAX_TOKENS: u32 = 256;

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
                &chat(probe.model(), probe.options.max_tokens),
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
            let mut request = chat(probe.model(), probe.options.max_tokens);
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
            let mut request = chat(probe.model(), probe.options.max_tokens);
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
            let mut request = chat(probe.model(), ROOMY_MAX_TOKENS);
            request.messages[0].content =
                Some("Return a JSON object with one field \"status\" set to \"ok\".".into());
            request.response_format = Some(ResponseFormat {
                kind: "json_object".into(),
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
            let mut request = chat(probe.model(), ROOMY_MAX_TOKENS);
            request.messages[0].content = Some(TOOL_PROMPT.into());
            request.tools = Some(vec![Tool {
                kind: "function".into(),
                function: ToolFunction {
                    name: TOOL_NAME.into(),
                    description: "Returns the current time in a time zone".into(),
                    parameters: tool_parameters(),
                },
            }]);
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
                &responses_request(probe.model(), probe.options.max_tokens, false),
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
            let request = responses_request(probe.model(), probe.options.max_tokens, true);
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
}

#[derive(serde::Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

fn chat(model: &str, max_tokens: u32) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: model.to_string(),
        messages: vec![Message {
            role: "user".into(),
            content: Some(PROMPT.into()),
            ..Message::default()
        }],
        max_tokens: Some(max_tokens),
        ..ChatCompletionRequest::default()
    }
}

fn responses_request(model: &str, max_tokens: u32, stream: bool) -> ResponsesRequest {
    ResponsesRequest {
        model: model.to_string(),
        input: json!(PROMPT),
        stream,
        instructions: None,
        max_output_tokens: Some(max_tokens),
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
            if let Some(reason) = &choice.finish_reason {
                outcome.finish_reason = Some(reason.clone());
            }
        }
    }
    Err(reader.ended("data: [DONE]"))
}
