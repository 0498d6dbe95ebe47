//! `sovereign-wire.sh`: the one part of the OpenWrt change that `uci batch` cannot
//! make safely, moving the server's port out of the LAN bridge (or back).
//!
//! The bridge is an anonymous `config device` section. `uci batch` can address it
//! only by position (`@device[0]`), and on a router whose first device section is
//! something else (a MAC override for `wan`, a VLAN device) `del_list` on the wrong
//! section exits 0 and changes nothing: the port would stay bridged to the LAN
//! while also becoming `sovereign_ai`'s device. So the script looks the bridge up
//! by name (the device of network `lan`), through uci's stable section ids
//! (`uci -X show`), refuses before any change when the port is not where sovereign
//! expects it, and after the reload proves from the config and from the kernel's
//! bridge membership (`/sys/class/net/PORT/master`) that the port left the bridge.
//!
//! Routers without DSA (swconfig: `config switch` / `switch_vlan`) have no `lanN`
//! ports; there the server's port must be a VLAN device of its own (`eth0.3`),
//! and the script refuses unless that VLAN shares no untagged switch port with a
//! VLAN of the bridge.
//!
//! `router apply` uploads and runs the same file, so the by-hand path and the
//! transaction share one implementation. The script is POSIX sh for busybox ash.

use sovereign_model::{Deployment, Isolation};

use crate::uci::{Package, quote};

/// The rendered file's name.
pub const WIRE_SCRIPT: &str = "sovereign-wire.sh";

/// The uci network section of the server's port in dedicated-port isolation.
pub const SERVER_NETWORK: &str = "sovereign_ai";

/// The rendered `sovereign-wire.sh` for this deployment.
pub fn wire_script(d: &Deployment) -> String {
    let mode = match d.server.isolation {
        Isolation::DedicatedPort => "dedicated",
        Isolation::Shared => "shared",
    };
    format!(
        "#!/bin/sh\n\
         # sovereign-wire.sh, rendered by `sovereign router render`; `sovereign router apply` runs it too.\n\
         #   sh sovereign-wire.sh [stage]  check the wiring, stage the bridge change (uncommitted)\n\
         #   sh sovereign-wire.sh plan     check, and print the uci batch lines instead\n\
         #   sh sovereign-wire.sh prove    after commit and reload: prove where the server's port is\n\
         # Exit 0: done; 1: not proven; 2: not safe to change (nothing was changed).\n\
         MODE={mode}\n\
         PORT={port}\n\
         LAN_DEVICE={lan}\n\
         LAN_ADDRESS={lan_address}\n\
         SERVER_NET={SERVER_NETWORK}\n\
         {BODY}",
        port = quote(&d.server.router_port),
        lan = quote(&d.lan.interface),
        lan_address = quote(&format!(
            "{}/{}",
            d.lan.router_address,
            d.lan.subnet.prefix_len()
        )),
    )
}

const BODY: &str = r#"STATE="$(dirname "$0")/sovereign-wire.state"

die() { echo "sovereign-wire: $*; nothing was changed" >&2; exit 2; }
unproven() { echo "sovereign-wire: $*" >&2; exit 1; }
has_word() { case " $1 " in *" $2 "*) return 0;; esac; return 1; }

# The section ids (cfgXXXXXX or a name) of every network section of type $1.
sections_of() { uci -q -X show network | sed -n "s/^network\.\([^.=]*\)=$1\$/\1/p"; }

# The `config device` section whose name is $1.
bridge_section() {
	for s in $(sections_of device); do
		[ "$(uci -q get network."$s".name)" = "$1" ] && { echo "$s"; return; }
	done
}

# The switch ports of the swconfig VLAN behind device $1 (eth0.N), untagged only.
vlan_ports() {
	n=${1##*.}
	[ "$n" != "$1" ] || return 0
	for s in $(sections_of switch_vlan); do
		v=$(uci -q get network."$s".vid || uci -q get network."$s".vlan)
		[ "$v" = "$n" ] || continue
		for p in $(uci -q get network."$s".ports); do case $p in *t) ;; *) echo "$p";; esac; done
	done
}

# A swconfig VLAN device of its own: no untagged switch port in common with the bridge's.
own_vlan() {
	mine=$(vlan_ports "$PORT")
	[ -n "$mine" ] || die "$PORT is not a VLAN of this router's switch (no switch_vlan with its number has untagged ports); create one for the server's port and set server.router_port to its device"
	for bp in $1; do
		for p in $(vlan_ports "$bp"); do
			has_word "$mine" "$p" && die "switch port $p is in both $PORT and the LAN's $bp, so the server would stay switched to the LAN; give the server's switch port a VLAN of its own"
		done
	done
	return 0
}

# A dotted netmask's prefix length (255.255.255.0 -> 24).
mask_bits() {
	n=0
	for o in $(echo "$1" | tr . ' '); do
		case $o in 255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;; 248) n=$((n + 5)) ;;
		240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;; 192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;; esac
	done
	echo "$n"
}

# The router's LAN address as ADDRESS/PREFIX (ipaddr in CIDR form or with netmask).
router_lan() {
	ip=$(uci -q get network.lan.ipaddr) || return 0
	ip=${ip%% *}
	case $ip in
	*/*) echo "$ip" ;;
	*) echo "$ip/$(mask_bits "$(uci -q get network.lan.netmask || echo 255.255.255.0)")" ;;
	esac
}

lookup() {
	lan_dev=$(uci -q get network.lan.device) || die "network.lan has no device option, so the LAN bridge cannot be found"
	[ "$lan_dev" = "$LAN_DEVICE" ] || die "the LAN bridge is '$lan_dev' (network.lan.device), but sovereign.toml says lan.interface = '$LAN_DEVICE'; set lan.interface = \"$lan_dev\" and render again"
	have=$(router_lan)
	[ -z "$have" ] || [ "$have" = "$LAN_ADDRESS" ] || die "the router's LAN address is $have (network.lan), but sovereign.toml has $LAN_ADDRESS (lan.router_address and lan.subnet); set them to the router's (a stock OpenWrt has 192.168.1.1 in 192.168.1.0/24) and render again, or change the router's LAN first"
	br=$(bridge_section "$lan_dev")
	[ -n "$br" ] || die "no config device section is named '$lan_dev' (the device of network.lan), so the bridge's ports cannot be read"
	ports=$(uci -q get network."$br".ports)
	current=$(uci -q get network."$SERVER_NET".device)
}

plan() {
	lookup
	if [ "$MODE" = shared ]; then
		[ -n "$current" ] && ! has_word "$ports" "$current" && echo "add_list network.$br.ports='$current'"
		return 0
	fi
	if has_word "$ports" "$PORT"; then
		echo "del_list network.$br.ports='$PORT'"
	elif [ "$current" = "$PORT" ]; then
		: # wired by an earlier apply
	elif [ -n "$(sections_of switch)" ]; then
		case $PORT in
		*.*) own_vlan "$ports" ;;
		*) die "this router has a swconfig switch (config switch), not DSA ports, so there is no port '$PORT'; create a VLAN for the server's switch port and set server.router_port to its device (e.g. eth0.3)" ;;
		esac
	else
		die "'$PORT' is not a port of the LAN bridge $lan_dev (its ports: ${ports:-none}); set server.router_port to the port the server is plugged into"
	fi
}

stage() {
	lookup
	lines=$(plan) || exit $?
	rm -f "$STATE"
	[ -n "$lines" ] || { echo "wiring: nothing to change"; return 0; }
	out=$(echo "$lines" | uci batch 2>&1) || die "uci batch failed: $out"
	case $out in *uci:*) die "uci batch rejected: $out";; esac
	[ "$MODE" = shared ] && echo "$current" > "$STATE"
	echo "wiring: $lines"
}

# The kernel's view: is device $1 still enslaved to the LAN bridge? netifd applies
# a reload asynchronously, so give it WIRE_WAIT seconds (ten) to let go.
bridged() {
	i=0
	while [ $i -lt "${WIRE_WAIT:-10}" ]; do
		m=$(readlink "/sys/class/net/$1/master" 2>/dev/null)
		[ "${m##*/}" = "$LAN_DEVICE" ] || return 1
		sleep 1; i=$((i + 1))
	done
	return 0
}

prove() {
	lookup
	if [ "$MODE" = shared ]; then
		[ -z "$(uci -q get network."$SERVER_NET")" ] || unproven "network.$SERVER_NET still exists"
		[ -s "$STATE" ] || { echo "wiring proven: shared, no port to return"; return 0; }
		p=$(cat "$STATE")
		has_word "$ports" "$p" || unproven "$p did not return to the ports of $lan_dev"
		echo "wiring proven: $p is a port of $lan_dev again"
		return 0
	fi
	[ "$current" = "$PORT" ] || unproven "network.$SERVER_NET.device is '${current:-unset}', not $PORT"
	has_word "$ports" "$PORT" && unproven "$PORT is still listed in the ports of $lan_dev"
	bridged "$PORT" && unproven "$PORT is still a member of $lan_dev in the kernel (/sys/class/net/$PORT/master)"
	echo "wiring proven: $PORT left $lan_dev and is the device of $SERVER_NET"
}

case ${1:-stage} in
plan) plan ;;
stage) stage ;;
prove) prove ;;
*) echo "usage: sh sovereign-wire.sh [stage|plan|prove]" >&2; exit 2 ;;
esac
"#;

/// What `sovereign-wire.sh plan` decides, in the router crate's uci model: the batch
/// lines (with `@device[N]`, which is exact within one known config) that move the
/// server's port, or why the script refuses. `verify --rendered` applies them to
/// the stock config; the real-uci tests hold this model to the script.
pub fn wire_lines(d: &Deployment, network: &Package) -> Result<Vec<String>, String> {
    let lan_device = lan_device(network)?;
    if lan_device != d.lan.interface {
        return Err(format!(
            "the LAN bridge is '{lan_device}' (network.lan.device), but sovereign.toml says \
             lan.interface = '{}'",
            d.lan.interface
        ));
    }
    if let Some(have) = router_lan(network) {
        let want = format!("{}/{}", d.lan.router_address, d.lan.subnet.prefix_len());
        if have != want {
            return Err(format!(
                "the router's LAN address is {have} (network.lan), but sovereign.toml has {want}"
            ));
        }
    }
    let (index, bridge) = network
        .sections_of("device")
        .enumerate()
        .find(|(_, s)| s.get_str("name") == Some(lan_device))
        .ok_or_else(|| format!("no config device section is named '{lan_device}'"))?;
    let ports = bridge.get_all("ports");
    let current = network
        .section(SERVER_NETWORK)
        .and_then(|s| s.get_str("device"));
    let port = d.server.router_port.as_str();
    let line =
        |verb: &str, port: &str| format!("{verb} network.@device[{index}].ports={}", quote(port));
    match d.server.isolation {
        Isolation::Shared => Ok(current
            .filter(|p| !ports.contains(p))
            .map(|p| vec![line("add_list", p)])
            .unwrap_or_default()),
        Isolation::DedicatedPort if ports.contains(&port) => Ok(vec![line("del_list", port)]),
        Isolation::DedicatedPort if current == Some(port) => Ok(Vec::new()),
        Isolation::DedicatedPort if network.sections_of("switch").next().is_some() => Err(format!(
            "this router has a swconfig switch (config switch), not DSA ports, so there is no \
                 port '{port}' (the real script also accepts a VLAN device of the server's own)"
        )),
        Isolation::DedicatedPort => Err(format!(
            "'{port}' is not a port of the LAN bridge {lan_device} (its ports: {})",
            ports.join(" ")
        )),
    }
}

/// Why, in this network config, the AI server's port is not a port of its own, or
/// `None` when it is (always `None` in shared isolation, which promises nothing).
/// A port still in a bridge is switched to every other port of it: no firewall
/// rule sees that traffic.
pub fn miswiring(d: &Deployment, network: &Package) -> Option<String> {
    if d.server.isolation == Isolation::Shared {
        return None;
    }
    let port = d.server.router_port.as_str();
    if let Some(bridge) = network
        .sections_of("device")
        .find(|s| s.get_all("ports").contains(&port))
    {
        return Some(format!(
            "the server's port {port} is still a port of bridge {} in /etc/config/network, so it is \
             switched to the LAN and no rule sees that traffic; run sovereign-wire.sh (or router apply)",
            bridge.get_str("name").unwrap_or("(unnamed)")
        ));
    }
    // Any interface on the port will do (a hand-built config may call it `ai`).
    if network
        .sections_of("interface")
        .any(|s| s.get_str("device") == Some(port))
    {
        return None;
    }
    Some(
        match network
            .section(SERVER_NETWORK)
            .and_then(|s| s.get_str("device"))
        {
            Some(device) => format!(
                "network.{SERVER_NETWORK}.device is '{device}', not the server's port {port}"
            ),
            None => format!(
                "/etc/config/network has no interface on the server's port {port}, so the server has \
             no port of its own"
            ),
        },
    )
}

/// The router's LAN address as `ADDRESS/PREFIX` (from `ipaddr`, in CIDR form or
/// with `netmask`), as the script's `router_lan` reads it.
fn router_lan(network: &Package) -> Option<String> {
    let lan = network.section("lan")?;
    let ip = lan.get_str("ipaddr")?.split_whitespace().next()?;
    if ip.contains('/') {
        return Some(ip.to_string());
    }
    let mask: std::net::Ipv4Addr = lan
        .get_str("netmask")
        .unwrap_or("255.255.255.0")
        .parse()
        .ok()?;
    Some(format!("{ip}/{}", u32::from(mask).leading_ones()))
}

fn lan_device(network: &Package) -> Result<&str, String> {
    network
        .section("lan")
        .and_then(|s| s.get_str("device"))
        .ok_or_else(|| "network.lan has no device option, so the LAN bridge cannot be found".into())
}
