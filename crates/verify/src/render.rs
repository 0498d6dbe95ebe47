//! Human output: a terminal matrix (optionally coloured) and a self-contained HTML page.

use std::fmt::Write as _;

use sovereign_model::{Deployment, Destination, Expect, Isolation, Source};

use crate::report::*;

const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn short(d: Destination) -> &'static str {
    match d {
        Destination::RouterWireguard => "WG udp",
        Destination::RouterServices => "router svc",
        Destination::RouterDns => "router DNS",
        Destination::ServerApi => "server API",
        Destination::ServerSsh => "server SSH",
        Destination::ServerOther => "server other",
        Destination::OtherLan => "other LAN",
        Destination::Internet => "internet",
        Destination::VpnPeer => "VPN peer",
    }
}

/// (text, colour class) of a cell: `ok`, `bad`, `warn`.
fn cell_text(c: &CellResult) -> (String, &'static str) {
    let expect = match c.expect {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
    };
    match c.verdict {
        CellVerdict::Holds if c.status == Status::NotRouted => ("L2 ok".into(), "ok"),
        // What is open stands out from what is closed, both as intended.
        CellVerdict::Holds if c.expect == Expect::Allow => (format!("{expect} ok"), "open"),
        CellVerdict::Holds => (format!("{expect} ok"), "ok"),
        CellVerdict::Unenforceable => ("L2 !".into(), "warn"),
        CellVerdict::Unknown => ("unknown ?".into(), "warn"),
        CellVerdict::Violated => {
            let got = match c.status {
                Status::Allowed => "ALLOWED",
                Status::Denied => "DENIED",
                Status::Mixed => "MIXED",
                _ => "VIOLATED",
            };
            (format!("{got} x"), "bad")
        }
    }
}

/// The matrix, then every violation and unknown with witness and trace, then lints.
pub fn render_table(report: &Report, color: bool) -> String {
    let paint = |text: &str, class: &str| -> String {
        if !color {
            return text.to_string();
        }
        let code = match class {
            "ok" => GREEN,
            "open" => CYAN,
            "bad" => RED,
            "warn" => YELLOW,
            "dim" => DIM,
            "bold" => BOLD,
            _ => "",
        };
        format!("{code}{text}{RESET}")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Reachability matrix from {} (rows: from, columns: to; IPv4)",
        report.input
    );
    let sources: Vec<Source> = Source::ALL
        .into_iter()
        .filter(|s| report.cells.iter().any(|c| c.source == *s))
        .collect();
    let destinations = Destination::ALL;
    let mut rows: Vec<Vec<(String, &str)>> = Vec::new();
    let mut header = vec![(String::new(), "")];
    header.extend(destinations.iter().map(|d| (short(*d).to_string(), "")));
    rows.push(header);
    for s in &sources {
        let mut row = vec![(s.label().to_string(), "")];
        for d in destinations {
            row.push(match report.cell(*s, d, IpFamily::Ipv4) {
                Some(c) => cell_text(c),
                None => ("-".into(), "dim"),
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..=destinations.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].0.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (ri, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, (text, class)) in row.iter().enumerate() {
            let pad = widths[i] - text.chars().count();
            let cell = if ri == 0 {
                paint(text, "bold")
            } else {
                paint(text, class)
            };
            let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }

    let v6: Vec<&CellResult> = report
        .cells
        .iter()
        .filter(|c| c.family == IpFamily::Ipv6)
        .collect();
    if !v6.is_empty() {
        let open = v6
            .iter()
            .filter(|c| c.verdict != CellVerdict::Holds && c.verdict != CellVerdict::Unenforceable)
            .count();
        let line = format!(
            "IPv6: {} intended-deny cells checked, {} not closed",
            v6.len(),
            open
        );
        let _ = writeln!(
            out,
            "\n{}",
            paint(&line, if open == 0 { "ok" } else { "bad" })
        );
    }

    let problems: Vec<&CellResult> = report
        .cells
        .iter()
        .filter(|c| matches!(c.verdict, CellVerdict::Violated | CellVerdict::Unknown))
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\n{}", paint("Mismatches", "bold"));
    }
    for c in problems {
        let fam = if c.family == IpFamily::Ipv6 {
            " [IPv6]"
        } else {
            ""
        };
        let (text, class) = cell_text(c);
        let _ = writeln!(
            out,
            "\n  {} -> {}{fam}: expected {}, got {} ({})",
            c.source.label(),
            c.destination.label(),
            c.expect,
            paint(&text, class),
            c.reason
        );
        for u in &c.unknown {
            let _ = writeln!(out, "    unknown: {u}");
        }
        for w in c.witnesses.iter().take(3) {
            write_witness(&mut out, w, "    ");
        }
        if c.witnesses.is_empty()
            && let Some(w) = c.paths.first()
        {
            write_witness(&mut out, w, "    ");
        }
    }

    if !report.lints.is_empty() {
        let _ = writeln!(out, "\n{}", paint("Lints", "bold"));
        for l in &report.lints {
            let (tag, class) = match l.severity {
                Severity::Error => ("error", "bad"),
                Severity::Warning => ("warning", "warn"),
                Severity::Info => ("info", "dim"),
            };
            let _ = writeln!(out, "  {} [{}] {}", paint(tag, class), l.code, l.message);
            if let Some(r) = &l.rule {
                let _ = writeln!(out, "      at {r}");
            }
        }
    }
    let s = &report.summary;
    let verdict = if s.holds {
        paint("policy holds", "ok")
    } else {
        paint("policy does NOT hold", "bad")
    };
    let _ = writeln!(
        out,
        "\n{verdict}: {} cells, {} hold, {} violated, {} unknown, {} unenforceable; {} lint errors, {} warnings",
        s.cells, s.holding, s.violated, s.unknown, s.unenforceable, s.errors, s.warnings
    );
    out
}

fn write_witness(out: &mut String, w: &Witness, indent: &str) {
    let _ = writeln!(out, "{indent}witness: {} -> {}", w.packet, w.fate);
    if let Some(d) = &w.decided_by {
        let _ = writeln!(out, "{indent}decided by: {d}");
    }
    let _ = writeln!(out, "{indent}trace:");
    for step in &w.trace {
        let rule = if step.rule.is_empty() {
            String::new()
        } else {
            format!("  [{}]", step.rule)
        };
        let _ = writeln!(out, "{indent}  {step}{rule}");
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where a report came from, for the page an audit keeps: when, by which sovereign,
/// from which inputs (with their SHA-256). The caller supplies it, so rendering
/// stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// RFC 3339, UTC.
    pub generated: String,
    pub version: String,
    /// (file, its SHA-256 in hex); empty for a built-in deployment.
    pub inputs: Vec<(String, String)>,
}

/// A self-contained page: inline CSS, an inline SVG of the topology, the matrix and
/// every cell's traces. No external assets.
pub fn render_html(report: &Report, d: &Deployment) -> String {
    render_html_with(report, d, &Provenance::default())
}

/// [`render_html`] with the report's provenance in the page (shown and in `<meta>`).
pub fn render_html_with(report: &Report, d: &Deployment, provenance: &Provenance) -> String {
    let mut h = String::new();
    let s = &report.summary;
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sovereign verify</title>\n\
         <meta name=\"sovereign-version\" content=\"{}\"><meta name=\"generated\" content=\"{}\">\n\
         <style>\n{CSS}</style></head><body>\n",
        esc(&provenance.version),
        esc(&provenance.generated)
    );
    let _ = writeln!(
        h,
        "<h1>sovereign verify</h1><p class=\"{}\">{}: {} cells, {} hold, {} violated, {} unknown, {} unenforceable; {} lint errors, {} warnings. Input: {}.</p>",
        if s.holds { "ok banner" } else { "bad banner" },
        if s.holds {
            "The policy holds"
        } else {
            "The policy does NOT hold"
        },
        s.cells,
        s.holding,
        s.violated,
        s.unknown,
        s.unenforceable,
        s.errors,
        s.warnings,
        esc(&report.input)
    );
    if !provenance.generated.is_empty() {
        let inputs: Vec<String> = provenance
            .inputs
            .iter()
            .map(|(file, sha)| format!("<code>{}</code> (sha256 {})", esc(file), esc(sha)))
            .collect();
        let _ = writeln!(
            h,
            "<p class=\"meta\">Generated {} by sovereign {}; input: {}.</p>",
            esc(&provenance.generated),
            esc(&provenance.version),
            if inputs.is_empty() {
                "the built-in reference deployment".to_string()
            } else {
                inputs.join(", ")
            }
        );
    }
    h.push_str(&topology_svg(report, d));
    h.push_str(
        "<h2>Reachability matrix (IPv4)</h2>\n<table class=\"matrix\"><tr><th>from \\ to</th>",
    );
    for dest in Destination::ALL {
        let _ = write!(h, "<th>{}</th>", esc(dest.label()));
    }
    h.push_str("</tr>\n");
    for src in Source::ALL {
        if !report.cells.iter().any(|c| c.source == src) {
            continue;
        }
        let _ = write!(h, "<tr><th>{}</th>", esc(src.label()));
        for dest in Destination::ALL {
            match report.cell(src, dest, IpFamily::Ipv4) {
                Some(c) => {
                    let (text, class) = cell_text(c);
                    let _ = write!(
                        h,
                        "<td class=\"{class}\" title=\"{}\"><a href=\"#{}\">{}</a></td>",
                        esc(&c.reason),
                        anchor(c),
                        esc(&text)
                    );
                }
                None => h.push_str("<td class=\"na\">-</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<p class=\"legend\"><span class=\"open\">allow ok</span> open as intended &middot; <span class=\"ok\">deny ok</span> closed as intended &middot; <span class=\"bad\">x</span> violated &middot; <span class=\"warn\">?</span> unknown / <span class=\"warn\">L2 !</span> unenforceable on a shared L2 segment</p>\n");

    if !report.lints.is_empty() {
        h.push_str("<h2>Lints</h2><ul class=\"lints\">\n");
        for l in &report.lints {
            let class = match l.severity {
                Severity::Error => "bad",
                Severity::Warning => "warn",
                Severity::Info => "na",
            };
            let _ = write!(
                h,
                "<li><span class=\"{class}\">{:?}</span> <code>{}</code> {}",
                l.severity,
                l.code,
                esc(&l.message)
            );
            if let Some(r) = &l.rule {
                let _ = write!(h, "<br><small>at {}</small>", esc(&r.to_string()));
            }
            h.push_str("</li>\n");
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2>Cells</h2>\n");
    for c in &report.cells {
        let (text, class) = cell_text(c);
        let _ = write!(
            h,
            "<details id=\"{}\"{}><summary><span class=\"{class}\">{}</span> {} &rarr; {} ({}): expected {} &mdash; {}</summary>\n<p>{}</p>",
            anchor(c),
            if class == "bad" { " open" } else { "" },
            esc(&text),
            esc(c.source.label()),
            esc(c.destination.label()),
            c.family,
            c.expect,
            esc(&c.reason),
            esc(&c.space)
        );
        for u in &c.unknown {
            let _ = write!(h, "<p class=\"warn\">unknown: {}</p>", esc(u));
        }
        for w in &c.paths {
            let _ = write!(
                h,
                "<div class=\"path\"><b>{}</b> &mdash; {} ({} class{})<ol>",
                esc(&w.fate),
                esc(&w.packet.to_string()),
                w.classes,
                if w.classes == 1 { "" } else { "es" }
            );
            for step in &w.trace {
                let _ = write!(
                    h,
                    "<li>{} <code>{}</code></li>",
                    esc(&step.to_string()),
                    esc(&step.rule)
                );
            }
            h.push_str("</ol></div>");
        }
        h.push_str("</details>\n");
    }
    h.push_str("<h2>Assumptions</h2><ul>");
    for a in &report.assumptions {
        let _ = write!(h, "<li>{}</li>", esc(a));
    }
    h.push_str("</ul>\n</body></html>\n");
    h
}

fn anchor(c: &CellResult) -> String {
    format!("{:?}-{:?}-{:?}", c.source, c.destination, c.family).to_lowercase()
}

fn node_class(report: &Report, source: Source) -> &'static str {
    let cells: Vec<&CellResult> = report.cells.iter().filter(|c| c.source == source).collect();
    if cells.iter().any(|c| c.verdict == CellVerdict::Violated) {
        "bad"
    } else if cells
        .iter()
        .any(|c| matches!(c.verdict, CellVerdict::Unknown | CellVerdict::Unenforceable))
    {
        "warn"
    } else {
        "ok"
    }
}

fn topology_svg(report: &Report, d: &Deployment) -> String {
    let t = &report.topology;
    let mut s = String::from(
        "<svg class=\"topo\" viewBox=\"0 0 860 300\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"topology\">\n",
    );
    let mut node = |x: i32, y: i32, w: i32, class: &str, title: &str, sub: &str| {
        let _ = write!(
            s,
            "<g class=\"{class}\"><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"54\" rx=\"8\"/><text x=\"{}\" y=\"{}\" class=\"t\">{}</text><text x=\"{}\" y=\"{}\" class=\"s\">{}</text></g>",
            x + w / 2,
            y + 22,
            esc(title),
            x + w / 2,
            y + 42,
            esc(sub)
        );
    };
    node(
        330,
        120,
        200,
        "router",
        "router",
        &format!("{} {}", t.wan_interface, t.wan_address),
    );
    node(
        20,
        20,
        220,
        node_class(report, Source::Internet),
        "internet",
        &format!("via {}", t.wan_interface),
    );
    node(
        20,
        220,
        220,
        node_class(report, Source::VpnPeer),
        "VPN peers",
        &format!("{} {}", t.wireguard_interface, t.vpn_net),
    );
    node(
        620,
        20,
        220,
        node_class(report, Source::Server),
        "AI server",
        &format!("{} on {}", t.server, t.server_interface),
    );
    let lan_label = match d.server.isolation {
        Isolation::Shared => format!("{} (shared with server)", t.lan_interface),
        Isolation::DedicatedPort => format!("{} {}", t.lan_interface, t.lan_net),
    };
    node(
        620,
        220,
        220,
        node_class(report, Source::LanDevice),
        "LAN devices",
        &lan_label,
    );
    for (x, y) in [(240, 47), (240, 247), (620, 47), (620, 247)] {
        let _ = write!(
            s,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"147\"/>",
            if x < 330 { 330 } else { 530 }
        );
    }
    if d.server.isolation == Isolation::Shared {
        s.push_str("<line class=\"l2\" x1=\"730\" y1=\"74\" x2=\"730\" y2=\"220\"/><text x=\"740\" y=\"150\" class=\"s\" text-anchor=\"start\">same L2 segment</text>\n");
    }
    s.push_str("</svg>\n");
    s
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\n\
table.matrix{border-collapse:collapse;margin:1em 0}\n\
.matrix th,.matrix td{border:1px solid #ccc;padding:.35em .6em;text-align:center;font-size:.9em}\n\
.matrix td a{color:inherit;text-decoration:none}\n\
.ok{color:#176f2c}.matrix td.ok{background:#e3f6e7}\n\
.open{color:#174ea6;font-weight:bold}.matrix td.open{background:#dce8fb}\n\
.meta{color:#555;font-size:.85em}\n\
.bad{color:#b00020;font-weight:bold}.matrix td.bad{background:#fde2e4}\n\
.warn{color:#8a6100}.matrix td.warn{background:#fff4d6}\n\
.na{color:#999}\n\
.banner{font-size:1.1em;padding:.6em;border-radius:6px;background:#f6f6f6}\n\
details{margin:.3em 0;padding:.3em .6em;border:1px solid #e4e4e4;border-radius:6px}\n\
.path{margin:.4em 0 .4em 1em}.path ol{margin:.2em 0}\n\
code{background:#f3f3f3;padding:0 .2em}\n\
svg.topo{width:100%;max-width:860px;height:auto}\n\
svg rect{fill:#fff;stroke:#666;stroke-width:1.5}\n\
svg g.ok rect{stroke:#176f2c}svg g.bad rect{stroke:#b00020;stroke-width:3}svg g.warn rect{stroke:#c08a00}\n\
svg g.router rect{fill:#eef3fb}\n\
svg line{stroke:#888;stroke-width:2}svg line.l2{stroke:#c08a00;stroke-dasharray:6 4}\n\
svg text.t{font-size:15px;text-anchor:middle;font-weight:bold}svg text.s{font-size:12px;text-anchor:middle;fill:#444}\n";
