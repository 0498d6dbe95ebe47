//! Error-behaviour checks: unknown models, malformed JSON, foreign Origins.

use serde::de::DeserializeOwned;
use serde_json::json;

use super::probe::{ANTHROPIC_HEADERS, OPENAI_HEADERS, Probe, contract};
use super::{Family, Needs, Passed, Runner};
use crate::client::decode;
use crate::error::Error;
use crate::types::{anthropic, native, openai};
use crate::version::MESSAGES_SINCE;

/// A model name no server has.
pub const NO_SUCH_MODEL: &str = "sovereign-check-no-such-model";
/// Cut off mid-document on purpose.
const MALFORMED_JSON: &[u8] = br#"{"model": "x", "messages": ["#;

pub(super) fn run(runner: &mut Runner<'_>) {
    runner.check("errors.unknown_model.native", Family::Errors, "unknown model on /api/chat: 404 with {\"error\"}", Needs::NOTHING, |probe| {
        let body = json!({ "model": NO_SUCH_MODEL, "messages": [{ "role": "user", "content": "hi" }], "stream": false });
        let error: native::ErrorResponse = expect_error(probe, "/api/chat", &[], serde_json::to_vec(&body).unwrap_or_default(), 404)?;
        Ok((Passed::detail(error.error), ()))
    });

    runner.check("errors.unknown_model.openai", Family::Errors, "unknown model on /v1/chat/completions: 404 with an OpenAI error", Needs::NOTHING, |probe| {
        let body = json!({ "model": NO_SUCH_MODEL, "messages": [{ "role": "user", "content": "hi" }] });
        let error: openai::ErrorResponse = expect_error(probe, "/v1/chat/completions", OPENAI_HEADERS, serde_json::to_vec(&body).unwrap_or_default(), 404)?;
        Ok((Passed::detail(format!("{}: {}", error.error.kind, error.error.message)), ()))
    });

    let messages = Needs::NOTHING.since(&MESSAGES_SINCE, "/v1/messages");
    runner.check("errors.unknown_model.anthropic", Family::Errors, "unknown model on /v1/messages: 404 with an Anthropic error", messages, |probe| {
        let body = json!({ "model": NO_SUCH_MODEL, "max_tokens": 8, "messages": [{ "role": "user", "content": "hi" }] });
        let error: anthropic::ErrorResponse = expect_error(probe, "/v1/messages", ANTHROPIC_HEADERS, serde_json::to_vec(&body).unwrap_or_default(), 404)?;
        if error.kind != "error" {
            return Err(contract("POST /v1/messages", format!("error body type is {:?}, expected \"error\"", error.kind)));
        }
        Ok((Passed::detail(format!("{}: {}", error.error.kind, error.error.message)), ()))
    });

    runner.check(
        "errors.malformed_json.native",
        Family::Errors,
        "malformed JSON on /api/chat: 400 with {\"error\"}",
        Needs::NOTHING,
        |probe| {
            let error: native::ErrorResponse =
                expect_error(probe, "/api/chat", &[], MALFORMED_JSON.to_vec(), 400)?;
            Ok((Passed::detail(error.error), ()))
        },
    );

    runner.check(
        "errors.malformed_json.openai",
        Family::Errors,
        "malformed JSON on /v1/chat/completions: 400 with an OpenAI error",
        Needs::NOTHING,
        |probe| {
            let error: openai::ErrorResponse = expect_error(
                probe,
                "/v1/chat/completions",
                OPENAI_HEADERS,
                MALFORMED_JSON.to_vec(),
                400,
            )?;
            Ok((
                Passed::detail(format!("{}: {}", error.error.kind, error.error.message)),
                (),
            ))
        },
    );

    runner.check("errors.origin", Family::Errors, "a foreign Origin is refused with 403", Needs::NOTHING, |probe| {
        let origin = probe.options.foreign_origin.clone();
        let (status, _) = probe.exchange("GET", "/api/version", &[("origin", origin.as_str())], None)?;
        if status != 403 {
            return Err(contract(
                "GET /api/version",
                format!("Origin {origin} got HTTP {status}, expected 403 (is OLLAMA_ORIGINS too broad, e.g. \"*\"?)"),
            ));
        }
        Ok((Passed::detail(format!("{origin} refused")), ()))
    });
}

/// POSTs `body` and requires `status` plus an error body of type `T`.
fn expect_error<T: DeserializeOwned>(
    probe: &Probe<'_>,
    path: &str,
    headers: &[(&'static str, &str)],
    body: Vec<u8>,
    status: u16,
) -> Result<T, Error> {
    let endpoint = format!("POST {path}");
    let (actual, response) = probe.exchange("POST", path, headers, Some(body))?;
    if actual != status {
        return Err(contract(
            &endpoint,
            format!(
                "HTTP {actual}, expected {status}: {}",
                crate::client::snippet(&response)
            ),
        ));
    }
    decode(&endpoint, "error body", &response)
}
