//! Anthropic-compatible checks (`POST /v1/messages`, Ollama >= 0.14.0).

use std::time::Instant;

use serde_json::json;

use super::native::PROMPT;
use super::openai::{TOOL_CALL_ID, TOOL_NAME, TOOL_PROMPT, TOOL_RESULT, tool_parameters};
use super::probe::{ANTHROPIC_HEADERS, Probe, SseReader, contract, whole_response_stats};
use super::{Family, Needs, Passed, Runner};
use crate::error::Error;
use crate::types::anthropic::{
    BlockDelta, ContentBlock, MessageParam, MessagesRequest, MessagesResponse, StreamEvent, Tool,
};
use crate::version::MESSAGES_SINCE;

const ENDPOINT: &str = "POST /v1/messages";

pub(super) fn run(runner: &mut Runner<'_>) {
    let needs = Needs::MODEL.since(&MESSAGES_SINCE, "/v1/messages");
    let needs_tools = Needs::TOOLS.since(&MESSAGES_SINCE, "/v1/messages");

    runner.check(
        "anthropic.messages",
        Family::Anthropic,
        "POST /v1/messages, not streamed",
        needs,
        |probe| {
            let start = Instant::now();
            let message = send(probe, &request(probe, probe.options.max_tokens))?;
            let elapsed = start.elapsed();
            let produced = !message.text().trim().is_empty()
                || message
                    .content
                    .iter()
                    .any(|b| matches!(b, ContentBlock::Thinking { .. }));
            if !produced {
                return Err(contract(ENDPOINT, "no text or thinking content"));
            }
            let stop = message.stop_reason.as_deref().unwrap_or_default();
            if !matches!(stop, "end_turn" | "max_tokens" | "stop_sequence") {
                return Err(contract(ENDPOINT, format!("stop_reason is {stop:?}")));
            }
            let stats = whole_response_stats(Some(message.usage.output_tokens), elapsed, None);
            Ok((Passed::generation(stats, format!("stop_reason {stop}")), ()))
        },
    );

    runner.check(
        "anthropic.messages.stream",
        Family::Anthropic,
        "POST /v1/messages, streamed with the full event sequence",
        needs,
        |probe| {
            let mut body = request(probe, probe.options.max_tokens);
            body.stream = true;
            let (mut reader, mut clock) = probe
                .open_stream(
                    "/v1/messages",
                    ANTHROPIC_HEADERS,
                    &body,
                    "text/event-stream",
                )?
                .sse();
            let mut sequence = EventSequence::default();
            while let Some(event) = reader.next_event()? {
                let parsed = typed_event(&reader, event.event.as_deref(), &event.data)?;
                if let StreamEvent::ContentBlockDelta { delta, .. } = &parsed
                    && !matches!(delta, BlockDelta::SignatureDelta { .. } | BlockDelta::Other)
                {
                    clock.piece();
                }
                sequence.accept(&parsed).map_err(|m| reader.contract(m))?;
            }
            let (blocks, stop, output_tokens) = sequence
                .finish()
                .map_err(|expected| reader.ended(expected))?;
            let detail =
                format!("message_start, {blocks} block(s), message_delta ({stop}), message_stop");
            Ok((
                Passed::generation(clock.stats(Some(output_tokens)), detail),
                (),
            ))
        },
    );

    runner.check(
        "anthropic.system",
        Family::Anthropic,
        "a system prompt is accepted",
        needs,
        |probe| {
            let mut body = request(probe, probe.options.max_tokens);
            body.system = Some("You are a terse assistant. Answer in five words or fewer.".into());
            let message = send(probe, &body)?;
            Ok((
                Passed::detail(format!("{} content block(s)", message.content.len())),
                (),
            ))
        },
    );

    runner.check("anthropic.tools", Family::Anthropic, "a message calls an offered tool (tool_use)", needs_tools, |probe| {
        let mut body = request(probe, probe.roomy_tokens());
        body.messages[0].content = json!(TOOL_PROMPT);
        body.tools = Some(vec![offered_tool()]);
        let message = send(probe, &body)?;
        let call = message.content.iter().find_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some((id, name, input)),
            _ => None,
        });
        let Some((id, name, input)) = call else {
            return Err(contract(ENDPOINT, "no tool_use block in the answer"));
        };
        if name != TOOL_NAME || !input.is_object() || id.is_empty() {
            return Err(contract(ENDPOINT, format!("tool_use {name:?} with input {input}, expected {TOOL_NAME:?} with an object")));
        }
        if message.stop_reason.as_deref() != Some("tool_use") {
            return Err(contract(ENDPOINT, format!("stop_reason is {:?}, expected \"tool_use\"", message.stop_reason)));
        }
        Ok((Passed::detail(format!("{name}({input})")), ()))
    });

    runner.check(
        "anthropic.tools.stream",
        Family::Anthropic,
        "a streamed message calls an offered tool (tool_use + input_json_delta, as Claude Code reads it)",
        needs_tools,
        |probe| {
            let mut body = request(probe, probe.roomy_tokens());
            body.messages[0].content = json!(TOOL_PROMPT);
            body.tools = Some(vec![offered_tool()]);
            body.stream = true;
            let (mut reader, _clock) = probe
                .open_stream("/v1/messages", ANTHROPIC_HEADERS, &body, "text/event-stream")?
                .sse();
            let mut sequence = EventSequence::default();
            let mut tool: Option<(u32, String, String)> = None;
            while let Some(event) = reader.next_event()? {
                let parsed = typed_event(&reader, event.event.as_deref(), &event.data)?;
                match &parsed {
                    StreamEvent::ContentBlockStart {
                        index,
                        content_block: ContentBlock::ToolUse { name, .. },
                    } if tool.is_none() => tool = Some((*index, name.clone(), String::new())),
                    StreamEvent::ContentBlockDelta {
                        index,
                        delta: BlockDelta::InputJsonDelta { partial_json },
                    } => {
                        if let Some((open, _, json)) = tool.as_mut()
                            && open == index
                        {
                            json.push_str(partial_json);
                        }
                    }
                    _ => {}
                }
                sequence.accept(&parsed).map_err(|m| reader.contract(m))?;
            }
            let (_, stop, _) = sequence.finish().map_err(|e| reader.ended(e))?;
            let Some((_, name, input)) = tool else {
                return Err(reader.contract("no tool_use content block"));
            };
            // The SDKs parse the concatenated partial_json as the tool's input.
            let input_ok = input.trim().is_empty()
                || matches!(serde_json::from_str::<serde_json::Value>(&input), Ok(serde_json::Value::Object(_)));
            if name != TOOL_NAME || !input_ok {
                return Err(reader.contract(format!(
                    "tool_use {name:?} with input {input:?}, expected {TOOL_NAME:?} with a JSON object"
                )));
            }
            if stop != "tool_use" {
                return Err(reader.contract(format!("stop_reason is {stop:?}, expected \"tool_use\"")));
            }
            Ok((Passed::detail(format!("{name}({input})")), ()))
        },
    );

    runner.check(
        "anthropic.tools.result",
        Family::Anthropic,
        "a tool_result block gets an answer",
        needs_tools,
        |probe| {
            let mut body = request(probe, probe.roomy_tokens());
            body.messages = vec![
                MessageParam { role: "user".into(), content: json!(TOOL_PROMPT) },
                MessageParam {
                    role: "assistant".into(),
                    content: json!([{ "type": "tool_use", "id": TOOL_CALL_ID, "name": TOOL_NAME, "input": { "timezone": "UTC" } }]),
                },
                MessageParam {
                    role: "user".into(),
                    content: json!([{ "type": "tool_result", "tool_use_id": TOOL_CALL_ID, "content": TOOL_RESULT }]),
                },
            ];
            body.tools = Some(vec![offered_tool()]);
            let message = send(probe, &body)?;
            if message.content.is_empty() {
                return Err(contract(ENDPOINT, "no content in the answer to the tool result"));
            }
            Ok((
                Passed::detail(format!(
                    "{} block(s), stop_reason {}",
                    message.content.len(),
                    message.stop_reason.as_deref().unwrap_or("(none)")
                )),
                (),
            ))
        },
    );
}

/// A one-message request. A thinking model is sent `thinking: disabled`, which
/// Ollama honours from 0.23.4 and ignores before (the checks then accept thinking
/// blocks and leave room for them).
fn request(probe: &Probe<'_>, max_tokens: u32) -> MessagesRequest {
    MessagesRequest {
        model: probe.model().to_string(),
        max_tokens,
        messages: vec![MessageParam {
            role: "user".into(),
            content: json!(PROMPT),
        }],
        thinking: probe.thinks.then(|| json!({ "type": "disabled" })),
        ..MessagesRequest::default()
    }
}

fn offered_tool() -> Tool {
    Tool {
        name: TOOL_NAME.into(),
        description: "Returns the current time in a time zone".into(),
        input_schema: tool_parameters(),
    }
}

fn send(
    probe: &super::probe::Probe<'_>,
    body: &MessagesRequest,
) -> Result<MessagesResponse, Error> {
    let message: MessagesResponse =
        probe.post("/v1/messages", ANTHROPIC_HEADERS, body, "Anthropic message")?;
    if message.kind != "message" || message.role != "assistant" {
        return Err(contract(
            ENDPOINT,
            format!(
                "type {:?} role {:?}, expected \"message\" \"assistant\"",
                message.kind, message.role
            ),
        ));
    }
    Ok(message)
}

/// Decodes an event and checks its `event:` name matches the payload's `type`.
fn typed_event(reader: &SseReader, name: Option<&str>, data: &str) -> Result<StreamEvent, Error> {
    let event: StreamEvent = reader.decode("Anthropic stream event", data)?;
    if name != Some(event.name()) {
        return Err(reader.contract(format!(
            "event {name:?} carries a {:?} payload",
            event.name()
        )));
    }
    if let StreamEvent::Error { error } = &event {
        return Err(reader.contract(format!("error event: {} ({})", error.message, error.kind)));
    }
    Ok(event)
}

/// The event grammar Anthropic clients rely on:
/// `message_start (content_block_start content_block_delta* content_block_stop)+
///  message_delta message_stop`, block indexes counting up from 0, `ping` anywhere.
#[derive(Debug, Default)]
struct EventSequence {
    started: bool,
    open_block: Option<u32>,
    next_index: u32,
    stop_reason: Option<String>,
    output_tokens: u64,
    delta_seen: bool,
    stopped: bool,
}

impl EventSequence {
    fn accept(&mut self, event: &StreamEvent) -> Result<(), String> {
        if self.stopped {
            return Err(format!("{} after message_stop", event.name()));
        }
        match event {
            StreamEvent::Ping => return Ok(()),
            StreamEvent::MessageStart { .. } if !self.started => self.started = true,
            _ if !self.started => {
                return Err(format!(
                    "first event is {}, expected message_start",
                    event.name()
                ));
            }
            StreamEvent::ContentBlockStart { index, .. }
                if self.open_block.is_none() && !self.delta_seen =>
            {
                if *index != self.next_index {
                    return Err(format!(
                        "content_block_start index {index}, expected {}",
                        self.next_index
                    ));
                }
                self.open_block = Some(*index);
            }
            StreamEvent::ContentBlockDelta { index, .. }
            | StreamEvent::ContentBlockStop { index }
                if self.open_block != Some(*index) =>
            {
                return Err(format!(
                    "{} for block {index}, which is not open",
                    event.name()
                ));
            }
            StreamEvent::ContentBlockDelta { .. } => {}
            StreamEvent::ContentBlockStop { .. } => {
                self.open_block = None;
                self.next_index += 1;
            }
            StreamEvent::MessageDelta { delta, usage }
                if self.open_block.is_none() && !self.delta_seen =>
            {
                self.delta_seen = true;
                self.stop_reason = delta.stop_reason.clone();
                self.output_tokens = usage.output_tokens;
            }
            StreamEvent::MessageStop if self.delta_seen => self.stopped = true,
            other => return Err(format!("unexpected {} at this point", other.name())),
        }
        Ok(())
    }

    /// (blocks, stop reason, output tokens) once the sequence is complete.
    fn finish(self) -> Result<(u32, String, u64), &'static str> {
        if !self.started {
            return Err("message_start");
        }
        if !self.stopped {
            return Err("message_stop");
        }
        if self.next_index == 0 {
            return Err("a content block");
        }
        let stop = self.stop_reason.ok_or("a stop_reason in message_delta")?;
        Ok((self.next_index, stop, self.output_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(events: &[&str]) -> Vec<StreamEvent> {
        events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}"#;
    const BLOCK_START: &str =
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    const DELTA: &str =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
    const BLOCK_STOP: &str = r#"{"type":"content_block_stop","index":0}"#;
    const MESSAGE_DELTA: &str = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}"#;
    const STOP: &str = r#"{"type":"message_stop"}"#;

    fn run(events: &[&str]) -> Result<(u32, String, u64), String> {
        let mut sequence = EventSequence::default();
        for event in parse(events) {
            sequence.accept(&event)?;
        }
        sequence.finish().map_err(str::to_string)
    }

    #[test]
    fn accepts_the_full_sequence_with_pings() {
        let ping = r#"{"type":"ping"}"#;
        assert_eq!(
            run(&[
                START,
                ping,
                BLOCK_START,
                DELTA,
                DELTA,
                BLOCK_STOP,
                MESSAGE_DELTA,
                STOP
            ]),
            Ok((1, "end_turn".into(), 1))
        );
    }

    #[test]
    fn rejects_broken_orders() {
        assert!(run(&[BLOCK_START, DELTA, BLOCK_STOP, MESSAGE_DELTA, STOP]).is_err());
        assert!(run(&[START, DELTA, BLOCK_STOP, MESSAGE_DELTA, STOP]).is_err());
        assert!(run(&[START, BLOCK_START, DELTA, MESSAGE_DELTA, STOP]).is_err());
        assert!(run(&[START, BLOCK_START, DELTA, BLOCK_STOP, STOP]).is_err());
        assert!(run(&[START, BLOCK_START, DELTA, BLOCK_STOP, MESSAGE_DELTA]).is_err());
        assert!(run(&[START, MESSAGE_DELTA, STOP]).is_err());
        assert!(run(&[START, BLOCK_START, BLOCK_STOP, MESSAGE_DELTA, STOP, STOP]).is_err());
    }
}
