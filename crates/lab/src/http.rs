//! A deliberately small HTTP/1.1 client for probes, benchmarks and the demo:
//! enough to send one request and read one response (Content-Length, chunked, or
//! until close) on a connection the caller controls.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddrV4, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One GET on a new connection (`Connection: close`).
pub fn get(target: SocketAddrV4, path: &str, timeout: Duration) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&target.into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut connection = Connection::new(stream)?;
    connection.send("GET", path, &target.to_string(), None, true)?;
    connection.read_response()
}

/// One POST of a JSON body on a new connection.
pub fn post_json(
    target: SocketAddrV4,
    path: &str,
    body: &str,
    timeout: Duration,
) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&target.into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut connection = Connection::new(stream)?;
    connection.send("POST", path, &target.to_string(), Some(body), true)?;
    connection.read_response()
}

/// A client connection that can carry several requests (keep-alive).
pub struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn new(stream: TcpStream) -> io::Result<Connection> {
        stream.set_nodelay(true)?;
        Ok(Connection {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        host: &str,
        json: Option<&str>,
        close: bool,
    ) -> io::Result<()> {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sovereign-lab\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        if let Some(body) = json {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        if let Some(body) = json {
            head.push_str(body);
        }
        self.writer.write_all(head.as_bytes())
    }

    /// The status line and headers; returns the status and how the body is framed.
    pub fn read_head(&mut self) -> io::Result<(u16, Framing)> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.get(2..5))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an HTTP response: {status_line:?}"),
                )
            })?;
        let mut framing = Framing::UntilClose;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the headers",
                ));
            }
            let lower = line.trim().to_ascii_lowercase();
            if lower.is_empty() {
                break;
            }
            if let Some(value) = lower.strip_prefix("content-length:") {
                framing = Framing::Length(value.trim().parse().unwrap_or(0));
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                framing = Framing::Chunked;
            }
        }
        Ok((status, framing))
    }

    pub fn read_response(&mut self) -> io::Result<Response> {
        let (status, framing) = self.read_head()?;
        let mut body = Vec::new();
        match framing {
            Framing::Length(n) => {
                body.resize(n, 0);
                self.reader.read_exact(&mut body)?;
            }
            Framing::UntilClose => {
                self.reader.read_to_end(&mut body)?;
            }
            Framing::Chunked => {
                while let Some(chunk) = self.read_chunk()? {
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// The next chunk of a chunked body; `None` at the end.
    pub fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        let size_text = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_line:?}"),
            )
        })?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        chunk.truncate(size);
        if size == 0 {
            return Ok(None);
        }
        Ok(Some(chunk))
    }

    /// Read raw body bytes of an unframed (until-close) response.
    pub fn read_some(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buffer)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_a_chunked_response_from_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = match listener.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer).unwrap();
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                .unwrap();
        });
        let response = get(address, "/", Duration::from_secs(2)).unwrap();
        server.join().unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                body: "hello world".into()
            }
        );
    }
}
