//! Stable keys that tie a firewall rule to the intent cells it implements.
//!
//! Every rule that decides an intent cell carries a comment (nftables) or a
//! `name` (fw4, which turns it into the comment `!fw4: <name>`) of the form
//!
//! ```text
//! vpn-peer -> server-api: allow
//! lan-device, lan-admin -> router-services, router-dns: allow
//! server -> router-dns: allow (dhcp)
//! ```
//!
//! i.e. sources, `->`, destinations, `:`, a verdict, and an optional note in
//! parentheses. Names are the kebab-case names of [`Source`] and [`Destination`].
//! Rules that implement no cell (loopback, conntrack, anti-spoofing, NAT) carry a
//! comment without `->`, e.g. `anti-spoof: ...`, and [`RuleKey::parse`] returns `None`.

use std::fmt;

use sovereign_model::{Destination, Expect, Source};

/// What a keyed rule does with the traffic it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    /// Silent: used for everything arriving from the WAN.
    Drop,
    /// Fails fast (ICMP admin-prohibited): used for internal denies.
    Reject,
}

impl Verdict {
    pub fn expect(self) -> Expect {
        match self {
            Verdict::Allow => Expect::Allow,
            Verdict::Drop | Verdict::Reject => Expect::Deny,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleKey {
    pub sources: Vec<Source>,
    pub destinations: Vec<Destination>,
    pub verdict: Verdict,
    pub note: Option<String>,
}

impl RuleKey {
    pub fn new(sources: &[Source], destinations: &[Destination], verdict: Verdict) -> Self {
        RuleKey {
            sources: sources.to_vec(),
            destinations: destinations.to_vec(),
            verdict,
            note: None,
        }
    }

    pub fn with_note(mut self, note: &str) -> Self {
        self.note = Some(note.to_string());
        self
    }

    /// Whether this rule decides the cell `source -> destination`.
    pub fn covers(&self, source: Source, destination: Destination) -> bool {
        self.sources.contains(&source) && self.destinations.contains(&destination)
    }

    /// Parse a rule comment; `None` when it is not a key (plumbing rules).
    pub fn parse(comment: &str) -> Option<RuleKey> {
        let comment = comment.strip_prefix("!fw4: ").unwrap_or(comment);
        let (cells, rest) = comment.split_once(": ")?;
        let (sources, destinations) = cells.split_once(" -> ")?;
        let (verdict, note) = match rest.split_once(" (") {
            Some((verdict, note)) => (verdict, Some(note.strip_suffix(')')?.to_string())),
            None => (rest, None),
        };
        let verdict = [Verdict::Allow, Verdict::Drop, Verdict::Reject]
            .into_iter()
            .find(|v| v.name() == verdict)?;
        let sources = split_names(sources, |name| {
            Source::ALL.into_iter().find(|s| source_name(*s) == name)
        })?;
        let destinations = split_names(destinations, |name| {
            Destination::ALL
                .into_iter()
                .find(|d| destination_name(*d) == name)
        })?;
        Some(RuleKey {
            sources,
            destinations,
            verdict,
            note,
        })
    }
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: Vec<&str> = self.sources.iter().map(|s| source_name(*s)).collect();
        let destinations: Vec<&str> = self
            .destinations
            .iter()
            .map(|d| destination_name(*d))
            .collect();
        write!(
            f,
            "{} -> {}: {}",
            sources.join(", "),
            destinations.join(", "),
            self.verdict.name()
        )?;
        if let Some(note) = &self.note {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// The kebab-case name of a source, as `sovereign_model` serializes it.
pub fn source_name(source: Source) -> &'static str {
    match source {
        Source::Internet => "internet",
        Source::VpnPeer => "vpn-peer",
        Source::Server => "server",
        Source::LanDevice => "lan-device",
        Source::LanAdmin => "lan-admin",
    }
}

/// The kebab-case name of a destination, as `sovereign_model` serializes it.
pub fn destination_name(destination: Destination) -> &'static str {
    match destination {
        Destination::RouterWireguard => "router-wireguard",
        Destination::RouterServices => "router-services",
        Destination::RouterDns => "router-dns",
        Destination::ServerApi => "server-api",
        Destination::ServerSsh => "server-ssh",
        Destination::ServerOther => "server-other",
        Destination::OtherLan => "other-lan",
        Destination::Internet => "internet",
        Destination::VpnPeer => "vpn-peer",
    }
}

fn split_names<T>(text: &str, lookup: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    text.split(", ").map(lookup).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let key = RuleKey::new(
            &[Source::LanDevice, Source::LanAdmin],
            &[Destination::RouterServices, Destination::RouterDns],
            Verdict::Allow,
        );
        let text = key.to_string();
        assert_eq!(
            text,
            "lan-device, lan-admin -> router-services, router-dns: allow"
        );
        assert_eq!(RuleKey::parse(&text), Some(key.clone()));
        let noted = key.with_note("dhcp");
        assert_eq!(RuleKey::parse(&noted.to_string()), Some(noted));
    }

    #[test]
    fn fw4_prefix_is_accepted_and_plumbing_is_not_a_key() {
        let key = RuleKey::parse("!fw4: vpn-peer -> server-api: allow").unwrap();
        assert!(key.covers(Source::VpnPeer, Destination::ServerApi));
        assert_eq!(RuleKey::parse("anti-spoof: server port"), None);
        assert_eq!(RuleKey::parse("vpn-peer -> nowhere: allow"), None);
        assert_eq!(RuleKey::parse("vpn-peer -> server-api: maybe"), None);
    }

    #[test]
    fn names_match_the_model_serialization() {
        for s in Source::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), source_name(s));
        }
        for d in Destination::ALL {
            assert_eq!(serde_json::to_value(d).unwrap(), destination_name(d));
        }
    }
}
