//! Ollama release numbers, for gating checks on what a server can do.

use std::cmp::Ordering;
use std::fmt;

/// `/v1/responses` first shipped in this release.
pub static RESPONSES_SINCE: OllamaVersion = OllamaVersion::new(0, 13, 3);
/// `/v1/messages` (Anthropic) first shipped in this release.
pub static MESSAGES_SINCE: OllamaVersion = OllamaVersion::new(0, 14, 0);
/// `/api/embed` and `/v1/embeddings` (server/routes.go@v0.2.6), and `suffix` on
/// `/v1/completions` (openai/openai.go@v0.2.6).
pub static EMBED_SINCE: OllamaVersion = OllamaVersion::new(0, 2, 6);
/// A JSON schema as `format` and OpenAI `json_schema` (api/types.go and
/// openai/openai.go@v0.5.0).
pub static SCHEMA_SINCE: OllamaVersion = OllamaVersion::new(0, 5, 0);

/// A release such as `0.14.0` or `0.14.0-rc1`. Pre-releases order before their
/// release (semver), so a gate never opens on a release candidate that may lack the
/// feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre_release: Option<String>,
}

impl OllamaVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> OllamaVersion {
        OllamaVersion {
            major,
            minor,
            patch,
            pre_release: None,
        }
    }

    pub fn parse(text: &str) -> Option<OllamaVersion> {
        let text = text.trim().trim_start_matches('v');
        let (core, pre_release) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre.split('+').next().unwrap_or(pre).to_string())),
            None => (text.split('+').next().unwrap_or(text), None),
        };
        let mut numbers = core.split('.').map(str::parse::<u64>);
        let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) = (
            numbers.next(),
            numbers.next(),
            numbers.next(),
            numbers.next(),
        ) else {
            return None;
        };
        Some(OllamaVersion {
            major,
            minor,
            patch,
            pre_release,
        })
    }
}

impl Ord for OllamaVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre_release, &other.pre_release) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for OllamaVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for OllamaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre_release {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let v = |s| OllamaVersion::parse(s).unwrap();
        assert!(v("0.14.0") >= MESSAGES_SINCE);
        assert!(v("0.14.0-rc1") < MESSAGES_SINCE);
        assert!(v("0.13.3") >= RESPONSES_SINCE);
        assert!(v("0.13.2") < RESPONSES_SINCE);
        assert!(v("v0.15.1") > MESSAGES_SINCE);
        assert_eq!(v("0.14.0-rc1").to_string(), "0.14.0-rc1");
        assert_eq!(OllamaVersion::parse("0.14"), None);
        assert_eq!(OllamaVersion::parse("banana"), None);
    }
}
