//! Framing for streamed bodies: NDJSON lines and Server-Sent Events. The SSE parser
//! is sans-IO (feed it lines); [`LineReader`] does the reading, one line at a time, so
//! a token is seen the moment its line arrives.

use std::io::{self, BufRead, BufReader, Read};

/// Longest line accepted; a server sending more without a newline is sending garbage.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

pub struct LineReader<R> {
    inner: BufReader<R>,
}

impl<R: Read> LineReader<R> {
    pub fn new(reader: R) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(reader),
        }
    }

    /// The next line without its `\n`/`\r\n`; `None` at a clean end of stream.
    /// A final line cut off without a newline is `UnexpectedEof`: Ollama ends every
    /// line, so that means the connection closed mid-line.
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        let mut bytes = Vec::new();
        let n = (&mut self.inner)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut bytes)?;
        if n == 0 {
            return Ok(None);
        }
        if bytes.last() != Some(&b'\n') {
            if n > MAX_LINE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "line longer than 4 MiB",
                ));
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended in the middle of a line",
            ));
        }
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "line is not UTF-8"))
    }
}

/// Reads a whole body, refusing more than `limit` bytes.
pub fn read_limited(reader: &mut dyn Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut body)?;
    if body.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("body larger than {limit} bytes"),
        ));
    }
    Ok(body)
}

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message` type.
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE parser (WHATWG rules, minus `id`/`retry`, which nobody here uses).
#[derive(Debug, Default)]
pub struct SseParser {
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds one line (without its newline); returns an event when a blank line ends one.
    pub fn push_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            return self.data.take().map(|data| SseEvent { event, data });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_with_and_without_names() {
        let mut parser = SseParser::new();
        let lines = [
            "event: message_start",
            "data: {\"a\":1}",
            "",
            ": comment",
            "data:[DONE]",
            "",
            "",
        ];
        let events: Vec<_> = lines.iter().filter_map(|l| parser.push_line(l)).collect();
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn multi_line_data_joins_with_newline() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push_line("data: a"), None);
        assert_eq!(parser.push_line("data: b"), None);
        assert_eq!(
            parser.push_line(""),
            Some(SseEvent {
                event: None,
                data: "a\nb".into()
            })
        );
    }

    #[test]
    fn line_reader_flags_a_cut_off_line() {
        let mut reader = LineReader::new(&b"{\"done\":false}\r\n{\"do"[..]);
        assert_eq!(
            reader.next_line().unwrap().as_deref(),
            Some("{\"done\":false}")
        );
        assert_eq!(
            reader.next_line().unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let mut empty = LineReader::new(&b""[..]);
        assert_eq!(empty.next_line().unwrap(), None);
    }
}
