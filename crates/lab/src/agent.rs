//! The listeners every node runs (`sovereign lab _serve`): an HTTP responder that
//! names the node and the source address it saw, a UDP echo, and the Ollama API
//! emulator on the AI server. The prober needs an application-level answer before
//! it calls a port open, so every listener answers a request.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use crate::LabError;
use crate::topology::{Listener, Proto, Service};

/// `tcp:http:0.0.0.0:22` and friends: how listeners travel on the command line.
pub fn format_listener(l: &Listener) -> String {
    let service = match l.service {
        Service::Http => "http",
        Service::Echo => "echo",
        Service::Api => "api",
    };
    format!("{}:{service}:{}", l.proto, l.address)
}

pub fn parse_listener(text: &str) -> Result<Listener, String> {
    let mut parts = text.splitn(3, ':');
    let (Some(proto), Some(service), Some(address)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "`{text}`: expected PROTO:SERVICE:IP:PORT, e.g. tcp:http:0.0.0.0:80"
        ));
    };
    let proto = match proto {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => return Err(format!("`{other}`: the protocol is tcp or udp")),
    };
    let service = match service {
        "http" => Service::Http,
        "echo" => Service::Echo,
        "api" => Service::Api,
        other => return Err(format!("`{other}`: the service is http, echo or api")),
    };
    let address = address
        .parse()
        .map_err(|_| format!("`{address}` is not IPv4:PORT"))?;
    Ok(Listener {
        proto,
        address,
        service,
    })
}

/// The embedding model the lab's emulator serves beside its chat model.
pub const LAB_EMBEDDING_MODEL: &str = "nomic-embed-text:latest";

/// Bind every listener, print `ready` on stdout, then serve until killed.
pub fn serve(node: &str, listeners: &[Listener]) -> Result<(), LabError> {
    let mut emulators = Vec::new();
    for listener in listeners {
        let address = SocketAddr::V4(listener.address);
        let bind_error = |source| LabError::io(format!("{} {address}", listener.proto), source);
        match (listener.proto, listener.service) {
            (Proto::Tcp, Service::Api) => {
                // A chat model and an embedding model, so the checks through the
                // tunnel cover embeddings too.
                let config = ollama_emulator::EmulatorConfig {
                    models: vec![
                        ollama_emulator::DEFAULT_MODEL.to_string(),
                        LAB_EMBEDDING_MODEL.to_string(),
                    ],
                    ..Default::default()
                };
                emulators
                    .push(ollama_emulator::Emulator::start(address, config).map_err(bind_error)?);
            }
            (Proto::Tcp, _) => {
                let socket = TcpListener::bind(address).map_err(bind_error)?;
                let node = node.to_string();
                std::thread::spawn(move || accept_http(socket, &node));
            }
            (Proto::Udp, _) => {
                let socket = UdpSocket::bind(address).map_err(bind_error)?;
                let node = node.to_string();
                std::thread::spawn(move || echo(socket, &node));
            }
        }
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ready");
    let _ = stdout.flush();
    loop {
        std::thread::park();
    }
}

fn accept_http(listener: TcpListener, node: &str) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    for stream in listener.incoming().flatten() {
        let node = node.to_string();
        std::thread::spawn(move || answer_http(stream, &node, port));
    }
}

/// Answers every request with `{"node":..,"port":..,"peer":..}`; keeps the
/// connection alive unless the client asks to close it.
fn answer_http(stream: TcpStream, node: &str, port: u16) {
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut close = false;
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let lower = line.to_ascii_lowercase();
            if lower == "\r\n" || lower == "\n" {
                break;
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
            if let Some(value) = lower.strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; content_length];
        if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
            return;
        }
        let reply = serde_json::json!({ "node": node, "port": port, "peer": peer }).to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            reply.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if writer
            .write_all(format!("{head}{reply}").as_bytes())
            .is_err()
            || close
        {
            return;
        }
    }
}

fn echo(socket: UdpSocket, node: &str) {
    let mut buffer = [0u8; 2048];
    loop {
        let Ok((_, from)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let reply = format!("ECHO {node} {}", from.ip());
        let _ = socket.send_to(reply.as_bytes(), from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_round_trip_through_their_text_form() {
        let text = "tcp:api:192.168.250.20:11434";
        let listener = parse_listener(text).unwrap();
        assert_eq!(listener.service, Service::Api);
        assert_eq!(format_listener(&listener), text);
        assert!(parse_listener("sctp:http:0.0.0.0:1").is_err());
        assert!(parse_listener("tcp:http").is_err());
    }
}
