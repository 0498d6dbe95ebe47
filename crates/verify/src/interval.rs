//! Sets of integers as sorted, disjoint, non-adjacent inclusive intervals. Every packet
//! dimension (addresses, ports, protocol numbers, interface indices...) is one of these.

use std::fmt;

/// A normalised union of inclusive intervals over `u128`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct IntervalSet {
    ranges: Vec<(u128, u128)>,
}

impl IntervalSet {
    pub fn empty() -> Self {
        Self { ranges: Vec::new() }
    }

    pub fn point(v: u128) -> Self {
        Self {
            ranges: vec![(v, v)],
        }
    }

    /// `lo..=hi`; empty when `lo > hi`.
    pub fn range(lo: u128, hi: u128) -> Self {
        if lo > hi {
            return Self::empty();
        }
        Self {
            ranges: vec![(lo, hi)],
        }
    }

    pub fn from_ranges(ranges: impl IntoIterator<Item = (u128, u128)>) -> Self {
        let mut ranges: Vec<(u128, u128)> =
            ranges.into_iter().filter(|(lo, hi)| lo <= hi).collect();
        ranges.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            if let Some(last) = out.last_mut()
                && (lo <= last.1 || lo == last.1.saturating_add(1))
            {
                last.1 = last.1.max(hi);
                continue;
            }
            out.push((lo, hi));
        }
        Self { ranges: out }
    }

    pub fn from_points(points: impl IntoIterator<Item = u128>) -> Self {
        Self::from_ranges(points.into_iter().map(|p| (p, p)))
    }

    pub fn ranges(&self) -> &[(u128, u128)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, v: u128) -> bool {
        let idx = self.ranges.partition_point(|(_, hi)| *hi < v);
        self.ranges.get(idx).is_some_and(|(lo, _)| *lo <= v)
    }

    pub fn first(&self) -> Option<u128> {
        self.ranges.first().map(|(lo, _)| *lo)
    }

    /// Number of members, saturating at `u128::MAX`.
    pub fn count(&self) -> u128 {
        self.ranges.iter().fold(0u128, |acc, (lo, hi)| {
            acc.saturating_add((hi - lo).saturating_add(1))
        })
    }

    /// Members in ascending order (callers bound the size first).
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.ranges.iter().flat_map(|&(lo, hi)| {
            let mut next = Some(lo);
            std::iter::from_fn(move || {
                let v = next?;
                next = if v < hi { Some(v + 1) } else { None };
                Some(v)
            })
        })
    }

    pub fn intersects(&self, other: &Self) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            if a.1 < b.0 {
                i += 1;
            } else if b.1 < a.0 {
                j += 1;
            } else {
                return true;
            }
        }
        false
    }

    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (a, b) = (self.ranges[i], other.ranges[j]);
            let lo = a.0.max(b.0);
            let hi = a.1.min(b.1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Self { ranges: out }
    }

    pub fn union(&self, other: &Self) -> Self {
        Self::from_ranges(self.ranges.iter().chain(&other.ranges).copied())
    }

    /// `self \ other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            let mut cur = lo;
            let mut done = false;
            while j < other.ranges.len() && other.ranges[j].1 < cur {
                j += 1;
            }
            let mut k = j;
            while k < other.ranges.len() && other.ranges[k].0 <= hi {
                let (olo, ohi) = other.ranges[k];
                if olo > cur {
                    out.push((cur, olo - 1));
                }
                if ohi >= hi {
                    done = true;
                    break;
                }
                cur = ohi + 1;
                k += 1;
            }
            if !done {
                out.push((cur, hi));
            }
        }
        Self { ranges: out }
    }

    /// Subset test without allocating.
    pub fn is_subset_fast(&self, other: &Self) -> bool {
        let mut j = 0;
        for &(lo, hi) in &self.ranges {
            while j < other.ranges.len() && other.ranges[j].1 < lo {
                j += 1;
            }
            match other.ranges.get(j) {
                Some(&(olo, ohi)) if olo <= lo && hi <= ohi => {}
                _ => return false,
            }
        }
        true
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.subtract(other).is_empty()
    }

    /// `0..=max \ self`.
    pub fn complement(&self, max: u128) -> Self {
        Self::range(0, max).subtract(self)
    }
}

impl fmt::Debug for IntervalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small_set() -> impl Strategy<Value = IntervalSet> {
        proptest::collection::vec((0u128..40, 0u128..6), 0..5)
            .prop_map(|v| IntervalSet::from_ranges(v.into_iter().map(|(lo, len)| (lo, lo + len))))
    }

    proptest! {
        #[test]
        fn set_algebra_agrees_with_membership(a in small_set(), b in small_set(), x in 0u128..50) {
            prop_assert_eq!(a.intersect(&b).contains(x), a.contains(x) && b.contains(x));
            prop_assert_eq!(a.union(&b).contains(x), a.contains(x) || b.contains(x));
            prop_assert_eq!(a.subtract(&b).contains(x), a.contains(x) && !b.contains(x));
            prop_assert_eq!(a.complement(60).contains(x), !a.contains(x));
            prop_assert_eq!(a.intersects(&b), !a.intersect(&b).is_empty());
            prop_assert_eq!(a.iter().count() as u128, a.count());
        }
    }

    #[test]
    fn normalises_adjacent_and_overlapping_ranges() {
        let s = IntervalSet::from_ranges([(5, 7), (1, 2), (3, 4), (10, 12), (11, 20)]);
        assert_eq!(s.ranges(), &[(1, 7), (10, 20)]);
        let full = IntervalSet::range(0, u128::MAX);
        assert_eq!(
            full.subtract(&IntervalSet::point(u128::MAX)).ranges(),
            &[(0, u128::MAX - 1)]
        );
        assert_eq!(full.count(), u128::MAX);
    }
}
