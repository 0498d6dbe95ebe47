//! A [`Transport`] that replays a recorded transcript and fails on any command it
//! did not expect, for testing the engine without a router (the OpenWrt path).
//!
//! Transcript format: exchanges separated by a line `=== <label>`; within one, a
//! `--- script` block (the exact script), then optional `--- stdin-bytes N`,
//! `--- fresh`, `--- stdout` and `--- stderr` blocks and a `--- status N` line.
//! Stdin content is never stored (it may hold keys), only its length.

use std::cell::RefCell;
use std::fmt::Write as _;

use crate::transport::{Output, Transport, TransportError};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exchange {
    pub label: String,
    pub script: String,
    pub fresh: bool,
    pub stdin_bytes: usize,
    pub output: Output,
}

/// Replays exchanges in order. A mismatch is returned as a transport error whose
/// detail shows the expected and the actual script, and the test fails on it.
#[derive(Debug)]
pub struct ReplayTransport {
    expected: Vec<Exchange>,
    position: RefCell<usize>,
    /// Every stdin payload, in order, for assertions on uploads.
    pub uploads: RefCell<Vec<Vec<u8>>>,
}

impl ReplayTransport {
    pub fn new(expected: Vec<Exchange>) -> Self {
        Self {
            expected,
            position: RefCell::new(0),
            uploads: RefCell::new(Vec::new()),
        }
    }

    /// How many exchanges were not replayed.
    pub fn remaining(&self) -> usize {
        self.expected.len() - *self.position.borrow()
    }

    fn next(&self, script: &str, stdin: &[u8], fresh: bool) -> Result<Output, TransportError> {
        let mut position = self.position.borrow_mut();
        let Some(exchange) = self.expected.get(*position) else {
            return Err(TransportError::Ssh {
                destination: "replay".into(),
                detail: format!("unexpected extra command:\n{script}"),
            });
        };
        if exchange.script != script
            || exchange.fresh != fresh
            || exchange.stdin_bytes != stdin.len()
        {
            return Err(TransportError::Ssh {
                destination: "replay".into(),
                detail: format!(
                    "exchange {} ({}) differs.\nexpected (fresh={}, stdin {} bytes):\n{}\nactual (fresh={fresh}, stdin {} bytes):\n{script}",
                    *position + 1,
                    exchange.label,
                    exchange.fresh,
                    exchange.stdin_bytes,
                    exchange.script,
                    stdin.len()
                ),
            });
        }
        *position += 1;
        self.uploads.borrow_mut().push(stdin.to_vec());
        Ok(exchange.output.clone())
    }
}

impl Transport for ReplayTransport {
    fn run(&self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        self.next(script, stdin, false)
    }

    fn run_fresh(&self, script: &str) -> Result<Output, TransportError> {
        self.next(script, &[], true)
    }

    fn describe(&self) -> String {
        "root@openwrt.test".into()
    }
}

/// Parse a transcript file.
pub fn parse_transcript(text: &str) -> Result<Vec<Exchange>, String> {
    let mut exchanges = Vec::new();
    let mut current: Option<Exchange> = None;
    let mut block: Option<(String, String)> = None;
    let finish_block = |exchange: &mut Exchange, block: Option<(String, String)>| {
        if let Some((name, body)) = block {
            match name.as_str() {
                "script" => exchange.script = body,
                "stdout" => exchange.output.stdout = body,
                "stderr" => exchange.output.stderr = body,
                _ => {}
            }
        }
    };
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches('\n');
        if let Some(label) = bare.strip_prefix("=== ") {
            if let Some(mut exchange) = current.take() {
                finish_block(&mut exchange, block.take());
                exchanges.push(exchange);
            }
            current = Some(Exchange {
                label: label.to_string(),
                ..Exchange::default()
            });
            continue;
        }
        let Some(exchange) = current.as_mut() else {
            continue;
        };
        if let Some(directive) = bare.strip_prefix("--- ") {
            finish_block(exchange, block.take());
            let mut words = directive.split_whitespace();
            match (words.next(), words.next()) {
                (Some("status"), Some(n)) => {
                    exchange.output.status = n
                        .parse()
                        .map_err(|_| format!("line {}: bad status", index + 1))?;
                }
                (Some("stdin-bytes"), Some(n)) => {
                    exchange.stdin_bytes = n
                        .parse()
                        .map_err(|_| format!("line {}: bad stdin-bytes", index + 1))?;
                }
                (Some("fresh"), None) => exchange.fresh = true,
                (Some(name @ ("script" | "stdout" | "stderr")), None) => {
                    block = Some((name.to_string(), String::new()));
                }
                _ => {
                    return Err(format!(
                        "line {}: unknown directive `{directive}`",
                        index + 1
                    ));
                }
            }
            continue;
        }
        if let Some((_, body)) = block.as_mut() {
            body.push_str(line);
        }
    }
    if let Some(mut exchange) = current.take() {
        finish_block(&mut exchange, block.take());
        exchanges.push(exchange);
    }
    Ok(exchanges)
}

/// Write exchanges in the transcript format ([`parse_transcript`] reads it back).
pub fn format_transcript(exchanges: &[Exchange]) -> String {
    let mut out = String::new();
    for exchange in exchanges {
        let _ = writeln!(out, "=== {}", exchange.label);
        if exchange.fresh {
            out.push_str("--- fresh\n");
        }
        if exchange.stdin_bytes > 0 {
            let _ = writeln!(out, "--- stdin-bytes {}", exchange.stdin_bytes);
        }
        out.push_str("--- script\n");
        out.push_str(&exchange.script);
        for (name, body) in [
            ("stdout", &exchange.output.stdout),
            ("stderr", &exchange.output.stderr),
        ] {
            if !body.is_empty() {
                let _ = writeln!(out, "--- {name}");
                out.push_str(body);
                if !body.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        let _ = writeln!(out, "--- status {}", exchange.output.status);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_round_trip() {
        let exchanges = vec![
            Exchange {
                label: "one".into(),
                script: "# sovereign: x\necho hi\n".into(),
                fresh: false,
                stdin_bytes: 12,
                output: Output {
                    status: 0,
                    stdout: "hi\n".into(),
                    stderr: String::new(),
                },
            },
            Exchange {
                label: "two".into(),
                script: "cat f\n".into(),
                fresh: true,
                stdin_bytes: 0,
                output: Output {
                    status: 1,
                    stdout: String::new(),
                    stderr: "no\n".into(),
                },
            },
        ];
        assert_eq!(
            parse_transcript(&format_transcript(&exchanges)).unwrap(),
            exchanges
        );
    }

    #[test]
    fn an_unexpected_command_fails() {
        let replay = ReplayTransport::new(vec![Exchange {
            label: "only".into(),
            script: "echo a\n".into(),
            ..Exchange::default()
        }]);
        assert!(replay.run("echo b\n", &[]).is_err());
        assert!(replay.run("echo a\n", &[]).is_ok());
        assert!(replay.run("echo a\n", &[]).is_err());
    }
}
