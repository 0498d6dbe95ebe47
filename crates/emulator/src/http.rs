//! A minimal HTTP/1.1 server: one thread per connection, keep-alive, and chunked
//! streaming that flushes every chunk.
//!
//! Why not `tiny_http`: it copies a streamed body into a buffered chunk encoder
//! without flushing, so tokens would reach clients in 8 KiB lumps and any
//! time-to-first-token measured against the emulator would be fiction.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Largest request head (request line plus headers) we accept.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest request body we accept; chat histories from coding agents can be big.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// An idle keep-alive connection is closed after this long, so threads don't pile up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A parsed request. Header names are lower-cased.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Path without the query string (no route here reads the query).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Application side of the server.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request, responder: &mut Responder<'_>) -> io::Result<()>;
}

/// Writes exactly one response for one request.
pub struct Responder<'a> {
    writer: &'a mut BufWriter<TcpStream>,
    head_only: bool,
    keep_alive: bool,
    http10: bool,
    extra_headers: Vec<(String, String)>,
    sent: bool,
    must_close: bool,
}

impl Responder<'_> {
    /// Adds a header to whatever response is sent next (used for CORS).
    pub fn add_header(&mut self, name: &str, value: &str) {
        self.extra_headers
            .push((name.to_string(), value.to_string()));
    }

    /// Sends a complete response with a Content-Length.
    pub fn send(&mut self, status: u16, content_type: Option<&str>, body: &[u8]) -> io::Result<()> {
        let mut head = self.status_line(status);
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        self.finish_head(&mut head);
        self.writer.write_all(head.as_bytes())?;
        if !self.head_only {
            self.writer.write_all(body)?;
        }
        self.writer.flush()?;
        self.sent = true;
        Ok(())
    }

    /// Starts a streamed response. Every [`Stream::send`] reaches the socket at once.
    pub fn stream(&mut self, status: u16, content_type: &str) -> io::Result<Stream<'_>> {
        let mut head = self.status_line(status);
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
        head.push_str("Cache-Control: no-cache\r\n");
        // HTTP/1.0 has no chunked encoding: the body runs until the connection closes.
        let chunked = !self.http10;
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else {
            self.keep_alive = false;
        }
        self.finish_head(&mut head);
        self.writer.write_all(head.as_bytes())?;
        self.writer.flush()?;
        self.sent = true;
        Ok(Stream {
            writer: self.writer,
            chunked,
            head_only: self.head_only,
            finished: false,
            must_close: &mut self.must_close,
        })
    }

    fn status_line(&self, status: u16) -> String {
        format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status))
    }

    fn finish_head(&self, head: &mut String) {
        head.push_str(&format!("Date: {}\r\n", crate::time::http_date_now()));
        for (name, value) in &self.extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !self.keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
    }
}

/// A response body being streamed.
pub struct Stream<'a> {
    writer: &'a mut BufWriter<TcpStream>,
    chunked: bool,
    head_only: bool,
    finished: bool,
    must_close: &'a mut bool,
}

impl Stream<'_> {
    /// Sends one piece of the body (an NDJSON line, an SSE event) and flushes it.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        if self.head_only || data.is_empty() {
            return Ok(());
        }
        let result = self.write_piece(data);
        if result.is_err() {
            *self.must_close = true;
        }
        result
    }

    fn write_piece(&mut self, data: &[u8]) -> io::Result<()> {
        if self.chunked {
            write!(self.writer, "{:x}\r\n", data.len())?;
            self.writer.write_all(data)?;
            self.writer.write_all(b"\r\n")?;
        } else {
            self.writer.write_all(data)?;
        }
        self.writer.flush()
    }

    /// Ends the body. A stream dropped without `finish` closes the connection instead.
    pub fn finish(mut self) -> io::Result<()> {
        self.finished = true;
        if self.chunked && !self.head_only {
            self.writer.write_all(b"0\r\n\r\n")?;
        }
        self.writer.flush()
    }
}

impl Drop for Stream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            *self.must_close = true;
        }
    }
}

/// A listening server; dropping it does not stop it, call [`Server::shutdown`].
pub struct Server {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(listener: TcpListener, handler: Arc<dyn Handler>) -> io::Result<Server> {
        let local_addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stopping);
        let accept_thread = thread::Builder::new()
            .name("emulator-accept".into())
            .spawn(move || accept_loop(listener, handler, stop_flag))?;
        Ok(Server {
            local_addr,
            stopping,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections. Connections already open finish their current
    /// request and then close when idle.
    pub fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a throwaway connection.
        let _ = TcpStream::connect_timeout(&wake_addr(self.local_addr), Duration::from_secs(1));
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }

    /// Blocks until the server stops (for the binary).
    pub fn wait(mut self) {
        if let Some(handle) = self.accept_thread.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.accept_thread.is_some() {
            self.shutdown();
        }
    }
}

/// An unspecified listen address (0.0.0.0) is not connectable everywhere; use loopback.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut target = addr;
    if addr.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    target
}

fn accept_loop(listener: TcpListener, handler: Arc<dyn Handler>, stopping: Arc<AtomicBool>) {
    for incoming in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = incoming else {
            // EMFILE and friends: back off briefly instead of spinning.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let handler = Arc::clone(&handler);
        let _ = thread::Builder::new()
            .name("emulator-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, handler.as_ref());
            });
    }
}

fn serve_connection(stream: TcpStream, handler: &dyn Handler) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::new(stream);
    loop {
        let parsed = match read_request(&mut reader, &mut writer) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(()),
            Err(RequestError::Io(e)) => return Err(e),
            Err(RequestError::Bad(status, message)) => {
                let mut responder = Responder {
                    writer: &mut writer,
                    head_only: false,
                    keep_alive: false,
                    http10: false,
                    extra_headers: Vec::new(),
                    sent: false,
                    must_close: true,
                };
                return responder.send(
                    status,
                    Some("text/plain; charset=utf-8"),
                    message.as_bytes(),
                );
            }
        };
        let mut responder = Responder {
            writer: &mut writer,
            head_only: parsed.request.method == "HEAD",
            keep_alive: parsed.keep_alive,
            http10: parsed.http10,
            extra_headers: Vec::new(),
            sent: false,
            must_close: false,
        };
        handler.handle(&parsed.request, &mut responder)?;
        if !responder.sent {
            responder.send(
                500,
                Some("application/json; charset=utf-8"),
                br#"{"error":"no response"}"#,
            )?;
        }
        if !responder.keep_alive || responder.must_close {
            return Ok(());
        }
    }
}

struct ParsedRequest {
    request: Request,
    keep_alive: bool,
    http10: bool,
}

enum RequestError {
    Io(io::Error),
    Bad(u16, &'static str),
}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> Self {
        RequestError::Io(e)
    }
}

/// Reads one request; `Ok(None)` means the client closed the connection between requests.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut BufWriter<TcpStream>,
) -> Result<Option<ParsedRequest>, RequestError> {
    let mut head_bytes = 0usize;
    let mut request_line = String::new();
    // Tolerate stray blank lines between pipelined requests (RFC 9112 §2.2).
    loop {
        request_line.clear();
        let n = read_limited_line(reader, &mut request_line, MAX_HEAD_BYTES)?;
        if n == 0 {
            return Ok(None);
        }
        head_bytes += n;
        if !request_line.trim().is_empty() {
            break;
        }
        if head_bytes > MAX_HEAD_BYTES {
            return Err(RequestError::Bad(431, "request head too large"));
        }
    }
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Bad(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(RequestError::Bad(505, "HTTP version not supported"));
    }
    let http10 = version == "HTTP/1.0";

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let n = read_limited_line(reader, &mut line, MAX_HEAD_BYTES)?;
        if n == 0 {
            return Err(RequestError::Bad(
                400,
                "connection closed inside request head",
            ));
        }
        head_bytes += n;
        if head_bytes > MAX_HEAD_BYTES {
            return Err(RequestError::Bad(431, "request head too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::Bad(400, "malformed header line"));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }

    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = header("connection").unwrap_or("").to_ascii_lowercase();
    let keep_alive = if http10 {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }

    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked_body(reader)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| RequestError::Bad(400, "invalid Content-Length"))?;
        if length > MAX_BODY_BYTES {
            return Err(RequestError::Bad(413, "request body too large"));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };

    let path = target
        .split_once('?')
        .map_or(target, |(p, _)| p)
        .to_string();
    Ok(Some(ParsedRequest {
        request: Request {
            method: method.to_string(),
            path,
            headers,
            body,
        },
        keep_alive,
        http10,
    }))
}

fn read_chunked_body(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, RequestError> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if read_limited_line(reader, &mut size_line, 1024)? == 0 {
            return Err(RequestError::Bad(
                400,
                "connection closed inside chunked body",
            ));
        }
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| RequestError::Bad(400, "invalid chunk size"))?;
        if size == 0 {
            // Skip trailers up to the blank line.
            loop {
                let mut trailer = String::new();
                if read_limited_line(reader, &mut trailer, MAX_HEAD_BYTES)? == 0
                    || trailer.trim().is_empty()
                {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(RequestError::Bad(413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Like `read_line`, but refuses lines longer than `limit` and non-UTF-8 heads.
fn read_limited_line(
    reader: &mut BufReader<TcpStream>,
    out: &mut String,
    limit: usize,
) -> Result<usize, RequestError> {
    let mut bytes = Vec::new();
    let n = reader
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut bytes)?;
    if n > limit {
        return Err(RequestError::Bad(431, "request head too large"));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| RequestError::Bad(400, "request head is not UTF-8"))?;
    out.push_str(&text);
    Ok(n)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
