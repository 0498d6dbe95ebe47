//! Real fw4 for the verifier's tests: a UCI config (firewall + network packages) is
//! compiled by OpenWrt's own fw4 (`fw4 print` under firewall4's mock library, with
//! the interface state netifd would report made from the network package), checked
//! with `nft -c` and loaded into a scratch network namespace, and read back with
//! `nft -j list ruleset`: the ruleset a router would run, as the verifier reads it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};
use sovereign_router::uci::{Package, Section, Value as UciValue};
use sovereign_testkit::thirdparty::Fw4;

/// What real fw4 made of a config.
#[derive(Debug, Clone)]
pub struct RealFw4 {
    /// The nft text `fw4 print` wrote.
    pub nft: String,
    /// fw4's warnings (`[!] ...`, `[W] ...`): the mock library's notes about
    /// fixtures are left out.
    pub warnings: Vec<String>,
    /// The mock library's notes (a fixture fw4 asked for and did not find).
    pub mock_notes: Vec<String>,
    /// `nft -j list ruleset` after loading `nft` into a scratch namespace.
    pub json: String,
}

#[derive(Debug, Clone)]
pub enum RealFw4Error {
    /// fw4 itself failed (exit status not 0).
    Fw4(String),
    /// `nft -c -f` refused what fw4 printed.
    NftCheck(String),
    /// Something around the tools failed (a mock file, the namespace).
    Setup(String),
}

/// A scratch directory for one run's fixtures, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sovereign-real-fw4-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compile `firewall` + `network` with real fw4, check and load the result in a
/// scratch network namespace, and list it back as JSON.
pub fn real_fw4(fw4: &Fw4, firewall: &Package, network: &Package) -> Result<RealFw4, RealFw4Error> {
    let scratch = Scratch::new("mocks");
    write_mocks(fw4, &scratch.0, firewall, network).map_err(RealFw4Error::Setup)?;
    let out = fw4.print(&scratch.0).map_err(RealFw4Error::Setup)?;
    // The mock library's notes are coloured (and continue on indented lines);
    // fw4's own warnings are plain `[!] ...` lines.
    let warnings: Vec<String> = out
        .stderr
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('\u{1b}') && !l.starts_with(' '))
        .map(str::to_string)
        .collect();
    let mock_notes: Vec<String> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with('\u{1b}'))
        .map(strip_ansi)
        .collect();
    if !out.success {
        return Err(RealFw4Error::Fw4(format!("{}{}", out.stdout, out.stderr)));
    }
    let json = nft_load_and_list(&scratch.0, &out.stdout)?;
    Ok(RealFw4 {
        nft: out.stdout,
        warnings,
        mock_notes,
        json,
    })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `nft -c -f`, then `nft -f` and `nft -j list ruleset`, all inside one fresh
/// network namespace (`unshare -n`): nothing touches the host's firewall.
pub fn nft_load_and_list(dir: &Path, nft_text: &str) -> Result<String, RealFw4Error> {
    let file = dir.join("ruleset.nft");
    std::fs::write(&file, nft_text).map_err(|e| RealFw4Error::Setup(e.to_string()))?;
    // One namespace for the check, the load and the listing (a namespace costs
    // more than the three nft runs); exit 3 marks a refused check.
    let script = format!(
        "nft -c -f '{f}' || exit 3; nft -f '{f}' && nft -j list ruleset",
        f = file.display().to_string().replace('\'', "")
    );
    let load = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .map_err(|e| RealFw4Error::Setup(format!("unshare -n nft: {e}")))?;
    let stderr = String::from_utf8_lossy(&load.stderr).into_owned();
    match load.status.code() {
        Some(0) => {}
        Some(3) => return Err(RealFw4Error::NftCheck(stderr)),
        _ => {
            return Err(RealFw4Error::Setup(format!(
                "loading a ruleset that `nft -c` accepted failed ({}): {stderr}",
                load.status
            )));
        }
    }
    Ok(String::from_utf8_lossy(&load.stdout).into_owned())
}

/// The fixtures firewall4's mock library reads: `uci/<package>.json`, the ubus
/// interface dump, an empty set of procd firewall data, and every conntrack helper
/// module reported absent (whether the host kernel could load a helper must not
/// decide whether the ruleset loads; helpers set no verdict).
pub fn write_mocks(
    fw4: &Fw4,
    dir: &Path,
    firewall: &Package,
    network: &Package,
) -> Result<(), String> {
    let write = |path: &str, value: &Value| -> Result<(), String> {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("uci/firewall.json", &uci_mock(firewall))?;
    write("uci/network.json", &uci_mock(network))?;
    let dump = interface_dump(network);
    write("ubus/network.interface~dump.json", &dump)?;
    // fw4 reads each device's flags (is it a loopback?): an ordinary up device.
    for ifc in dump["interface"].as_array().into_iter().flatten() {
        if let Some(dev) = ifc["l3_device"].as_str() {
            let flags = if dev == "lo" { "0x9" } else { "0x1003" };
            let path = dir.join(format!(
                "fs/open~{}.txt",
                mock_name(&format!("/sys/class/net/{dev}/flags"))
            ));
            std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::write(&path, format!("{flags}\n")).map_err(|e| e.to_string())?;
        }
    }
    write("ubus/service~get_data~type-firewall.json", &json!({}))?;
    let helpers = std::fs::read_to_string(fw4.tree.join("tests/mocks/uci/helpers.json"))
        .map_err(|e| format!("firewall4 helpers fixture: {e}"))?;
    let helpers: Value = serde_json::from_str(&helpers).map_err(|e| e.to_string())?;
    let mut modules = Vec::new();
    collect_strings(&helpers, "module", &mut modules);
    for module in modules {
        write(
            &format!(
                "fs/stat~{}.json",
                mock_name(&format!("/sys/module/{module}"))
            ),
            &json!({"type": "none"}),
        )?;
    }
    Ok(())
}

/// The mock's file name for a path: each run of characters other than
/// `[A-Za-z0-9_-]` becomes one `_`.
fn mock_name(path: &str) -> String {
    let mut out = String::new();
    let mut in_run = false;
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

fn collect_strings(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => collect_strings(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, key, out)),
        _ => {}
    }
}

/// A package in the mock's format: `{type: [section, ...]}`, named sections with
/// `.name`; each type's sections keep their order (fw4 reads by type).
pub fn uci_mock(package: &Package) -> Value {
    let mut out = Map::new();
    for section in &package.sections {
        let mut obj = Map::new();
        if let Some(name) = &section.name {
            obj.insert(".name".into(), json!(name));
        }
        for (option, value) in &section.options {
            let v = match value {
                UciValue::Single(s) => json!(s),
                UciValue::List(items) => json!(items),
            };
            obj.insert(option.clone(), v);
        }
        let list = out
            .entry(section.kind.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        list.as_array_mut().unwrap().push(Value::Object(obj));
    }
    Value::Object(out)
}

/// The address the first DHCP interface (the WAN) gets in [`interface_dump`]: the
/// deployments' WAN address (`wan.address`), which the model takes as netifd's.
pub const DHCP_WAN_ADDRESS: &str = "192.168.2.90";

/// What `ubus call network.interface dump` reports for a network config once netifd
/// has brought everything up: each interface up, its L3 device as netifd names it,
/// and its static IPv4 addresses. DHCP interfaces get an address from TEST-NET-2,
/// as a WAN would from its ISP (fw4's NAT reflection needs a WAN address).
pub fn interface_dump(network: &Package) -> Value {
    let mut interfaces = vec![json!({
        "interface": "loopback", "up": true, "l3_device": "lo", "device": "lo", "proto": "static",
        "ipv4-address": [{"address": "127.0.0.1", "mask": 8}],
    })];
    let mut dhcp = 0u8;
    for s in network.sections_of("interface") {
        let Some(name) = s.name.as_deref() else {
            continue;
        };
        if name == "loopback" {
            continue;
        }
        let proto = s.get_str("proto").unwrap_or("none");
        let device = l3_device(network, s, name);
        let mut addresses = Vec::new();
        if proto == "static" {
            for addr in s.get_all("ipaddr") {
                let (addr, bits) = match addr.split_once('/') {
                    Some((a, b)) => (a.to_string(), b.parse::<u8>().unwrap_or(32)),
                    None => (
                        addr.to_string(),
                        s.get_str("netmask").map_or(32, netmask_bits),
                    ),
                };
                addresses.push(json!({"address": addr, "mask": bits}));
            }
        } else if proto == "dhcp" {
            dhcp += 1;
            let address = match dhcp {
                1 => DHCP_WAN_ADDRESS.to_string(),
                n => format!("198.51.100.{}", 1 + n),
            };
            addresses.push(json!({"address": address, "mask": 24}));
        }
        let mut ifc = json!({
            "interface": name,
            "up": s.get_str("disabled") != Some("1"),
            "proto": proto,
            "ipv4-address": addresses,
            "ipv6-address": [],
            "ipv6-prefix-assignment": [],
            "data": {},
        });
        if let Some(device) = device {
            ifc["l3_device"] = json!(device);
            ifc["device"] = json!(device);
        }
        interfaces.push(ifc);
    }
    json!({ "interface": interfaces })
}

/// netifd's L3 device: tunnels and PPP make their own, `@other` aliases another
/// interface, otherwise the `device` (or legacy `ifname`, or `br-NAME` for a legacy
/// `type bridge`).
fn l3_device(network: &Package, s: &Section, name: &str) -> Option<String> {
    let proto = s.get_str("proto").unwrap_or("none");
    match proto {
        "pppoe" | "pppoa" | "pptp" | "l2tp" => {
            return Some(format!(
                "{}-{name}",
                if proto == "pppoa" { "pppoa" } else { "pppoe" }
            ));
        }
        "wireguard" | "gre" | "gretap" | "vti" | "6in4" | "6to4" | "6rd" | "dslite" | "map" => {
            return Some(name.to_string());
        }
        _ => {}
    }
    if let Some(dev) = s.get_str("device") {
        if let Some(other) = dev.strip_prefix('@') {
            let o = network.section(other)?;
            return l3_device(network, o, other);
        }
        return Some(dev.to_string());
    }
    if s.get_str("type") == Some("bridge") {
        return Some(format!("br-{name}"));
    }
    s.get_all("ifname").first().map(|d| d.to_string())
}

fn netmask_bits(mask: &str) -> u8 {
    mask.parse::<std::net::Ipv4Addr>()
        .map_or(32, |m| u32::from(m).count_ones() as u8)
}
