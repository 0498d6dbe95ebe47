//! Anthropic-compatible API: `POST /v1/messages` (Ollama >= 0.14.0).
//! Errors are `{"type":"error","error":{"type","message"},"request_id"}`.

use std::io;

use serde_json::{Map, Value, json};

use crate::app::{
    Admission, App, ConversationBuilder, GenerationClock, KeepAlive, content_text, parse_body,
    parse_tools, play_silently, play_thinking, play_tokens, send_json, send_sse_event,
};
use crate::http::{Request, Responder};
use crate::native::model_not_found;
use crate::toy::{self, Completion, OutputFormat, Prompt};

pub fn error(app: &App, out: &mut Responder<'_>, status: u16, message: &str) -> io::Result<()> {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    send_json(
        out,
        status,
        &json!({
            "type": "error",
            "error": { "type": kind, "message": message },
            "request_id": format!("req_{}", app.hex_id(24)),
        }),
    )
}

pub fn messages(app: &App, request: &Request, out: &mut Responder<'_>) -> io::Result<()> {
    let body = match parse_body(request) {
        Ok(b) => b,
        Err(e) => return error(app, out, 400, &e),
    };
    let Some(model) = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return error(app, out, 400, "model is required");
    };
    if body.get("max_tokens").and_then(Value::as_i64).unwrap_or(0) <= 0 {
        return error(app, out, 400, "max_tokens is required and must be positive");
    }
    let mut prompt = match messages_prompt(&body) {
        Ok(p) => p,
        Err(e) => return error(app, out, 400, &e),
    };
    if app.with_model(model, |_| ()).is_none() {
        return error(app, out, 404, &model_not_found(model));
    }
    // FromMessagesRequest: "enabled" turns thinking on at every version; "disabled"
    // turns it off only from v0.23.4 (before, the model's default applied).
    let think = match body
        .get("thinking")
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
    {
        Some("enabled") => Some(true),
        Some("disabled") if app.wire.thinking_disabled => Some(false),
        _ => None,
    };
    let admission = Admission {
        chat: true,
        tools: !prompt.tools.is_empty(),
        // The middleware marks requests "relax_thinking": thinking asked of a model
        // without it is dropped, not refused (server/routes.go@v0.32.15).
        think: think.filter(|t| !*t || app.with_model(model, |m| m.kind.thinking) == Some(true)),
        ..Admission::default()
    };
    prompt.think = match app.admit(model, admission) {
        Ok(t) => t,
        Err((status, message)) => return error(app, out, status, &message),
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let completion = toy::complete(&prompt);
    let mut clock = GenerationClock::start();
    app.touch_loaded(model, KeepAlive::from_request(None), None);
    let id = format!("msg_{}", app.hex_id(24));
    let (input_tokens, output_tokens) = (prompt.prompt_tokens(), completion.output_tokens());
    let stop_reason = match (&completion, completion.done_reason()) {
        (Completion::ToolCall { .. }, _) => "tool_use",
        (_, "length") => "max_tokens",
        _ => "end_turn",
    };
    let tool_use = match &completion {
        Completion::ToolCall { name, arguments } => Some((
            format!("call_{}", app.hex_id(8)),
            name.clone(),
            arguments.clone(),
        )),
        Completion::Text { .. } => None,
    };

    if !stream {
        play_silently(app, &completion, &mut clock);
        let mut content = Vec::new();
        if !completion.thinking().is_empty() {
            content.push(
                json!({ "type": "thinking", "thinking": completion.thinking(), "signature": "" }),
            );
        }
        match &tool_use {
            Some((tool_id, name, input)) => content
                .push(json!({ "type": "tool_use", "id": tool_id, "name": name, "input": input })),
            None if completion.text().is_empty() => {}
            None => content.push(json!({ "type": "text", "text": completion.text() })),
        }
        let content = json!(content);
        return send_json(
            out,
            200,
            &json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop_reason,
                "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
            }),
        );
    }

    let mut writer = out.stream(200, "text/event-stream")?;
    send_sse_event(
        &mut writer,
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "usage": { "input_tokens": input_tokens, "output_tokens": 0 },
            },
        }),
    )?;
    if let Some((tool_id, name, input)) = &tool_use {
        play_silently(app, &completion, &mut clock);
        send_sse_event(
            &mut writer,
            "content_block_start",
            &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "tool_use", "id": tool_id, "name": name, "input": {} } }),
        )?;
        send_sse_event(
            &mut writer,
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "input_json_delta", "partial_json": input.to_string() } }),
        )?;
        send_sse_event(
            &mut writer,
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": 0 }),
        )?;
    } else {
        let mut index = 0;
        let mut thinking_open = false;
        play_thinking(app, &completion, &mut clock, |token| {
            if !thinking_open {
                thinking_open = true;
                send_sse_event(
                    &mut writer,
                    "content_block_start",
                    &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "thinking", "thinking": "" } }),
                )?;
            }
            send_sse_event(
                &mut writer,
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "thinking_delta", "thinking": token } }),
            )
        })?;
        if thinking_open {
            send_sse_event(
                &mut writer,
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": 0 }),
            )?;
            index = 1;
        }
        let mut started = false;
        play_tokens(app, &completion, &mut clock, |token| {
            if !started {
                started = true;
                send_sse_event(
                    &mut writer,
                    "content_block_start",
                    &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
                )?;
            }
            send_sse_event(
                &mut writer,
                "content_block_delta",
                &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": token } }),
            )
        })?;
        if started {
            send_sse_event(
                &mut writer,
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
            )?;
        }
    }
    // DeltaUsage has input_tokens from v0.15.5 (anthropic/anthropic.go); before,
    // output_tokens only.
    let delta_usage = if app.wire.delta_input_tokens {
        json!({ "input_tokens": input_tokens, "output_tokens": output_tokens })
    } else {
        json!({ "output_tokens": output_tokens })
    };
    send_sse_event(
        &mut writer,
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason },
            "usage": delta_usage,
        }),
    )?;
    send_sse_event(
        &mut writer,
        "message_stop",
        &json!({ "type": "message_stop" }),
    )?;
    writer.finish()
}

fn messages_prompt(body: &Map<String, Value>) -> Result<Prompt, String> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) | None | Some(Value::Null) => return Err("messages is required".into()),
        Some(_) => return Err("json: cannot unmarshal messages into Go struct field MessagesRequest.messages of type []anthropic.MessageParam".into()),
    };
    let mut conversation = ConversationBuilder::new();
    let system = content_text(body.get("system"));
    if !system.is_empty() {
        conversation.push("system", &system);
    }
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        let content = message.get("content");
        // A user turn that carries tool results is the tools speaking, not the user.
        let carries_tool_result = content.and_then(Value::as_array).is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
        let role = if carries_tool_result { "tool" } else { role };
        conversation.push(role, &content_text(content));
    }
    let max_tokens = body.get("max_tokens").and_then(Value::as_u64);
    Ok(conversation.finish(
        parse_tools(body.get("tools")),
        OutputFormat::Text,
        max_tokens,
    ))
}
