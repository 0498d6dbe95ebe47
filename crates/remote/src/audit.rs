//! `router audit`: what differs between the live router and sovereign.toml.
//!
//! One ssh call reads the live state (firewall, WireGuard dump, UCI on OpenWrt)
//! and, for comparison, what the rendered config looks like in the router's own
//! canonical form: on Linux the staged table loaded into a throwaway network
//! namespace and listed by nft; on OpenWrt the batch applied to a private copy of
//! /etc/config. Nothing live is touched. The comparison itself is pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use sovereign_model::Deployment;

use crate::linux::TABLE;
use crate::nftjson::{self, NftRule};
use crate::openwrt::{SYSCTL_FILE, WIRE_SCRIPT, sysctl_settings, touched_packages};
use crate::script::quote;
use crate::target::{RouterConfig, section, sections};
use crate::transport::{Transport, TransportError};
use crate::wgdump::{self, DUMP_COMMAND, WgInterface};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// The WireGuard interface itself.
    Interface,
    Peer,
    /// The nftables table sovereign owns (Linux).
    Table,
    Chain,
    Rule,
    /// An fw4 zone (OpenWrt).
    Zone,
    /// Any other UCI section sovereign's batch sets (OpenWrt).
    Section,
    /// sovereign's sysctl file or a kernel setting it sets (OpenWrt proxy ARP).
    Sysctl,
    /// Where the AI server's port is: out of the LAN bridge, in config and kernel
    /// (OpenWrt, `sovereign-wire.sh prove`).
    Wiring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftChange {
    /// In sovereign.toml, not on the router.
    Missing,
    /// On the router, not in sovereign.toml.
    Extra,
    /// On both, different.
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    pub change: DriftChange,
    /// Public key, rule comment, chain or section name.
    pub key: String,
    /// The peer's name in sovereign.toml, when known.
    pub name: Option<String>,
    pub detail: String,
}

/// What the verifier said about the live ruleset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub passed: bool,
    pub summary: String,
    /// The verifier's own report, for `--json`.
    pub report: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    pub router: String,
    pub drift: Vec<Drift>,
    /// `None` when no verifier was available; then only drift is reported.
    pub verification: Option<Verification>,
    pub notes: Vec<String>,
}

impl AuditReport {
    pub fn passed(&self) -> bool {
        self.drift.is_empty() && self.verification.as_ref().is_none_or(|v| v.passed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("reading the router's state failed:\n{0}")]
    Remote(String),
    #[error("the router's {what} could not be read: {detail}")]
    Parse { what: &'static str, detail: String },
}

/// The live nftables ruleset (`nft -j list ruleset`) judged against the deployment.
pub type Verifier<'a> = &'a dyn Fn(&Value) -> Verification;

/// Read the router and report drift from `deployment` (whose rendering is `config`).
pub fn audit(
    transport: &dyn Transport,
    deployment: &Deployment,
    config: &RouterConfig,
    verifier: Option<Verifier<'_>>,
) -> Result<AuditReport, AuditError> {
    let (script, stdin) = gather_script(config);
    let output = transport.run(&script, stdin.as_bytes())?;
    if !output.success() {
        return Err(AuditError::Remote(format!(
            "{}{}",
            output.stdout, output.stderr
        )));
    }
    let mut report = evaluate(deployment, config, &output.stdout)?;
    report.router = transport.describe();
    if let Some(verify) = verifier {
        let parts = sections(&output.stdout);
        let ruleset = parse_json(section(&parts, "ruleset").unwrap_or(""), "nftables ruleset")?;
        report.verification = Some(verify(&ruleset));
    } else {
        report
            .notes
            .push("the verifier is not available in this build: drift only".into());
    }
    Ok(report)
}

/// The drift in the output of the gather script (pure).
pub fn evaluate(
    deployment: &Deployment,
    config: &RouterConfig,
    gathered: &str,
) -> Result<AuditReport, AuditError> {
    let parts = sections(gathered);
    let mut report = AuditReport {
        router: String::new(),
        drift: Vec::new(),
        verification: None,
        notes: Vec::new(),
    };
    let dump =
        wgdump::parse_dump(section(&parts, "wg").unwrap_or("")).map_err(|e| AuditError::Parse {
            what: "WireGuard dump",
            detail: e.to_string(),
        })?;
    let interface = &deployment.wireguard.interface;
    report.drift.extend(peer_drift(
        deployment,
        dump.iter().find(|i| &i.name == interface),
    ));
    match config {
        RouterConfig::Linux(_) => {
            let live = parse_json(section(&parts, "ruleset").unwrap_or(""), "nftables ruleset")?;
            match section(&parts, "expected").map(str::trim) {
                Some(text) if text.starts_with('{') => {
                    let expected = parse_json(text, "canonical staged table")?;
                    report.drift.extend(table_drift(&expected, &live)?);
                }
                _ => report.notes.push(
                    "rules were not compared: the router cannot list the rendered table in a \
                     scratch namespace (needs unshare from util-linux)"
                        .into(),
                ),
            }
        }
        RouterConfig::Openwrt(c) => {
            if let Some(error) = section(&parts, "error") {
                return Err(AuditError::Remote(format!(
                    "uci batch rejected the rendered sovereign.uci:\n{error}"
                )));
            }
            for package in touched_packages(&c.uci_batch) {
                let live =
                    parse_uci_export(section(&parts, &format!("live {package}")).unwrap_or(""));
                let expected =
                    parse_uci_export(section(&parts, &format!("expected {package}")).unwrap_or(""));
                report.drift.extend(uci_drift(&package, &expected, &live));
            }
            let live_file = match section(&parts, "sysctl absent") {
                Some(_) => None,
                None => section(&parts, "sysctl"),
            };
            report.drift.extend(sysctl_drift(
                c.sysctl_conf.as_deref(),
                live_file,
                section(&parts, "sysctl values").unwrap_or(""),
            ));
            report
                .drift
                .extend(wiring_drift(section(&parts, "wiring").unwrap_or("")));
        }
    }
    report
        .drift
        .sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    Ok(report)
}

/// What `sovereign-wire.sh prove` said on the router (its output, then `FAILED` if
/// it failed): a port still bridged to the LAN is drift, whatever the rules say.
pub fn wiring_drift(gathered: &str) -> Vec<Drift> {
    let lines: Vec<&str> = gathered
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.last() != Some(&"FAILED") {
        return Vec::new();
    }
    let detail = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.trim_start_matches("sovereign-wire: "))
        .collect::<Vec<_>>()
        .join("; ");
    vec![Drift {
        kind: DriftKind::Wiring,
        change: DriftChange::Changed,
        key: "server port".into(),
        name: None,
        detail: format!(
            "{detail} (router apply moves it; until then the server is switched to the LAN)"
        ),
    }]
}

/// sovereign's sysctl file (`rendered`/`live`: `None` when absent) and the live
/// values of the keys the rendered file sets (`key=value` lines, as gathered).
/// Comments may differ; settings may not.
pub fn sysctl_drift(rendered: Option<&str>, live: Option<&str>, live_values: &str) -> Vec<Drift> {
    let file = |change, detail: String| Drift {
        kind: DriftKind::Sysctl,
        change,
        key: SYSCTL_FILE.into(),
        name: None,
        detail,
    };
    let mut drift = Vec::new();
    match (rendered, live) {
        (None, None) => {}
        (None, Some(_)) => drift.push(file(
            DriftChange::Extra,
            "turns proxy ARP on, but sovereign.toml's isolation is shared; router apply removes it"
                .into(),
        )),
        (Some(_), None) => drift.push(file(
            DriftChange::Missing,
            "not installed: dedicated-port isolation loses proxy ARP at the next reboot or \
             device change (router apply installs it)"
                .into(),
        )),
        (Some(rendered), Some(live)) => {
            let want = sysctl_settings(rendered);
            let have = sysctl_settings(live);
            let keys: BTreeSet<&String> = want.iter().chain(&have).map(|(k, _)| k).collect();
            let value = |settings: &[(String, String)], key: &str| {
                settings
                    .iter()
                    .rfind(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let changes: Vec<String> = keys
                .into_iter()
                .filter_map(|key| {
                    let (w, h) = (value(&want, key), value(&have, key));
                    let show = |v: Option<String>| v.map_or("unset".into(), |v| format!("'{v}'"));
                    (w != h).then(|| format!("{key}: {} instead of {}", show(h), show(w)))
                })
                .collect();
            if !changes.is_empty() {
                drift.push(file(DriftChange::Changed, changes.join("; ")));
            }
        }
    }
    let Some(rendered) = rendered else {
        return drift;
    };
    let live: BTreeMap<&str, &str> = live_values
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    for (key, want) in sysctl_settings(rendered) {
        let have = live.get(key.as_str()).map(|v| v.trim());
        if have == Some(want.as_str()) {
            continue;
        }
        drift.push(Drift {
            kind: DriftKind::Sysctl,
            change: DriftChange::Changed,
            key: key.clone(),
            name: None,
            detail: match have {
                None | Some("") => {
                    format!("unreadable on the router (no such device?); the file sets '{want}'")
                }
                Some(have) => {
                    format!("the kernel has '{have}' instead of '{want}' (sysctl -p {SYSCTL_FILE})")
                }
            },
        });
    }
    drift
}

/// Peers by public key: active peers must be there with their /32 and their PSK;
/// nothing else may be.
pub fn peer_drift(deployment: &Deployment, live: Option<&WgInterface>) -> Vec<Drift> {
    let Some(live) = live else {
        return vec![Drift {
            kind: DriftKind::Interface,
            change: DriftChange::Missing,
            key: deployment.wireguard.interface.clone(),
            name: None,
            detail: "the WireGuard interface does not exist on the router".into(),
        }];
    };
    let mut drift = Vec::new();
    let mut seen = BTreeSet::new();
    for peer in deployment.active_peers() {
        seen.insert(peer.public_key.as_str());
        let expected_ips = vec![format!("{}/32", peer.address)];
        let Some(found) = live.peers.iter().find(|p| p.public_key == peer.public_key) else {
            drift.push(Drift {
                kind: DriftKind::Peer,
                change: DriftChange::Missing,
                key: peer.public_key.clone(),
                name: Some(peer.name.clone()),
                detail: format!("not configured on {}", live.name),
            });
            continue;
        };
        let mut problems = Vec::new();
        let mut live_ips = found.allowed_ips.clone();
        live_ips.sort();
        if live_ips != expected_ips {
            problems.push(format!(
                "allowed IPs are {} instead of {}",
                display_list(&live_ips),
                expected_ips.join(", ")
            ));
        }
        if found.has_preshared_key != peer.preshared_key {
            problems.push(if peer.preshared_key {
                "has no preshared key, but sovereign.toml gives it one".to_string()
            } else {
                "has a preshared key, but sovereign.toml gives it none".to_string()
            });
        }
        if !problems.is_empty() {
            drift.push(Drift {
                kind: DriftKind::Peer,
                change: DriftChange::Changed,
                key: peer.public_key.clone(),
                name: Some(peer.name.clone()),
                detail: problems.join("; "),
            });
        }
    }
    for found in &live.peers {
        if seen.contains(found.public_key.as_str()) {
            continue;
        }
        let revoked = deployment
            .peers
            .iter()
            .find(|p| p.public_key == found.public_key && !p.is_active());
        drift.push(Drift {
            kind: DriftKind::Peer,
            change: DriftChange::Extra,
            key: found.public_key.clone(),
            name: revoked.map(|p| p.name.clone()),
            detail: match revoked {
                Some(p) if p.status == sovereign_model::PeerStatus::Disabled => match &p.expires {
                    // Deployments reach the audit as of now, where expired peers count as disabled.
                    Some(at) => format!(
                        "DISABLED or EXPIRED (expires {at}) in sovereign.toml but still accepted by the router"
                    ),
                    None => "DISABLED in sovereign.toml but still accepted by the router".into(),
                },
                Some(_) => "REVOKED in sovereign.toml but still accepted by the router".into(),
                None => format!(
                    "not in sovereign.toml (allowed IPs {})",
                    display_list(&found.allowed_ips)
                ),
            },
        });
    }
    drift
}

/// Rules of `table inet sovereign` by (chain, comment): uncommented rules are
/// compared by position within their chain.
pub fn table_drift(expected: &Value, live: &Value) -> Result<Vec<Drift>, AuditError> {
    let parse =
        |document: &Value| -> Result<(BTreeSet<String>, BTreeMap<String, NftRule>), AuditError> {
            let ours = |family: &str, table: &str| format!("{family} {table}") == TABLE;
            let chains = nftjson::chains(document)
                .map_err(|e| AuditError::Parse {
                    what: "nftables JSON",
                    detail: e.to_string(),
                })?
                .into_iter()
                .filter(|c| ours(&c.family, &c.table))
                .map(|c| c.name)
                .collect();
            let mut rules = BTreeMap::new();
            let mut uncommented: BTreeMap<String, usize> = BTreeMap::new();
            for rule in nftjson::rules(document).map_err(|e| AuditError::Parse {
                what: "nftables JSON",
                detail: e.to_string(),
            })? {
                if !ours(&rule.family, &rule.table) {
                    continue;
                }
                let key = match &rule.comment {
                    Some(comment) => format!("{}: {comment}", rule.chain),
                    None => {
                        let n = uncommented.entry(rule.chain.clone()).or_default();
                        *n += 1;
                        format!("{}: rule #{n} without comment", rule.chain)
                    }
                };
                rules.insert(key, rule);
            }
            Ok((chains, rules))
        };
    let (expected_chains, expected_rules) = parse(expected)?;
    let (live_chains, live_rules) = parse(live)?;
    let mut drift = Vec::new();
    if live_chains.is_empty() && live_rules.is_empty() {
        return Ok(vec![Drift {
            kind: DriftKind::Table,
            change: DriftChange::Missing,
            key: TABLE.into(),
            name: None,
            detail: "the firewall table is not loaded on the router".into(),
        }]);
    }
    for chain in expected_chains.symmetric_difference(&live_chains) {
        let missing = expected_chains.contains(chain);
        drift.push(Drift {
            kind: DriftKind::Chain,
            change: if missing {
                DriftChange::Missing
            } else {
                DriftChange::Extra
            },
            key: chain.clone(),
            name: None,
            detail: if missing {
                "chain missing"
            } else {
                "chain not rendered by sovereign"
            }
            .into(),
        });
    }
    for (key, rule) in &expected_rules {
        match live_rules.get(key) {
            None => drift.push(Drift {
                kind: DriftKind::Rule,
                change: DriftChange::Missing,
                key: key.clone(),
                name: None,
                detail: "rule missing".into(),
            }),
            Some(live) if live.expr != rule.expr => drift.push(Drift {
                kind: DriftKind::Rule,
                change: DriftChange::Changed,
                key: key.clone(),
                name: None,
                detail: "matches or verdict differ from the rendered rule".into(),
            }),
            Some(_) => {}
        }
    }
    for key in live_rules
        .keys()
        .filter(|k| !expected_rules.contains_key(*k))
    {
        drift.push(Drift {
            kind: DriftKind::Rule,
            change: DriftChange::Extra,
            key: key.clone(),
            name: None,
            detail: "rule not rendered by sovereign (added by hand?)".into(),
        });
    }
    Ok(drift)
}

/// One UCI section from `uci export`: its type and options (lists joined by ", ").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciSection {
    pub kind: String,
    pub options: BTreeMap<String, String>,
}

/// Sections of `uci export` output by name (`@type[n]` for anonymous ones).
pub fn parse_uci_export(text: &str) -> BTreeMap<String, UciSection> {
    let mut sections = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let words = uci_words(line);
        match words.first().map(String::as_str) {
            Some("config") if words.len() >= 2 => {
                let kind = words[1].clone();
                let index = counts.entry(kind.clone()).or_default();
                let name = words
                    .get(2)
                    .cloned()
                    .unwrap_or_else(|| format!("@{kind}[{index}]"));
                *index += 1;
                sections.insert(
                    name.clone(),
                    UciSection {
                        kind,
                        options: BTreeMap::new(),
                    },
                );
                current = Some(name);
            }
            Some(verb @ ("option" | "list")) if words.len() >= 3 => {
                let Some(section) = current.as_ref().and_then(|n| sections.get_mut(n)) else {
                    continue;
                };
                let value = words[2].clone();
                let entry = section.options.entry(words[1].clone()).or_default();
                if verb == "list" && !entry.is_empty() {
                    entry.push_str(", ");
                }
                entry.push_str(&value);
            }
            _ => {}
        }
    }
    sections
}

/// Sections that differ between the expected (live + batch) and the live package.
pub fn uci_drift(
    package: &str,
    expected: &BTreeMap<String, UciSection>,
    live: &BTreeMap<String, UciSection>,
) -> Vec<Drift> {
    let kind_of = |section: &UciSection| match section.kind.as_str() {
        "zone" => DriftKind::Zone,
        "rule" | "redirect" | "forwarding" => DriftKind::Rule,
        k if k.starts_with("wireguard_") => DriftKind::Peer,
        "interface" => DriftKind::Interface,
        _ => DriftKind::Section,
    };
    let mut drift = Vec::new();
    let names: BTreeSet<&String> = expected.keys().chain(live.keys()).collect();
    for name in names {
        let key = format!("{package}.{name}");
        match (expected.get(name), live.get(name)) {
            (Some(e), None) => drift.push(Drift {
                kind: kind_of(e),
                change: DriftChange::Missing,
                key,
                name: e.options.get("name").cloned(),
                detail: format!("{} section missing", e.kind),
            }),
            (None, Some(l)) => drift.push(Drift {
                kind: kind_of(l),
                change: DriftChange::Extra,
                key,
                name: l.options.get("name").cloned(),
                detail: format!("{} section that sovereign.uci removes", l.kind),
            }),
            (Some(e), Some(l)) if e != l => {
                let mut changes = Vec::new();
                let options: BTreeSet<&String> = e.options.keys().chain(l.options.keys()).collect();
                for option in options {
                    let (want, have) = (e.options.get(option), l.options.get(option));
                    if want == have {
                        continue;
                    }
                    let secret = option.contains("key");
                    let show = |v: Option<&String>| match v {
                        None => "unset".to_string(),
                        Some(_) if secret => "(hidden)".to_string(),
                        Some(v) => format!("'{v}'"),
                    };
                    changes.push(format!(
                        "{option}: {} instead of {}",
                        show(have),
                        show(want)
                    ));
                }
                if e.kind != l.kind {
                    changes.push(format!("type {} instead of {}", l.kind, e.kind));
                }
                drift.push(Drift {
                    kind: kind_of(e),
                    change: DriftChange::Changed,
                    key,
                    name: e.options.get("name").cloned(),
                    detail: changes.join("; "),
                });
            }
            _ => {}
        }
    }
    drift
}

fn uci_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote_char: Option<char> = None;
    for c in line.trim().chars() {
        match quote_char {
            Some(q) if c == q => quote_char = None,
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => {
                quote_char = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            None => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

fn parse_json(text: &str, what: &'static str) -> Result<Value, AuditError> {
    nftjson::parse(text.trim()).map_err(|e| AuditError::Parse {
        what,
        detail: e.to_string(),
    })
}

fn display_list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

/// The one script that reads everything; the rendered config goes in on stdin.
/// The here-document delimiter for the wiring script inside the audit script.
const WIRE_EOF: &str = "SOVEREIGN_WIRE_EOF";

fn gather_script(config: &RouterConfig) -> (String, String) {
    let head = "umask 077\n\
                S=$(mktemp -d /tmp/sovereign-audit.XXXXXX) || exit 1\n\
                trap 'rm -rf \"$S\"' EXIT\n";
    match config {
        RouterConfig::Linux(c) => (
            format!(
                "# sovereign: audit (linux)\n{head}\
                 cat > \"$S/nftables.nft\"\n\
                 echo '### ruleset'\n\
                 nft -j list ruleset || exit 1\n\
                 echo\n\
                 echo '### expected'\n\
                 unshare --net sh -c 'nft -f \"$1\" && nft -j list table {TABLE}' sh \"$S/nftables.nft\" 2>/dev/null\n\
                 echo\n\
                 echo '### wg'\n\
                 {DUMP_COMMAND}\n"
            ),
            c.nft_ruleset.clone(),
        ),
        RouterConfig::Openwrt(c) => {
            let packages = touched_packages(&c.uci_batch).join(" ");
            let keys: Vec<String> = c
                .sysctl_conf
                .as_deref()
                .map(sysctl_settings)
                .unwrap_or_default()
                .into_iter()
                .map(|(key, _)| quote(&key))
                .collect();
            (
                format!(
                    "# sovereign: audit (openwrt)\n{head}\
                     cat > \"$S/sovereign.uci\"\n\
                     cat > \"$S/{WIRE_SCRIPT}\" <<'{WIRE_EOF}'\n\
                     {wire}\n\
                     {WIRE_EOF}\n\
                     mkdir \"$S/conf\" \"$S/delta\" \"$S/nodelta\"\n\
                     for c in {packages}; do if [ -f /etc/config/\"$c\" ]; then cp /etc/config/\"$c\" \"$S/conf/$c\"; else : > \"$S/conf/$c\"; fi; done\n\
                     echo '### wiring'\n\
                     WIRE_WAIT=1 sh \"$S/{WIRE_SCRIPT}\" prove 2>&1 || echo FAILED\n\
                     sh \"$S/{WIRE_SCRIPT}\" plan > \"$S/wire.uci\" 2>/dev/null || : > \"$S/wire.uci\"\n\
                     cat \"$S/wire.uci\" \"$S/sovereign.uci\" | uci -c \"$S/conf\" -t \"$S/delta\" batch > \"$S/batch.log\" 2>&1; rc=$?\n\
                     if [ $rc -ne 0 ] || grep -q '^uci: ' \"$S/batch.log\"; then echo '### error'; cat \"$S/batch.log\"; exit 0; fi\n\
                     uci -c \"$S/conf\" -t \"$S/delta\" commit\n\
                     for c in {packages}; do\n\
                     \techo \"### live $c\"; uci -t \"$S/nodelta\" export \"$c\" 2>/dev/null\n\
                     \techo \"### expected $c\"; uci -c \"$S/conf\" -t \"$S/delta\" export \"$c\"\n\
                     done\n\
                     if [ -f {SYSCTL_FILE} ]; then echo '### sysctl'; cat {SYSCTL_FILE}; echo; else echo '### sysctl absent'; fi\n\
                     echo '### sysctl values'\n\
                     for k in {keys}; do echo \"$k=$(sysctl -n \"$k\" 2>/dev/null)\"; done\n\
                     echo '### ruleset'\n\
                     nft -j list ruleset || exit 1\n\
                     echo\n\
                     echo '### wg'\n\
                     {DUMP_COMMAND}\n",
                    packages = packages,
                    keys = keys.join(" "),
                    wire = c.wire_script.trim_end(),
                ),
                c.uci_batch.clone(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wgdump::WgPeer;
    use sovereign_model::{Peer, PeerStatus};

    const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    const KEY_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=";
    const KEY_C: &str = "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA=";

    fn deployment() -> Deployment {
        let mut d = Deployment::reference();
        d.peers = vec![
            Peer {
                name: "laptop".into(),
                address: "10.10.10.2".parse().unwrap(),
                public_key: KEY_A.into(),
                created: String::new(),
                status: PeerStatus::Active,
                preshared_key: true,
                changed: String::new(),
                expires: None,
            },
            Peer {
                name: "old-phone".into(),
                address: "10.10.10.3".parse().unwrap(),
                public_key: KEY_B.into(),
                created: String::new(),
                status: PeerStatus::Revoked,
                preshared_key: true,
                changed: String::new(),
                expires: None,
            },
        ];
        d
    }

    fn live_peer(key: &str, ip: &str, psk: bool) -> WgPeer {
        WgPeer {
            public_key: key.into(),
            has_preshared_key: psk,
            endpoint: None,
            allowed_ips: vec![ip.into()],
            latest_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
        }
    }

    fn interface(peers: Vec<WgPeer>) -> WgInterface {
        WgInterface {
            name: "wg0".into(),
            public_key: KEY_C.into(),
            listen_port: Some(51820),
            peers,
        }
    }

    #[test]
    fn peers_in_sync_show_no_drift() {
        let live = interface(vec![live_peer(KEY_A, "10.10.10.2/32", true)]);
        assert_eq!(peer_drift(&deployment(), Some(&live)), vec![]);
    }

    #[test]
    fn missing_changed_revoked_and_unknown_peers_are_reported() {
        let d = deployment();
        let missing = peer_drift(&d, Some(&interface(vec![])));
        assert_eq!(missing.len(), 1);
        assert_eq!(
            (missing[0].change, missing[0].name.as_deref()),
            (DriftChange::Missing, Some("laptop"))
        );

        let changed = peer_drift(
            &d,
            Some(&interface(vec![live_peer(KEY_A, "10.10.10.0/24", false)])),
        );
        assert_eq!(changed[0].change, DriftChange::Changed);
        assert!(
            changed[0].detail.contains("10.10.10.0/24")
                && changed[0].detail.contains("no preshared key")
        );

        let extra = peer_drift(
            &d,
            Some(&interface(vec![
                live_peer(KEY_A, "10.10.10.2/32", true),
                live_peer(KEY_B, "10.10.10.3/32", true),
                live_peer(KEY_C, "10.10.10.9/32", false),
            ])),
        );
        assert_eq!(extra.len(), 2);
        assert!(extra[0].detail.contains("REVOKED"));
        assert_eq!(extra[1].name, None);

        let gone = peer_drift(&d, None);
        assert_eq!(gone[0].kind, DriftKind::Interface);
    }

    const SYSCTL: &str =
        "# rendered\nnet.ipv4.conf.lan4.proxy_arp=1\nnet.ipv4.conf.br-lan.proxy_arp=1\n";
    const LIVE_ON: &str = "net.ipv4.conf.lan4.proxy_arp=1\nnet.ipv4.conf.br-lan.proxy_arp=1\n";

    fn summary(drift: &[Drift]) -> Vec<(DriftChange, &str)> {
        drift.iter().map(|d| (d.change, d.key.as_str())).collect()
    }

    #[test]
    fn an_installed_and_loaded_sysctl_file_shows_no_drift() {
        let live = format!("# edited comment\n{LIVE_ON}\n");
        assert_eq!(sysctl_drift(Some(SYSCTL), Some(&live), LIVE_ON), vec![]);
        assert_eq!(sysctl_drift(None, None, ""), vec![]);
    }

    #[test]
    fn a_missing_changed_or_leftover_sysctl_file_is_drift() {
        let missing = sysctl_drift(Some(SYSCTL), None, LIVE_ON);
        assert_eq!(summary(&missing), [(DriftChange::Missing, SYSCTL_FILE)]);

        let edited = "net.ipv4.conf.lan4.proxy_arp=0\nnet.ipv4.conf.lan3.proxy_arp=1\n";
        let changed = sysctl_drift(Some(SYSCTL), Some(edited), LIVE_ON);
        assert_eq!(summary(&changed), [(DriftChange::Changed, SYSCTL_FILE)]);
        assert_eq!(
            changed[0].detail,
            "net.ipv4.conf.br-lan.proxy_arp: unset instead of '1'; \
             net.ipv4.conf.lan3.proxy_arp: '1' instead of unset; \
             net.ipv4.conf.lan4.proxy_arp: '0' instead of '1'"
        );

        let leftover = sysctl_drift(None, Some(SYSCTL), "");
        assert_eq!(summary(&leftover), [(DriftChange::Extra, SYSCTL_FILE)]);
    }

    #[test]
    fn kernel_values_that_the_file_did_not_set_are_drift() {
        let values = "net.ipv4.conf.lan4.proxy_arp=0\nnet.ipv4.conf.br-lan.proxy_arp=\n";
        let drift = sysctl_drift(Some(SYSCTL), Some(SYSCTL), values);
        assert_eq!(
            summary(&drift),
            [
                (DriftChange::Changed, "net.ipv4.conf.lan4.proxy_arp"),
                (DriftChange::Changed, "net.ipv4.conf.br-lan.proxy_arp"),
            ]
        );
        assert!(drift[0].detail.contains("'0' instead of '1'"));
        assert!(drift[1].detail.contains("no such device"));
    }

    #[test]
    fn openwrt_audit_reads_the_sysctl_file_and_its_values() {
        let config = RouterConfig::Openwrt(crate::OpenwrtConfig {
            uci_batch: "set network.wg0=interface\n".into(),
            wg_interface: "wg0".into(),
            sysctl_conf: Some(SYSCTL.into()),
            wire_script: String::new(),
        });
        let (script, _) = gather_script(&config);
        assert!(script.contains(&format!("cat {SYSCTL_FILE}")));
        assert!(
            script.contains(
                "for k in net.ipv4.conf.lan4.proxy_arp net.ipv4.conf.br-lan.proxy_arp; do"
            )
        );
        let gathered = format!(
            "### live network\n### expected network\n### sysctl absent\n### sysctl values\n\
             {LIVE_ON}### ruleset\n{{\"nftables\": []}}\n### wg\n"
        );
        let report = evaluate(&deployment(), &config, &gathered).unwrap();
        assert!(
            report
                .drift
                .iter()
                .any(|d| d.kind == DriftKind::Sysctl && d.change == DriftChange::Missing),
            "{:#?}",
            report.drift
        );
    }

    #[test]
    fn uci_exports_compare_by_section_and_hide_keys() {
        let live = parse_uci_export(
            "package network\n\nconfig interface 'wg0'\n\toption proto 'wireguard'\n\toption private_key 'c2VjcmV0'\n\tlist addresses '10.10.10.1/24'\n\nconfig rule\n\toption name 'x'\n",
        );
        let expected = parse_uci_export(
            "package network\n\nconfig interface 'wg0'\n\toption proto 'wireguard'\n\toption private_key 'b3RoZXI='\n\tlist addresses '10.10.10.1/24'\n\tlist addresses 'fd00::1/64'\n\nconfig zone 'sovereign_vpn'\n\toption name 'vpn'\n",
        );
        assert_eq!(live["wg0"].options["addresses"], "10.10.10.1/24");
        assert!(live.contains_key("@rule[0]"));
        let drift = uci_drift("network", &expected, &live);
        assert_eq!(drift.len(), 3, "{drift:#?}");
        let changed = drift
            .iter()
            .find(|d| d.change == DriftChange::Changed)
            .unwrap();
        assert!(
            changed
                .detail
                .contains("private_key: (hidden) instead of (hidden)")
        );
        assert!(!changed.detail.contains("c2VjcmV0"));
        assert!(
            drift
                .iter()
                .any(|d| d.kind == DriftKind::Zone && d.change == DriftChange::Missing)
        );
        assert!(
            drift
                .iter()
                .any(|d| d.kind == DriftKind::Rule && d.change == DriftChange::Extra)
        );
    }
}
