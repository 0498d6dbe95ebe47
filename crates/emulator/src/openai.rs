//! OpenAI-compatible API: `/v1/models`, `/v1/chat/completions`, `/v1/responses`.
//! Errors are `{"error":{"message","type","param","code"}}` (openai.NewError).
//!
//! Key order is Ollama's: Go writes a struct's fields in declaration order and a
//! map's keys sorted. Everything here is a struct in Ollama's `openai` package
//! (`ErrorResponse`, `ListCompletion`, `Model`, `ChatCompletion`,
//! `ChatCompletionChunk`, `ResponsesResponse`, ...) except the Responses API stream:
//! `ResponsesStreamConverter` builds each event, and everything inside it, as a
//! `map[string]any`, so those keys come out sorted (see [`go_map`]).

use std::io;

use serde_json::{Map, Value, json};

use crate::app::{
    Admission, App, ConversationBuilder, GenerationClock, KeepAlive, content_text, parse_body,
    parse_tools, play_silently, play_thinking, play_tokens, send_json, send_sse_data,
    send_sse_event, think_from_effort,
};
use crate::http::{Request, Responder, Stream};
use crate::native::model_not_found;
use crate::time;
use crate::toy::{self, Completion, OutputFormat, Prompt};

pub fn error(out: &mut Responder<'_>, status: u16, message: &str) -> io::Result<()> {
    let kind = match status {
        400 => "invalid_request_error",
        404 => "not_found_error",
        _ => "api_error",
    };
    send_json(
        out,
        status,
        &json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
    )
}

pub fn list_models(app: &App, out: &mut Responder<'_>) -> io::Result<()> {
    let data = app.list_models(|m| model_object(&m.name, m.modified));
    // ToListCompletion appends to a nil slice, so no models is `"data": null`
    // (openai/openai.go@v0.32.15 ListCompletion).
    let data = if data.is_empty() {
        Value::Null
    } else {
        json!(data)
    };
    send_json(out, 200, &json!({ "object": "list", "data": data }))
}

pub fn retrieve_model(app: &App, name: &str, out: &mut Responder<'_>) -> io::Result<()> {
    match app.with_model(name, |m| model_object(name, m.modified)) {
        Some(model) => send_json(out, 200, &model),
        None => error(out, 404, &format!("model '{name}' not found")),
    }
}

fn model_object(name: &str, modified: std::time::SystemTime) -> Value {
    let created = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // `owned_by` is the name's namespace; library models have none.
    let owned_by = name
        .rsplit_once('/')
        .map_or("library", |(ns, _)| ns.rsplit('/').next().unwrap_or(ns));
    json!({ "id": name, "object": "model", "created": created, "owned_by": owned_by })
}

/// Fields every OpenAI-compatible generation shares once parsed.
struct Generation {
    model: String,
    prompt: Prompt,
    stream: bool,
}

/// Parses and validates the common parts; answers the error itself and returns `None` on failure.
fn start_generation(
    app: &App,
    request: &Request,
    out: &mut Responder<'_>,
    build: impl FnOnce(&Map<String, Value>) -> Result<Prompt, String>,
) -> io::Result<Option<(Generation, Map<String, Value>)>> {
    let body = match parse_body(request) {
        Ok(b) => b,
        Err(e) => {
            error(out, 400, &e)?;
            return Ok(None);
        }
    };
    let prompt = match build(&body) {
        Ok(p) => p,
        Err(e) => {
            error(out, 400, &e)?;
            return Ok(None);
        }
    };
    let Some(model) = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        error(out, 400, "model is required")?;
        return Ok(None);
    };
    if app.with_model(model, |_| ()).is_none() {
        error(out, 404, &model_not_found(model))?;
        return Ok(None);
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let generation = Generation {
        model: model.to_string(),
        prompt,
        stream,
    };
    Ok(Some((generation, body)))
}

pub fn chat_completions(app: &App, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
    let Some((generation, body)) = start_generation(app, request, out, chat_prompt)? else {
        return Ok(());
    };
    let Generation {
        model,
        mut prompt,
        stream,
    } = generation;
    let effort = body
        .get("reasoning_effort")
        .or_else(|| body.get("reasoning").and_then(|r| r.get("effort")));
    let admission = Admission {
        chat: true,
        tools: !prompt.tools.is_empty(),
        think: think_from_effort(effort),
        ..Admission::default()
    };
    prompt.think = match app.admit(&model, admission) {
        Ok(t) => t,
        Err((status, message)) => return error(out, status, &message),
    };
    let completion = toy::complete(&prompt);
    let mut clock = GenerationClock::start();
    app.touch_loaded(&model, KeepAlive::from_request(None), None);
    let id = format!("chatcmpl-{}", app.next_id());
    let created = time::unix_now();
    let usage = json!({
        "prompt_tokens": prompt.prompt_tokens(),
        "completion_tokens": completion.output_tokens(),
        "total_tokens": prompt.prompt_tokens() + completion.output_tokens(),
    });
    let tool_calls = match &completion {
        Completion::ToolCall { name, arguments } => Some(json!([{
            "id": format!("call_{}", app.hex_id(8)),
            "index": 0,
            "type": "function",
            "function": { "name": name, "arguments": arguments.to_string() },
        }])),
        Completion::Text { .. } => None,
    };
    let finish_reason = if tool_calls.is_some() {
        "tool_calls"
    } else {
        completion.done_reason()
    };

    if !stream {
        play_silently(app, &completion, &mut clock);
        let mut message = json!({ "role": "assistant", "content": completion.text() });
        // openai.Message: Reasoning (omitempty) right after Content.
        if !completion.thinking().is_empty() {
            message["reasoning"] = json!(completion.thinking());
        }
        if let Some(calls) = &tool_calls {
            message["tool_calls"] = calls.clone();
        }
        return send_json(
            out,
            200,
            &json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "system_fingerprint": "fp_ollama",
                "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason }],
                "usage": usage,
            }),
        );
    }

    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_ollama",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut writer = out.stream(200, "text/event-stream")?;
    play_thinking(app, &completion, &mut clock, |token| {
        send_sse_data(
            &mut writer,
            &chunk(
                json!({ "role": "assistant", "content": "", "reasoning": token }),
                None,
            )
            .to_string(),
        )
    })?;
    play_tokens(app, &completion, &mut clock, |token| {
        send_sse_data(
            &mut writer,
            &chunk(json!({ "role": "assistant", "content": token }), None).to_string(),
        )
    })?;
    if let Some(calls) = tool_calls {
        let delta = json!({ "role": "assistant", "content": "", "tool_calls": calls });
        send_sse_data(&mut writer, &chunk(delta, None).to_string())?;
    }
    let last = chunk(
        json!({ "role": "assistant", "content": "" }),
        Some(finish_reason),
    );
    send_sse_data(&mut writer, &last.to_string())?;
    if include_usage {
        let mut usage_chunk = last;
        usage_chunk["choices"] = json!([]);
        usage_chunk["usage"] = usage;
        send_sse_data(&mut writer, &usage_chunk.to_string())?;
    }
    send_sse_data(&mut writer, "[DONE]")?;
    writer.finish()
}

fn chat_prompt(body: &Map<String, Value>) -> Result<Prompt, String> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) | None | Some(Value::Null) => return Err("[] is too short - 'messages'".into()),
        Some(_) => return Err("json: cannot unmarshal messages into Go struct field ChatCompletionRequest.messages of type []openai.Message".into()),
    };
    let mut conversation = ConversationBuilder::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        conversation.push(role, &content_text(message.get("content")));
    }
    let format = match body.get("response_format") {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_object") => {
            OutputFormat::Json
        }
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => f
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .map_or(OutputFormat::Json, |s| OutputFormat::Schema(s.clone())),
        _ => OutputFormat::Text,
    };
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    Ok(conversation.finish(parse_tools(body.get("tools")), format, max_tokens))
}

pub fn responses(app: &App, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
    let Some((generation, body)) = start_generation(app, request, out, responses_prompt)? else {
        return Ok(());
    };
    let Generation {
        model,
        mut prompt,
        stream,
    } = generation;
    let admission = Admission {
        chat: true,
        tools: !prompt.tools.is_empty(),
        think: think_from_effort(body.get("reasoning").and_then(|r| r.get("effort")))
            .filter(|_| app.wire.responses_effort),
        ..Admission::default()
    };
    prompt.think = match app.admit(&model, admission) {
        Ok(t) => t,
        Err((status, message)) => return error(out, status, &message),
    };
    let completion = toy::complete(&prompt);
    let mut clock = GenerationClock::start();
    app.touch_loaded(&model, KeepAlive::from_request(None), None);
    let full = app.wire.full_response_object;
    let shape = ResponseShape {
        full,
        id: format!("resp_{}", app.next_id()),
        item_id: format!("msg_{}", app.next_id()),
        model: model.clone(),
        request: body,
    };
    let mut usage = json!({
        "input_tokens": prompt.prompt_tokens(),
        "output_tokens": completion.output_tokens(),
        "total_tokens": prompt.prompt_tokens() + completion.output_tokens(),
    });
    if full {
        // The token details arrived with the full object (openai/responses.go@v0.14.2).
        usage["input_tokens_details"] = json!({ "cached_tokens": 0 });
        usage["output_tokens_details"] =
            json!({ "reasoning_tokens": completion.thinking_tokens() });
    }
    let function_call = match &completion {
        Completion::ToolCall { name, arguments } => Some((
            format!("fc_{}_0", app.next_id()),
            format!("call_{}", app.hex_id(8)),
            name.clone(),
            arguments.to_string(),
        )),
        Completion::Text { .. } => None,
    };
    let function_item = |status: &str, arguments: &str| {
        function_call.as_ref().map(|(item_id, call_id, name, _)| {
            json!({ "id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name, "arguments": arguments })
        })
    };
    let output_text = |text: &str| {
        if full {
            json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
        } else {
            json!({ "type": "output_text", "text": text })
        }
    };
    // Text deltas and done events carry `logprobs` only from v0.14.2.
    let with_logprobs = |mut event: Value| {
        if full {
            event["logprobs"] = json!([]);
        }
        event
    };
    let message_item = |status: &str, content: Value| json!({ "id": shape.item_id, "type": "message", "status": status, "role": "assistant", "content": content });

    if !stream {
        play_silently(app, &completion, &mut clock);
        let mut output = Vec::new();
        if !completion.thinking().is_empty() {
            // A reasoning item before the answer (ResponsesOutputItem, type "reasoning").
            output.push(json!({
                "id": format!("rs_{}", app.next_id()), "type": "reasoning",
                "summary": [{ "type": "summary_text", "text": completion.thinking() }],
            }));
        }
        match &function_call {
            Some((_, _, _, arguments)) => {
                output.push(function_item("completed", arguments).unwrap_or(Value::Null))
            }
            None if completion.text().is_empty() && !output.is_empty() => {}
            None => output.push(message_item(
                "completed",
                json!([output_text(&completion.text())]),
            )),
        }
        let response = shape.object("completed", json!(output), usage, Some(time::unix_now()));
        return send_json(out, 200, &response);
    }

    let mut writer = out.stream(200, "text/event-stream")?;
    let mut events = EventWriter {
        stream: &mut writer,
        sequence: 0,
    };
    let empty = shape.streamed("in_progress", json!([]), Value::Null, None);
    events.send("response.created", json!({ "response": empty }))?;
    events.send("response.in_progress", json!({ "response": empty }))?;

    // A thinking model's thoughts come first, as a reasoning item
    // (ResponsesStreamConverter.processThinking/finishReasoning, openai/responses.go);
    // the answer's items then start at output_index 1.
    let mut output = Vec::new();
    let thinking = completion.thinking();
    if !thinking.is_empty() {
        let reasoning_id = format!("rs_{}", app.next_id());
        events.send(
            "response.output_item.added",
            json!({ "output_index": 0, "item": go_map(json!({ "id": reasoning_id, "type": "reasoning", "summary": [] })) }),
        )?;
        play_thinking(app, &completion, &mut clock, |token| {
            events.send(
                "response.reasoning_summary_text.delta",
                json!({ "item_id": reasoning_id, "output_index": 0, "summary_index": 0, "delta": token }),
            )
        })?;
        events.send(
            "response.reasoning_summary_text.done",
            json!({ "item_id": reasoning_id, "output_index": 0, "summary_index": 0, "text": thinking }),
        )?;
        let item = go_map(json!({
            "id": reasoning_id, "type": "reasoning",
            "summary": [{ "type": "summary_text", "text": thinking }], "encrypted_content": thinking,
        }));
        events.send(
            "response.output_item.done",
            json!({ "output_index": 0, "item": item }),
        )?;
        output.push(item);
    }
    let index = output.len();
    if let Some((item_id, _, _, arguments)) = &function_call {
        play_tokens(app, &completion, &mut clock, |_| Ok(()))?;
        events.send(
            "response.output_item.added",
            json!({ "output_index": index, "item": go_map(function_item("in_progress", "")) }),
        )?;
        events.send(
            "response.function_call_arguments.delta",
            json!({ "item_id": item_id, "output_index": index, "delta": arguments }),
        )?;
        events.send(
            "response.function_call_arguments.done",
            json!({ "item_id": item_id, "output_index": index, "arguments": arguments }),
        )?;
        let done_item = go_map(function_item("completed", arguments));
        events.send(
            "response.output_item.done",
            json!({ "output_index": index, "item": done_item }),
        )?;
        output.push(done_item);
    } else if !completion.text().is_empty() || output.is_empty() {
        // (A thinking-only answer has no message item: contentStarted stays false.)
        let item_id = shape.item_id.clone();
        events.send(
            "response.output_item.added",
            json!({ "output_index": index, "item": go_map(message_item("in_progress", json!([]))) }),
        )?;
        events.send(
            "response.content_part.added",
            json!({ "item_id": item_id, "output_index": index, "content_index": 0, "part": go_map(output_text("")) }),
        )?;
        play_tokens(app, &completion, &mut clock, |token| {
            events.send(
                "response.output_text.delta",
                with_logprobs(json!({ "item_id": item_id, "output_index": index, "content_index": 0, "delta": token })),
            )
        })?;
        let text = completion.text();
        events.send(
            "response.output_text.done",
            with_logprobs(
                json!({ "item_id": item_id, "output_index": index, "content_index": 0, "text": text }),
            ),
        )?;
        events.send(
            "response.content_part.done",
            json!({ "item_id": item_id, "output_index": index, "content_index": 0, "part": go_map(output_text(&text)) }),
        )?;
        let done_item = go_map(message_item("completed", json!([output_text(&text)])));
        events.send(
            "response.output_item.done",
            json!({ "output_index": index, "item": done_item }),
        )?;
        output.push(done_item);
    }
    let final_output = Value::Array(output);
    let completed = shape.streamed("completed", final_output, usage, Some(time::unix_now()));
    events.send("response.completed", json!({ "response": completed }))?;
    writer.finish()
}

/// How Go's encoding/json writes a `map[string]any`: every object's keys sorted,
/// all the way down.
fn go_map(value: impl Into<Value>) -> Value {
    let mut value = value.into();
    value.sort_all_objects();
    value
}

/// Numbers Responses API events the way Ollama does (`sequence_number`).
struct EventWriter<'s, 'w> {
    stream: &'s mut Stream<'w>,
    sequence: u64,
}

impl EventWriter<'_, '_> {
    /// Ollama's `newEvent` adds `type` and `sequence_number` to the event's
    /// `map[string]any`, so the event's keys go out sorted. Only the top level is
    /// sorted here: callers pass nested objects already in wire order ([`go_map`],
    /// [`ResponseShape::streamed`]), since a `text.format.schema` echo is raw JSON.
    fn send(&mut self, event: &str, mut data: Value) -> io::Result<()> {
        data["type"] = json!(event);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        if let Value::Object(map) = &mut data {
            map.sort_keys();
        }
        send_sse_event(self.stream, event, &data)
    }
}

struct ResponseShape {
    /// The ResponsesResponse of v0.14.2+; before, 7 fields (openai/responses.go@v0.14.0).
    full: bool,
    id: String,
    item_id: String,
    model: String,
    request: Map<String, Value>,
}

impl ResponseShape {
    /// The full response object, echoing request parameters like Ollama's `ToResponse`:
    /// a `ResponsesResponse` struct, so its keys keep that struct's field order.
    fn object(
        &self,
        status: &str,
        output: Value,
        usage: Value,
        completed_at: Option<i64>,
    ) -> Value {
        let field = |k: &str| self.request.get(k).cloned().unwrap_or(Value::Null);
        if !self.full {
            // openai/responses.go@v0.14.0 ResponsesResponse: id, object, created_at,
            // status, model, output, usage (omitempty).
            let mut object = json!({
                "id": self.id, "object": "response", "created_at": time::unix_now(),
                "status": status, "model": self.model, "output": output,
            });
            if !usage.is_null() {
                object["usage"] = usage;
            }
            return object;
        }
        json!({
            "id": self.id,
            "object": "response",
            "created_at": time::unix_now(),
            "completed_at": completed_at,
            "status": status,
            "incomplete_details": null,
            "model": self.model,
            "previous_response_id": null,
            "instructions": field("instructions"),
            "output": output,
            "error": null,
            "tools": self.tools(),
            "tool_choice": "auto",
            "truncation": "disabled",
            "parallel_tool_calls": true,
            "text": { "format": self.text_format(false) },
            "top_p": self.request.get("top_p").and_then(Value::as_f64).unwrap_or(1.0),
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "top_logprobs": 0,
            "temperature": self.request.get("temperature").and_then(Value::as_f64).unwrap_or(1.0),
            "reasoning": null,
            "usage": usage,
            "max_output_tokens": field("max_output_tokens"),
            "max_tool_calls": null,
            "store": false,
            "background": self.request.get("background").and_then(Value::as_bool).unwrap_or(false),
            "service_tier": "default",
            "metadata": {},
            "safety_identifier": null,
            "prompt_cache_key": null,
        })
    }

    /// The response object inside stream events: Ollama's `buildResponseObject`
    /// makes the same fields as a `map[string]any`, so every key is sorted, except
    /// inside the raw `text.format.schema` echo.
    fn streamed(
        &self,
        status: &str,
        output: Value,
        usage: Value,
        completed_at: Option<i64>,
    ) -> Value {
        if !self.full {
            // createResponseCreatedEvent / processCompletion at v0.14.0 build
            // {id, object, status, output} (+ usage when done): no created_at, no model.
            let mut object =
                json!({ "id": self.id, "object": "response", "status": status, "output": output });
            if !usage.is_null() {
                object["usage"] = usage;
            }
            return go_map(object);
        }
        let mut object = go_map(self.object(status, output, usage, completed_at));
        object["text"] = json!({ "format": self.text_format(true) });
        object
    }

    /// The request's tools as Ollama decodes and re-encodes them: `ResponsesTool`
    /// fields only (type, name, description, strict, parameters, in that order);
    /// `parameters` is a `map[string]any`, so its keys are sorted.
    fn tools(&self) -> Value {
        let Some(Value::Array(tools)) = self.request.get("tools") else {
            return json!([]);
        };
        let tools = tools.iter().map(|tool| {
            let field = |k: &str| tool.get(k).cloned().unwrap_or(Value::Null);
            json!({
                "type": tool.get("type").cloned().unwrap_or_else(|| json!("")),
                "name": tool.get("name").cloned().unwrap_or_else(|| json!("")),
                "description": field("description"),
                "strict": field("strict"),
                "parameters": go_map(field("parameters")),
            })
        });
        Value::Array(tools.collect())
    }

    /// The echoed `text.format`: a `ResponsesTextFormat` struct (type, name, schema,
    /// strict; empty ones left out) in a response, a map with sorted keys in stream
    /// events. `schema` is a `json.RawMessage`, echoed as the client wrote it.
    fn text_format(&self, sorted: bool) -> Value {
        let Some(format) = self
            .request
            .get("text")
            .and_then(|t| t.get("format"))
            .filter(|f| !f.is_null())
        else {
            return json!({ "type": "text" });
        };
        let present = |k: &str| format.get(k).filter(|v| !v.is_null()).cloned();
        let mut fields = vec![(
            "type",
            format.get("type").cloned().unwrap_or_else(|| json!("")),
        )];
        if let Some(name) = present("name").filter(|n| n != "") {
            fields.push(("name", name));
        }
        if let Some(schema) = present("schema") {
            fields.push(("schema", schema));
        }
        if let Some(strict) = present("strict") {
            fields.push(("strict", strict));
        }
        if sorted {
            fields.sort_by_key(|(k, _)| *k);
        }
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
}

fn responses_prompt(body: &Map<String, Value>) -> Result<Prompt, String> {
    let mut conversation = ConversationBuilder::new();
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        conversation.push("system", instructions);
    }
    match body.get("input") {
        Some(Value::String(text)) => conversation.push("user", text),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .or_else(|| item.get("role").map(|_| "message"))
                    .ok_or_else(|| {
                        format!("input[{i}]: input item missing required 'type' field")
                    })?;
                match kind {
                    "message" => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                        conversation.push(role, &content_text(item.get("content")));
                    }
                    "function_call" => conversation.push(
                        "assistant",
                        item.get("arguments").and_then(Value::as_str).unwrap_or(""),
                    ),
                    "function_call_output" => {
                        conversation.push("tool", &content_text(item.get("output")))
                    }
                    "reasoning" => {}
                    other => return Err(format!("input[{i}]: unknown input item type: {other:?}")),
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err("input must be a string or array".into()),
    }
    let format = match body.get("text").and_then(|t| t.get("format")) {
        Some(f) if f.get("type").and_then(Value::as_str) == Some("json_schema") => f
            .get("schema")
            .map_or(OutputFormat::Json, |s| OutputFormat::Schema(s.clone())),
        _ => OutputFormat::Text,
    };
    let max_tokens = body.get("max_output_tokens").and_then(Value::as_u64);
    Ok(conversation.finish(parse_tools(body.get("tools")), format, max_tokens))
}

/// `POST /v1/completions` (CompletionsMiddleware -> GenerateHandler): a prompt and
/// an optional `suffix` for fill-in-the-middle, which needs the `insert` capability.
/// Bodies are openai.Completion, chunks openai.CompletionChunk (openai/openai.go@v0.32.15).
pub fn completions(app: &App, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
    let Some((generation, body)) = start_generation(app, request, out, completion_prompt)? else {
        return Ok(());
    };
    let Generation {
        model,
        mut prompt,
        stream,
    } = generation;
    let suffix = body.get("suffix").and_then(Value::as_str).unwrap_or("");
    let admission = Admission {
        insert: !suffix.is_empty(),
        ..Admission::default()
    };
    prompt.think = match app.admit(&model, admission) {
        Ok(t) => t,
        Err((status, message)) => return error(out, status, &message),
    };
    let completion = toy::complete(&prompt);
    let mut clock = GenerationClock::start();
    app.touch_loaded(&model, KeepAlive::from_request(None), None);
    let id = format!("cmpl-{}", app.next_id());
    let created = time::unix_now();
    let usage = json!({
        "prompt_tokens": prompt.prompt_tokens(),
        "completion_tokens": completion.output_tokens(),
        "total_tokens": prompt.prompt_tokens() + completion.output_tokens(),
    });
    let reason = completion.done_reason();
    if !stream {
        play_silently(app, &completion, &mut clock);
        return send_json(
            out,
            200,
            &json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "system_fingerprint": "fp_ollama",
                "choices": [{ "text": completion.text(), "index": 0, "finish_reason": reason }],
                "usage": usage,
            }),
        );
    }
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // CompletionChunk puts choices before model.
    let chunk = |text: &str, finish: Option<&str>| {
        json!({
            "id": id, "object": "text_completion", "created": created,
            "choices": [{ "text": text, "index": 0, "finish_reason": finish }],
            "model": model, "system_fingerprint": "fp_ollama",
        })
    };
    let mut writer = out.stream(200, "text/event-stream")?;
    play_thinking(app, &completion, &mut clock, |_| Ok(()))?;
    play_tokens(app, &completion, &mut clock, |token| {
        send_sse_data(&mut writer, &chunk(token, None).to_string())
    })?;
    send_sse_data(&mut writer, &chunk("", Some(reason)).to_string())?;
    if include_usage {
        let mut usage_chunk = chunk("", None);
        usage_chunk["choices"] = json!([]);
        usage_chunk["usage"] = usage;
        send_sse_data(&mut writer, &usage_chunk.to_string())?;
    }
    send_sse_data(&mut writer, "[DONE]")?;
    writer.finish()
}

fn completion_prompt(body: &Map<String, Value>) -> Result<Prompt, String> {
    let text = match body.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        // FromCompleteRequest takes a string prompt only.
        _ => return Err("prompt must be a string".into()),
    };
    let mut conversation = ConversationBuilder::new();
    conversation.push("user", &text);
    if let Some(suffix) = body
        .get("suffix")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        conversation.push("suffix", suffix);
    }
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64);
    Ok(conversation.finish(Vec::new(), OutputFormat::Text, max_tokens))
}

/// `POST /v1/embeddings` (EmbeddingsMiddleware -> EmbedHandler): `input` is a
/// string or a list; `encoding_format` "float" (default) or "base64" (little-endian
/// float32, what the openai Python SDK asks for).
pub fn embeddings(app: &App, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
    let body = match parse_body(request) {
        Ok(b) => b,
        Err(e) => return error(out, 400, &e),
    };
    let format = body
        .get("encoding_format")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "" | "float" | "base64") {
        return error(
            out,
            400,
            &format!(
                "Invalid value for 'encoding_format' = {format}. Supported values: ['float', 'base64']."
            ),
        );
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }
        _ => return error(out, 400, "invalid input"),
    };
    let Some(model) = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return error(out, 400, "model is required");
    };
    if app.with_model(model, |_| ()).is_none() {
        return error(out, 404, &format!("model '{model}' not found"));
    }
    app.touch_loaded(model, KeepAlive::from_request(None), None);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let vector = toy::embedding(text, crate::native::EMBEDDING_LENGTH);
            let embedding = if format == "base64" {
                json!(base64_f32(&vector))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "embedding": embedding, "index": index })
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| (t.len() as u64 / 4).max(1)).sum();
    send_json(
        out,
        200,
        &json!({
            "object": "list", "data": data, "model": model,
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        }),
    )
}

/// Standard base64 of the vector as little-endian float32s.
fn base64_f32(vector: &[f64]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector
        .iter()
        .flat_map(|x| (*x as f32).to_le_bytes())
        .collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet() {
        // 1.0f32 is 00 00 80 3f.
        assert_eq!(super::base64_f32(&[1.0]), "AACAPw==");
    }
}
