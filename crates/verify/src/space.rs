//! Packet spaces: a packet is a point in a product of integer dimensions; a packet
//! *class* is a box (one interval set per dimension). Rule matches compile to unions of
//! boxes, so evaluating a rule splits a box into the part it matches and the rest,
//! exactly, without sampling.

use crate::interval::IntervalSet;

/// One packet dimension. Values are plain integers: addresses as `u128` (IPv4 in the low
/// 32 bits), interface names as indices into the [`Universe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// `meta nfproto`: 2 = ipv4, 10 = ipv6.
    Family,
    Saddr,
    Daddr,
    L4proto,
    Sport,
    Dport,
    IcmpType,
    IcmpCode,
    Iif,
    Oif,
    /// Conntrack state bit: 1 invalid, 2 established, 4 related, 8 new, 64 untracked.
    CtState,
    /// 1 once a dnat rewrote this flow (`ct status dnat`).
    CtDnat,
    Mark,
    CtMark,
    TcpFlags,
}

pub const NDIMS: usize = 15;

impl Dim {
    pub const ALL: [Dim; NDIMS] = [
        Dim::Family,
        Dim::Saddr,
        Dim::Daddr,
        Dim::L4proto,
        Dim::Sport,
        Dim::Dport,
        Dim::IcmpType,
        Dim::IcmpCode,
        Dim::Iif,
        Dim::Oif,
        Dim::CtState,
        Dim::CtDnat,
        Dim::Mark,
        Dim::CtMark,
        Dim::TcpFlags,
    ];

    pub fn max(self) -> u128 {
        match self {
            Dim::Saddr | Dim::Daddr => u128::MAX,
            Dim::Sport | Dim::Dport | Dim::Iif | Dim::Oif => u16::MAX as u128,
            Dim::Mark | Dim::CtMark => u32::MAX as u128,
            Dim::CtDnat => 1,
            Dim::Family
            | Dim::L4proto
            | Dim::IcmpType
            | Dim::IcmpCode
            | Dim::CtState
            | Dim::TcpFlags => u8::MAX as u128,
        }
    }

    pub fn full(self) -> IntervalSet {
        IntervalSet::range(0, self.max())
    }

    pub fn name(self) -> &'static str {
        match self {
            Dim::Family => "nfproto",
            Dim::Saddr => "saddr",
            Dim::Daddr => "daddr",
            Dim::L4proto => "l4proto",
            Dim::Sport => "sport",
            Dim::Dport => "dport",
            Dim::IcmpType => "icmp type",
            Dim::IcmpCode => "icmp code",
            Dim::Iif => "iif",
            Dim::Oif => "oif",
            Dim::CtState => "ct state",
            Dim::CtDnat => "ct status dnat",
            Dim::Mark => "meta mark",
            Dim::CtMark => "ct mark",
            Dim::TcpFlags => "tcp flags",
        }
    }
}

pub const NFPROTO_IPV4: u128 = 2;
pub const NFPROTO_IPV6: u128 = 10;
pub const PROTO_ICMP: u128 = 1;
pub const PROTO_TCP: u128 = 6;
pub const PROTO_UDP: u128 = 17;
pub const PROTO_ICMPV6: u128 = 58;
pub const CT_INVALID: u128 = 1;
pub const CT_ESTABLISHED: u128 = 2;
pub const CT_RELATED: u128 = 4;
pub const CT_NEW: u128 = 8;
pub const CT_UNTRACKED: u128 = 64;
pub const TCP_SYN: u128 = 0x02;

/// Interface names the evaluator distinguishes. Index 0 is "no interface" (an input
/// packet has no output interface), the last is "any other interface".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    names: Vec<String>,
}

pub const NO_INTERFACE: u128 = 0;

impl Universe {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut all = vec![String::new(), "lo".to_string()];
        for name in names {
            if !all.contains(&name) {
                all.push(name);
            }
        }
        all.push("<other>".to_string());
        Self { names: all }
    }

    pub fn index(&self, name: &str) -> Option<u128> {
        self.names.iter().position(|n| n == name).map(|i| i as u128)
    }

    pub fn name(&self, index: u128) -> &str {
        self.names.get(index as usize).map_or("?", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The indices whose name matches an nft interface-name pattern: a trailing `*` is
    /// a wildcard (`lan*`), `\*` a literal star. "No interface" matches only `""`.
    pub fn matching(&self, pattern: &str) -> IntervalSet {
        let (prefix, wildcard) = match pattern.strip_suffix('*') {
            Some(p) if !p.ends_with('\\') => (p.to_string(), true),
            _ => (pattern.replace("\\*", "*"), false),
        };
        IntervalSet::from_points(self.names.iter().enumerate().filter_map(|(i, name)| {
            let last = i + 1 == self.names.len();
            // "<other>" stands for names we never see; it matches no concrete pattern.
            let hit = !last
                && if wildcard {
                    i != 0 && name.starts_with(&prefix)
                } else {
                    *name == prefix
                };
            hit.then_some(i as u128)
        }))
    }
}

/// A packet class: one interval set per dimension, plus the pre-NAT destination so
/// witnesses show what the sender actually sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketBox {
    /// Boxed: classes move through work lists far more often than they are cloned.
    pub dims: Box<[IntervalSet; NDIMS]>,
    pub pre_nat: Option<PreNat>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreNat {
    /// `None` when the dnat kept the address.
    pub daddr: Option<IntervalSet>,
    /// `None` when the dnat kept the port.
    pub dport: Option<IntervalSet>,
}

impl PacketBox {
    /// Every packet of every kind.
    pub fn universe() -> Self {
        Self {
            dims: Box::new(Dim::ALL.map(Dim::full)),
            pre_nat: None,
        }
    }

    pub fn get(&self, dim: Dim) -> &IntervalSet {
        &self.dims[dim as usize]
    }

    pub fn set(&mut self, dim: Dim, values: IntervalSet) {
        self.dims[dim as usize] = values;
    }

    pub fn with(mut self, dim: Dim, values: IntervalSet) -> Self {
        self.set(dim, values);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.dims.iter().any(IntervalSet::is_empty)
    }

    pub fn contains(&self, p: &Packet) -> bool {
        Dim::ALL.iter().all(|&d| self.get(d).contains(p.get(d)))
    }

    /// A concrete packet of the class, preferring readable values (TCP over other
    /// protocols, ports above 0, ephemeral source ports).
    pub fn witness(&self) -> Packet {
        let mut values = [0u128; NDIMS];
        for dim in Dim::ALL {
            let set = self.get(dim);
            let prefer: &[u128] = match dim {
                Dim::L4proto => &[PROTO_TCP, PROTO_UDP],
                Dim::Sport => &[40000, 1024],
                Dim::Dport => &[1, 1024],
                Dim::Saddr | Dim::Daddr => &[],
                _ => &[],
            };
            if matches!(dim, Dim::Saddr | Dim::Daddr) {
                values[dim as usize] =
                    readable_address(set, self.get(Dim::Family).contains(NFPROTO_IPV6));
                continue;
            }
            let chosen = prefer
                .iter()
                .copied()
                .find(|&v| set.contains(v))
                .or_else(|| {
                    // the lowest member at or above a preferred floor, else the lowest.
                    prefer.iter().find_map(|&floor| {
                        set.ranges()
                            .iter()
                            .find(|(_, hi)| *hi >= floor)
                            .map(|(lo, _)| (*lo).max(floor))
                    })
                })
                .or_else(|| set.first())
                .unwrap_or(0);
            values[dim as usize] = chosen;
        }
        let mut packet = Packet {
            values,
            pre_nat: None,
        };
        if let Some(pre) = &self.pre_nat {
            let daddr = pre
                .daddr
                .as_ref()
                .and_then(IntervalSet::first)
                .unwrap_or(packet.get(Dim::Daddr));
            let dport = pre
                .dport
                .as_ref()
                .and_then(IntervalSet::first)
                .unwrap_or(packet.get(Dim::Dport));
            packet.pre_nat = Some((daddr, dport));
        }
        packet
    }
}

/// An address of the set that reads well: not a network or broadcast-looking address,
/// and for IPv6 a documentation address when the set allows it.
fn readable_address(set: &IntervalSet, v6: bool) -> u128 {
    let doc: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    if v6 && set.contains(doc) {
        return doc;
    }
    for &(lo, hi) in set.ranges() {
        let last = hi.min(lo.saturating_add(3));
        if let Some(v) = (lo..=last).find(|v| !matches!(v & 0xff, 0 | 255)) {
            return v;
        }
    }
    set.first().unwrap_or(0)
}

/// One concrete packet (the first packet of a flow, unless `ct state` says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub values: [u128; NDIMS],
    /// The destination address and port before a dnat rewrote them.
    pub pre_nat: Option<(u128, u128)>,
}

impl Packet {
    pub fn get(&self, dim: Dim) -> u128 {
        self.values[dim as usize]
    }

    pub fn set(&mut self, dim: Dim, v: u128) {
        self.values[dim as usize] = v;
    }

    pub fn is_ipv6(&self) -> bool {
        self.get(Dim::Family) == NFPROTO_IPV6
    }
}

/// A conjunction of per-dimension constraints (unmentioned dimensions are free).
pub type Conj = Vec<(Dim, IntervalSet)>;

/// A match condition in disjunctive normal form: the union of its boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub any_of: Vec<Conj>,
}

impl Cond {
    pub fn never() -> Self {
        Self { any_of: Vec::new() }
    }

    pub fn always() -> Self {
        Self {
            any_of: vec![Vec::new()],
        }
    }

    pub fn dim(dim: Dim, values: IntervalSet) -> Self {
        Self {
            any_of: vec![vec![(dim, values)]],
        }
    }

    /// Conjunction: the cross product of both unions.
    pub fn and(&self, other: &Cond) -> Cond {
        let mut any_of = Vec::new();
        for a in &self.any_of {
            for b in &other.any_of {
                let mut conj = a.clone();
                conj.extend(b.iter().cloned());
                any_of.push(conj);
            }
        }
        Cond { any_of }
    }

    pub fn or(mut self, other: Cond) -> Cond {
        self.any_of.extend(other.any_of);
        self
    }

    pub fn contains(&self, p: &Packet) -> bool {
        self.any_of
            .iter()
            .any(|conj| conj.iter().all(|(d, set)| set.contains(p.get(*d))))
    }

    /// Whether every packet of the box satisfies the condition (cheap, no allocation).
    pub fn covers(&self, b: &PacketBox) -> bool {
        self.any_of
            .iter()
            .any(|conj| conj.iter().all(|(d, set)| b.get(*d).is_subset_fast(set)))
    }

    /// Whether no packet of the box can satisfy the condition (cheap, no allocation).
    pub fn misses(&self, b: &PacketBox) -> bool {
        self.any_of
            .iter()
            .all(|conj| conj.iter().any(|(d, set)| !b.get(*d).intersects(set)))
    }

    /// Split a box into the parts inside and outside this condition (both exact and
    /// made of disjoint boxes).
    pub fn split(&self, b: PacketBox) -> (Vec<PacketBox>, Vec<PacketBox>) {
        if self.misses(&b) {
            return (Vec::new(), vec![b]);
        }
        let mut matched = Vec::new();
        let mut rest = vec![b];
        for conj in &self.any_of {
            let mut next = Vec::new();
            for r in rest {
                split_conj(r, conj, &mut matched, &mut next);
            }
            rest = next;
            if rest.is_empty() {
                break;
            }
        }
        (matched, rest)
    }
}

fn split_conj(b: PacketBox, conj: &Conj, matched: &mut Vec<PacketBox>, rest: &mut Vec<PacketBox>) {
    // Fold repeated dimensions first, so "in" and "out" stay disjoint.
    let mut wanted: Vec<(Dim, IntervalSet)> = Vec::with_capacity(conj.len());
    for (dim, set) in conj {
        match wanted.iter_mut().find(|(d, _)| d == dim) {
            Some((_, existing)) => *existing = existing.intersect(set),
            None => wanted.push((*dim, set.clone())),
        }
    }
    if wanted.iter().any(|(d, set)| !b.get(*d).intersects(set)) {
        rest.push(b);
        return;
    }
    let mut inside = b;
    for (dim, set) in &wanted {
        let outside = inside.get(*dim).subtract(set);
        if !outside.is_empty() {
            rest.push(inside.clone().with(*dim, outside));
        }
        let narrowed = inside.get(*dim).intersect(set);
        inside.set(*dim, narrowed);
    }
    matched.push(inside);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_interface_patterns_match_prefixes_only() {
        let u = Universe::new(["wan", "lan-ai", "lan-dev", "wg0"].map(String::from));
        let lan = u.matching("lan*");
        assert!(lan.contains(u.index("lan-ai").unwrap()));
        assert!(lan.contains(u.index("lan-dev").unwrap()));
        assert!(!lan.contains(u.index("wan").unwrap()));
        assert!(!lan.contains(NO_INTERFACE));
        assert!(u.matching("wg0").contains(u.index("wg0").unwrap()));
        assert!(u.matching("nothere").is_empty());
        assert!(u.matching("").contains(NO_INTERFACE));
    }

    #[test]
    fn split_is_an_exact_partition() {
        let b = PacketBox::universe()
            .with(Dim::Dport, IntervalSet::range(0, 100))
            .with(Dim::L4proto, IntervalSet::from_points([6, 17]));
        let cond = Cond::dim(Dim::L4proto, IntervalSet::point(6))
            .and(&Cond::dim(Dim::Dport, IntervalSet::point(22)));
        let (inside, outside) = cond.split(b);
        assert_eq!(inside.len(), 1);
        assert_eq!(inside[0].get(Dim::Dport), &IntervalSet::point(22));
        let total: u128 = inside
            .iter()
            .chain(&outside)
            .map(|b| b.get(Dim::Dport).count() * b.get(Dim::L4proto).count())
            .sum();
        assert_eq!(total, 202);
    }
}
