//! Version profiles: which routes and wire formats an Ollama release has.
//!
//! One profile per wire-format change that clients notice, worked out from the
//! ollama/ollama sources at each tag (files cited per gate). Any version can be
//! claimed with `--ollama-version`; its wire format is that of the newest profile at
//! or below it, so `0.14.1` behaves like the `0.14.0` profile.

use crate::app::Version;

/// A release line whose wire format differs from the one before it.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// First release of the line (what `--ollama-version` should be set to).
    pub version: &'static str,
    /// Last release with this wire format, as far as the emulator's surface goes.
    pub through: &'static str,
    /// What changed, with the source that shows it.
    pub change: &'static str,
}

/// The profiles, oldest first. `--help` and docs/ollama.md list them.
pub const PROFILES: &[Profile] = &[
    Profile {
        version: "0.13.0",
        through: "0.13.2",
        change: "native /api/*, /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models; no /v1/responses, no /v1/messages (server/routes.go@v0.13.0)",
    },
    Profile {
        version: "0.13.3",
        through: "0.13.5",
        change: "adds /v1/responses; streamed response.created/completed carry only id, object, status, output (+usage) and no created_at or model; output_text has no annotations/logprobs (openai/responses.go@v0.13.3)",
    },
    Profile {
        version: "0.14.0",
        through: "0.14.1",
        change: "adds /v1/messages (Anthropic); message_delta.usage has output_tokens only (anthropic/anthropic.go@v0.14.0 DeltaUsage)",
    },
    Profile {
        version: "0.14.2",
        through: "0.15.4",
        change: "Responses objects gain the full ResponsesResponse field set (created_at, model, completed_at, tools, text, usage details...) in bodies and stream events (openai/responses.go@v0.14.2)",
    },
    Profile {
        version: "0.15.5",
        through: "0.21.2",
        change: "message_delta.usage gains input_tokens (anthropic/anthropic.go@v0.15.5 DeltaUsage)",
    },
    Profile {
        version: "0.22.0",
        through: "0.23.3",
        change: "/v1/responses reads reasoning.effort (\"none\" turns thinking off); before, Responses requests always got the model's default (openai/responses.go@v0.22.0)",
    },
    Profile {
        version: "0.23.4",
        through: "0.32.15",
        change: "Anthropic thinking {type: disabled} turns thinking off; before, only \"enabled\" was read and thinking models always thought (anthropic/anthropic.go@v0.23.4)",
    },
];

/// The newest release the emulator was compared with (the default claim).
pub const NEWEST: &str = "0.32.15";

/// `/v1/responses` route: server/routes.go@v0.13.3.
pub const RESPONSES_SINCE: Version = Version(0, 13, 3);
/// `/v1/messages` route: server/routes.go@v0.14.0.
pub const MESSAGES_SINCE: Version = Version(0, 14, 0);
/// Full `ResponsesResponse` (and `buildResponseObject` in streams): openai/responses.go@v0.14.2.
pub const FULL_RESPONSE_OBJECT_SINCE: Version = Version(0, 14, 2);
/// `DeltaUsage.InputTokens`: anthropic/anthropic.go@v0.15.5.
pub const DELTA_INPUT_TOKENS_SINCE: Version = Version(0, 15, 5);
/// Responses `reasoning.effort` maps to think: openai/responses.go@v0.22.0.
pub const RESPONSES_EFFORT_SINCE: Version = Version(0, 22, 0);
/// Anthropic `thinking: {"type": "disabled"}` maps to think=false: before this the
/// middleware only read "enabled" (anthropic/anthropic.go@v0.14.0 line 299; the
/// "disabled" branch appears at v0.23.4).
pub const THINKING_DISABLED_SINCE: Version = Version(0, 23, 4);

/// What the claimed version's wire format has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub responses: bool,
    pub messages: bool,
    pub full_response_object: bool,
    pub delta_input_tokens: bool,
    pub responses_effort: bool,
    pub thinking_disabled: bool,
}

impl Wire {
    pub fn of(version: Version) -> Wire {
        Wire {
            responses: version >= RESPONSES_SINCE,
            messages: version >= MESSAGES_SINCE,
            full_response_object: version >= FULL_RESPONSE_OBJECT_SINCE,
            delta_input_tokens: version >= DELTA_INPUT_TOKENS_SINCE,
            responses_effort: version >= RESPONSES_EFFORT_SINCE,
            thinking_disabled: version >= THINKING_DISABLED_SINCE,
        }
    }
}

/// The `--help` text listing the profiles.
pub fn help_text() -> String {
    let mut text = String::from(
        "Version profiles (--ollama-version; any version picks the newest profile at or below it):\n",
    );
    for p in PROFILES {
        text.push_str(&format!(
            "  {:<7} ({}-{}): {}\n",
            p.version, p.version, p.through, p.change
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_profile_differs_from_the_one_before() {
        let wires: Vec<Wire> = PROFILES
            .iter()
            .map(|p| Wire::of(Version::parse(p.version).unwrap()))
            .collect();
        for pair in wires.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        // The last release of a line still has that line's format.
        for p in PROFILES {
            assert_eq!(
                Wire::of(Version::parse(p.version).unwrap()),
                Wire::of(Version::parse(p.through).unwrap()),
                "{}",
                p.version
            );
        }
    }
}
