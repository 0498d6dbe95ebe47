//! Origin and Host checks as Ollama does them (server/routes.go, envconfig).
//!
//! - A request without `Origin` is never rejected.
//! - A same-origin request (`Origin` is `http(s)://` + `Host`) passes.
//! - Any other `Origin` must match an allowed pattern, or the request gets 403 with an
//!   empty body (gin-contrib/cors `AbortWithStatus`).
//! - When the listener is loopback, `Host` must name a local or private address
//!   (the DNS-rebinding guard); otherwise 403.

use std::net::IpAddr;

/// Ollama's built-in allowed origins (`envconfig.AllowedOrigins`), before `OLLAMA_ORIGINS`.
pub fn default_origins() -> Vec<String> {
    let mut origins = Vec::new();
    for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
        for scheme in ["http", "https"] {
            origins.push(format!("{scheme}://{host}"));
            origins.push(format!("{scheme}://{host}:*"));
        }
    }
    for scheme in ["app", "file", "tauri", "vscode-webview", "vscode-file"] {
        origins.push(format!("{scheme}://*"));
    }
    origins
}

pub enum OriginVerdict {
    /// No CORS involved.
    NotCors,
    /// Allowed: echo this origin in `Access-Control-Allow-Origin`.
    Allowed(String),
    Forbidden,
}

pub fn check_origin(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> OriginVerdict {
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return OriginVerdict::NotCors;
    };
    if let Some(host) = host
        && (origin == format!("http://{host}") || origin == format!("https://{host}"))
    {
        return OriginVerdict::NotCors;
    }
    if allowed
        .iter()
        .any(|pattern| wildcard_match(pattern, origin))
    {
        OriginVerdict::Allowed(origin.to_string())
    } else {
        OriginVerdict::Forbidden
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The DNS-rebinding guard Ollama applies only when bound to loopback.
pub fn host_allowed(host_header: Option<&str>) -> bool {
    let Some(host) = host_header else {
        return true;
    };
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_unspecified() || v4.is_link_local()
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".localhost")
        || lower.ends_with(".local")
        || lower.ends_with(".internal")
        || is_own_hostname(&lower)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // `[v6]:port` -> `[v6]`; a bracket never closed is left as is (and fails to parse).
        return host.find(']').map_or(host, |close| &host[..=close]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

fn is_own_hostname(name: &str) -> bool {
    std::fs::read_to_string("/etc/hostname").is_ok_and(|h| h.trim().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_origins_allow_local_apps_and_refuse_others() {
        let allowed = default_origins();
        let ok = |o: &str| {
            matches!(
                check_origin(Some(o), Some("10.0.0.1:11434"), &allowed),
                OriginVerdict::Allowed(_)
            )
        };
        assert!(ok("http://localhost:3000"));
        assert!(ok("https://127.0.0.1"));
        assert!(ok("vscode-webview://abc"));
        assert!(!ok("http://evil.example"));
        assert!(!ok("http://localhost.evil.example"));
        assert!(matches!(
            check_origin(None, None, &allowed),
            OriginVerdict::NotCors
        ));
    }

    #[test]
    fn host_guard() {
        assert!(host_allowed(Some("127.0.0.1:11434")));
        assert!(host_allowed(Some("localhost")));
        assert!(host_allowed(Some("[::1]:80")));
        assert!(host_allowed(Some("box.internal:11434")));
        assert!(!host_allowed(Some("attacker.example:11434")));
        // An unclosed bracket must not panic; junk inside it is refused.
        assert!(!host_allowed(Some("[attacker.example")));
    }
}
