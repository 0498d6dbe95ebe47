//! Timestamps as Ollama writes them: RFC 3339 for JSON, IMF-fixdate for `Date:`.

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 in UTC with nanoseconds trimmed the way Go's `time.RFC3339Nano` does,
/// e.g. `2026-01-16T10:00:00.1234Z`. Ollama marshals `time.Time` like this.
pub fn rfc3339(at: SystemTime) -> String {
    // humantime always writes nine fraction digits; Go drops trailing zeros, and the
    // dot too when nothing is left.
    let full = humantime::format_rfc3339_nanos(at).to_string();
    let stamp = full
        .trim_end_matches('Z')
        .trim_end_matches('0')
        .trim_end_matches('.');
    format!("{stamp}Z")
}

pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Date:` header value, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date_now() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_known_instants() {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20.12Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        let date = http_date_now();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }
}
