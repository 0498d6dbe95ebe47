//! Key order of the native, OpenAI- and Anthropic-compatible bodies, as sent on the
//! wire.
//!
//! Ollama is Go: encoding/json writes a struct's fields in declaration order (empty
//! `omitempty` fields left out) and a `map[string]any`'s keys sorted. Each expected
//! order below names the Ollama type it comes from (ollama/ollama `api/types.go`,
//! `openai/openai.go`,
//! `openai/responses.go`, `anthropic/anthropic.go`). serde_json's `preserve_order` is
//! on, so `as_object().keys()` of a parsed body is the order the emulator wrote.

mod common;

use common::{Connection, Reply, start};
use ollama_emulator::EmulatorConfig;
use serde_json::Value;

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn sorted(mut keys: Vec<&str>) -> Vec<&str> {
    keys.sort_unstable();
    keys
}

fn post(conn: &mut Connection, path: &str, body: &str) -> Reply {
    let reply = conn.send("POST", path, &[], Some(body));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
}

/// `data:` payloads of an SSE body (`[DONE]` left out), with their `event:` names.
fn sse(reply: &Reply) -> Vec<(Option<String>, Value)> {
    reply
        .text()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .filter_map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(d.to_string());
                }
            }
            let data = data.unwrap_or_else(|| panic!("no data in {event:?}"));
            (data != "[DONE]").then(|| (name, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

fn event<'a>(events: &'a [(Option<String>, Value)], name: &str) -> &'a Value {
    events
        .iter()
        .find(|(n, _)| n.as_deref() == Some(name))
        .map(|(_, data)| data)
        .unwrap_or_else(|| panic!("no {name} event"))
}

const TOOLS_CHAT: &str = r#"[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}]"#;

// openai.ChatCompletion / openai.ChatCompletionChunk (Usage is last, omitempty in chunks).
const CHAT_COMPLETION: [&str; 7] = [
    "id",
    "object",
    "created",
    "model",
    "system_fingerprint",
    "choices",
    "usage",
];
// openai.Usage
const CHAT_USAGE: [&str; 3] = ["prompt_tokens", "completion_tokens", "total_tokens"];

// openai.ResponsesResponse
const RESPONSE: [&str; 31] = [
    "id",
    "object",
    "created_at",
    "completed_at",
    "status",
    "incomplete_details",
    "model",
    "previous_response_id",
    "instructions",
    "output",
    "error",
    "tools",
    "tool_choice",
    "truncation",
    "parallel_tool_calls",
    "text",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "temperature",
    "reasoning",
    "usage",
    "max_output_tokens",
    "max_tool_calls",
    "store",
    "background",
    "service_tier",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
];
// openai.ResponsesUsage
const RESPONSE_USAGE: [&str; 5] = [
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "input_tokens_details",
    "output_tokens_details",
];

#[test]
fn preserve_order_is_on_so_these_tests_see_wire_order() {
    let value: Value = serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
    assert_eq!(keys(&value), ["b", "a"]);
}

#[test]
fn chat_completion_follows_openai_structs() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = post(
        &mut conn,
        "/v1/chat/completions",
        r#"{"model":"toy","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let body = reply.json();
    assert_eq!(keys(&body), CHAT_COMPLETION);
    // openai.Choice; openai.Message (reasoning, tool_calls, name, tool_call_id omitempty)
    assert_eq!(
        keys(&body["choices"][0]),
        ["index", "message", "finish_reason"]
    );
    assert_eq!(keys(&body["choices"][0]["message"]), ["role", "content"]);
    assert_eq!(keys(&body["usage"]), CHAT_USAGE);

    let body = format!(
        r#"{{"model":"toy","tools":{TOOLS_CHAT},"messages":[{{"role":"user","content":"lookup x"}}]}}"#
    );
    let body = post(&mut conn, "/v1/chat/completions", &body).json();
    let message = &body["choices"][0]["message"];
    assert_eq!(keys(message), ["role", "content", "tool_calls"]);
    // openai.ToolCall and its anonymous Function struct
    assert_eq!(
        keys(&message["tool_calls"][0]),
        ["id", "index", "type", "function"]
    );
    assert_eq!(
        keys(&message["tool_calls"][0]["function"]),
        ["name", "arguments"]
    );
}

#[test]
fn chat_completion_chunks_follow_openai_structs() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = post(
        &mut conn,
        "/v1/chat/completions",
        r#"{"model":"toy","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let chunks = sse(&reply);
    let (usage_chunk, chunks) = chunks.split_last().unwrap();
    assert!(chunks.len() >= 2);
    for (_, chunk) in chunks {
        assert_eq!(keys(chunk), CHAT_COMPLETION[..6]);
        // openai.ChunkChoice; the delta is an openai.Message
        assert_eq!(
            keys(&chunk["choices"][0]),
            ["index", "delta", "finish_reason"]
        );
        assert_eq!(keys(&chunk["choices"][0]["delta"]), ["role", "content"]);
    }
    assert_eq!(keys(&usage_chunk.1), CHAT_COMPLETION);
    assert_eq!(keys(&usage_chunk.1["usage"]), CHAT_USAGE);

    let body = format!(
        r#"{{"model":"toy","stream":true,"tools":{TOOLS_CHAT},"messages":[{{"role":"user","content":"lookup x"}}]}}"#
    );
    let chunks = sse(&post(&mut conn, "/v1/chat/completions", &body));
    let delta = chunks
        .iter()
        .map(|(_, c)| &c["choices"][0]["delta"])
        .find(|d| d.get("tool_calls").is_some())
        .expect("a tool_calls chunk");
    assert_eq!(keys(delta), ["role", "content", "tool_calls"]);
    assert_eq!(
        keys(&delta["tool_calls"][0]),
        ["id", "index", "type", "function"]
    );
}

#[test]
fn models_and_errors_follow_openai_structs() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let list = conn.send("GET", "/v1/models", &[], None).json();
    // openai.ListCompletion of openai.Model
    assert_eq!(keys(&list), ["object", "data"]);
    assert_eq!(
        keys(&list["data"][0]),
        ["id", "object", "created", "owned_by"]
    );
    let model = conn.send("GET", "/v1/models/toy", &[], None).json();
    assert_eq!(keys(&model), ["id", "object", "created", "owned_by"]);

    // openai.ErrorResponse{Error: openai.Error}
    let missing = conn.send(
        "POST",
        "/v1/chat/completions",
        &[],
        Some(r#"{"model":"ghost","messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(missing.status, 404);
    let body = missing.json();
    assert_eq!(keys(&body), ["error"]);
    assert_eq!(keys(&body["error"]), ["message", "type", "param", "code"]);
}

#[test]
fn responses_body_follows_responses_response() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let body = post(
        &mut conn,
        "/v1/responses",
        r#"{"model":"toy","input":"hi","text":{"format":{"strict":true,"schema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"string"}}},"name":"pair","type":"json_schema"}}}"#,
    )
    .json();
    assert_eq!(keys(&body), RESPONSE);
    // openai.ResponsesOutputItem (call_id, name, arguments omitempty) and
    // openai.ResponsesOutputContent
    assert_eq!(
        keys(&body["output"][0]),
        ["id", "type", "status", "role", "content"]
    );
    assert_eq!(
        keys(&body["output"][0]["content"][0]),
        ["type", "text", "annotations", "logprobs"]
    );
    assert_eq!(keys(&body["usage"]), RESPONSE_USAGE);
    // openai.ResponsesTextField{Format: openai.ResponsesTextFormat}; the schema is a
    // json.RawMessage, so it keeps the client's order.
    let format = &body["text"]["format"];
    assert_eq!(keys(format), ["type", "name", "schema", "strict"]);
    assert_eq!(keys(&format["schema"]), ["type", "properties"]);
    assert_eq!(keys(&format["schema"]["properties"]), ["b", "a"]);

    let body = post(
        &mut conn,
        "/v1/responses",
        r#"{"model":"toy","input":"lookup x","tools":[{"parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]},"name":"lookup","type":"function"}]}"#,
    )
    .json();
    assert_eq!(keys(&body), RESPONSE);
    assert_eq!(
        keys(&body["output"][0]),
        ["id", "type", "status", "call_id", "name", "arguments"]
    );
    // openai.ResponsesTool; its Parameters is a map[string]any, so sorted.
    assert_eq!(
        keys(&body["tools"][0]),
        ["type", "name", "description", "strict", "parameters"]
    );
    assert_eq!(
        keys(&body["tools"][0]["parameters"]),
        ["properties", "required", "type"]
    );
}

#[test]
fn responses_stream_events_are_go_maps_with_sorted_keys() {
    // ResponsesStreamConverter builds every event, and the response object and items
    // inside it, as map[string]any; newEvent adds `type` and `sequence_number`.
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let reply = post(
        &mut conn,
        "/v1/responses",
        r#"{"model":"toy","input":"hi","stream":true,"text":{"format":{"type":"json_schema","name":"pair","schema":{"type":"object","properties":{"b":{"type":"string"}}}}}}"#,
    );
    let events = sse(&reply);
    for (name, data) in &events {
        let got = keys(data);
        assert_eq!(got, sorted(got.clone()), "{name:?}");
    }

    let created = event(&events, "response.created");
    assert_eq!(keys(created), ["response", "sequence_number", "type"]);
    let response = &created["response"];
    assert_eq!(keys(response), sorted(RESPONSE.to_vec()));
    // buildResponseObject's textFormat map; the schema stays raw.
    let format = &response["text"]["format"];
    assert_eq!(keys(format), ["name", "schema", "type"]);
    assert_eq!(keys(&format["schema"]), ["type", "properties"]);

    let added = event(&events, "response.output_item.added");
    assert_eq!(
        keys(&added["item"]),
        ["content", "id", "role", "status", "type"]
    );
    let part = event(&events, "response.content_part.added");
    assert_eq!(
        keys(&part["part"]),
        ["annotations", "logprobs", "text", "type"]
    );
    let delta = event(&events, "response.output_text.delta");
    assert_eq!(
        keys(delta),
        [
            "content_index",
            "delta",
            "item_id",
            "logprobs",
            "output_index",
            "sequence_number",
            "type"
        ]
    );

    let completed = &event(&events, "response.completed")["response"];
    assert_eq!(keys(completed), sorted(RESPONSE.to_vec()));
    assert_eq!(keys(&completed["usage"]), sorted(RESPONSE_USAGE.to_vec()));
    assert_eq!(
        keys(&completed["output"][0]),
        ["content", "id", "role", "status", "type"]
    );
    assert_eq!(
        keys(&completed["output"][0]["content"][0]),
        ["annotations", "logprobs", "text", "type"]
    );

    let reply = post(
        &mut conn,
        "/v1/responses",
        r#"{"model":"toy","input":"lookup x","stream":true,"tools":[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]}"#,
    );
    let events = sse(&reply);
    let function_item = ["arguments", "call_id", "id", "name", "status", "type"];
    assert_eq!(
        keys(&event(&events, "response.output_item.added")["item"]),
        function_item
    );
    assert_eq!(
        keys(&event(&events, "response.output_item.done")["item"]),
        function_item
    );
    assert_eq!(
        keys(event(&events, "response.function_call_arguments.delta")),
        [
            "delta",
            "item_id",
            "output_index",
            "sequence_number",
            "type"
        ]
    );
    let completed = &event(&events, "response.completed")["response"];
    assert_eq!(keys(&completed["output"][0]), function_item);
    assert_eq!(
        keys(&completed["tools"][0]),
        ["description", "name", "parameters", "strict", "type"]
    );
}

#[test]
fn anthropic_messages_follow_anthropic_structs() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    let body = post(
        &mut conn,
        "/v1/messages",
        r#"{"model":"toy","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .json();
    // anthropic.MessagesResponse (stop_sequence omitempty), anthropic.ContentBlock,
    // anthropic.Usage
    assert_eq!(
        keys(&body),
        [
            "id",
            "type",
            "role",
            "model",
            "content",
            "stop_reason",
            "usage"
        ]
    );
    assert_eq!(keys(&body["content"][0]), ["type", "text"]);
    assert_eq!(keys(&body["usage"]), ["input_tokens", "output_tokens"]);

    let reply = post(
        &mut conn,
        "/v1/messages",
        r#"{"model":"toy","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let events = sse(&reply);
    // anthropic.MessageStartEvent; its message has no stop_reason yet (omitempty)
    let start = event(&events, "message_start");
    assert_eq!(keys(start), ["type", "message"]);
    assert_eq!(
        keys(&start["message"]),
        ["id", "type", "role", "model", "content", "usage"]
    );
    // anthropic.ContentBlockStartEvent, ContentBlockDeltaEvent and Delta,
    // ContentBlockStopEvent, MessageDeltaEvent
    let block = event(&events, "content_block_start");
    assert_eq!(keys(block), ["type", "index", "content_block"]);
    assert_eq!(keys(&block["content_block"]), ["type", "text"]);
    let delta = event(&events, "content_block_delta");
    assert_eq!(keys(delta), ["type", "index", "delta"]);
    assert_eq!(keys(&delta["delta"]), ["type", "text"]);
    assert_eq!(
        keys(event(&events, "content_block_stop")),
        ["type", "index"]
    );
    assert_eq!(
        keys(event(&events, "message_delta")),
        ["type", "delta", "usage"]
    );

    let reply = post(
        &mut conn,
        "/v1/messages",
        r#"{"model":"toy","max_tokens":64,"stream":true,"tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],"messages":[{"role":"user","content":"lookup x"}]}"#,
    );
    let events = sse(&reply);
    let block = event(&events, "content_block_start");
    assert_eq!(
        keys(&block["content_block"]),
        ["type", "id", "name", "input"]
    );
    assert_eq!(
        keys(&event(&events, "content_block_delta")["delta"]),
        ["type", "partial_json"]
    );

    // anthropic.ErrorResponse{Error: anthropic.Error}
    let missing = conn.send(
        "POST",
        "/v1/messages",
        &[],
        Some(r#"{"model":"ghost","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#),
    );
    assert_eq!(missing.status, 404);
    let body = missing.json();
    assert_eq!(keys(&body), ["type", "error", "request_id"]);
    assert_eq!(keys(&body["error"]), ["type", "message"]);
}

// api.Metrics, embedded last in both answers (all omitempty, all set on done).
const METRICS: [&str; 6] = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
];

fn with_metrics<'a>(head: &[&'a str]) -> Vec<&'a str> {
    head.iter().copied().chain(METRICS).collect()
}

#[test]
fn native_answers_follow_api_types() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    // api.GenerateResponse: done before done_reason, then context.
    let body = post(
        &mut conn,
        "/api/generate",
        r#"{"model":"toy","prompt":"hi","stream":false}"#,
    )
    .json();
    assert_eq!(
        keys(&body),
        with_metrics(&[
            "model",
            "created_at",
            "response",
            "done",
            "done_reason",
            "context"
        ])
    );
    // api.ChatResponse: Done before DoneReason (api/types.go, v0.12.0 to v0.32.15).
    let body = post(
        &mut conn,
        "/api/chat",
        r#"{"model":"toy","messages":[{"role":"user","content":"hi"}],"stream":false}"#,
    )
    .json();
    assert_eq!(
        keys(&body),
        with_metrics(&["model", "created_at", "message", "done", "done_reason"])
    );
    assert_eq!(keys(&body["message"]), ["role", "content"]);
    // A streamed chunk: done_reason is omitempty and empty until the end.
    let reply = post(
        &mut conn,
        "/api/chat",
        r#"{"model":"toy","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let first: Value = serde_json::from_str(reply.text().lines().next().unwrap()).unwrap();
    assert_eq!(keys(&first), ["model", "created_at", "message", "done"]);

    // api.Message, api.ToolCall, api.ToolCallFunction; the arguments are a Go map.
    let tools = r#"[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}}}]"#;
    let body = post(
        &mut conn,
        "/api/chat",
        &format!(
            r#"{{"model":"toy","tools":{tools},"messages":[{{"role":"user","content":"lookup"}}],"stream":false}}"#
        ),
    )
    .json();
    let message = &body["message"];
    assert_eq!(keys(message), ["role", "content", "tool_calls"]);
    let function = &message["tool_calls"][0]["function"];
    assert_eq!(keys(function), ["index", "name", "arguments"]);
    assert_eq!(keys(&function["arguments"]), ["alpha", "zeta"]);
}

#[test]
fn native_model_lists_follow_api_types() {
    let emulator = start(EmulatorConfig::default());
    let mut conn = Connection::open(&emulator);
    // api.ListModelResponse and api.ModelDetails
    let body = conn.send("GET", "/api/tags", &[], None).json();
    let model = &body["models"][0];
    assert_eq!(
        keys(model),
        ["name", "model", "modified_at", "size", "digest", "details"]
    );
    assert_eq!(
        keys(&model["details"]),
        [
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level"
        ]
    );
    // api.ShowResponse (license and system omitempty); model_info is a Go map.
    let body = post(&mut conn, "/api/show", r#"{"model":"toy"}"#).json();
    assert_eq!(
        keys(&body),
        [
            "modelfile",
            "parameters",
            "template",
            "details",
            "model_info",
            "capabilities",
            "modified_at"
        ]
    );
    let info = keys(&body["model_info"]);
    assert_eq!(info, sorted(info.clone()));
    // api.ProcessModelResponse, once a model is loaded.
    post(
        &mut conn,
        "/api/generate",
        r#"{"model":"toy","prompt":"hi","stream":false}"#,
    );
    let body = conn.send("GET", "/api/ps", &[], None).json();
    assert_eq!(
        keys(&body["models"][0]),
        [
            "name",
            "model",
            "size",
            "digest",
            "details",
            "expires_at",
            "size_vram",
            "context_length"
        ]
    );
}
