//! A person's purchases and message reads, in one boxed slice of `u32`
//! words.
//!
//! Why: both lists are read by every spend, repurchase and retention
//! question, so they stay on the person, but two boxed slices are two fat
//! pointers (32 bytes) in every person slot, and a `Purchase` struct is
//! padded to 16 bytes. One slice is 16 bytes in the slot and a purchase
//! 12 bytes (its time and its amount's two halves); a person with neither
//! list holds no allocation at all.
//!
//! Layout: empty when both lists are; else `[n][ts, lo, hi] × n [read]*`,
//! the purchases sorted by `(ts, amount)` and the reads by time. Growth
//! is exact (one reallocation per insert, often in place): most persons
//! buy or read a few times.

use crate::person::{Purchase, Ts};

/// Purchases then reads, in `u32` words (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists(Box<[u32]>);

/// A run of purchases inside [`Lists`], three words each.
#[derive(Clone, Copy, Debug)]
pub struct Purchases<'a>(&'a [u32]);

fn decode(w: &[u32]) -> Purchase {
    Purchase {
        ts: w[0],
        amount: (u64::from(w[2]) << 32 | u64::from(w[1])) as i64,
    }
}

fn encode(p: Purchase) -> [u32; 3] {
    [p.ts, p.amount as u32, (p.amount as u64 >> 32) as u32]
}

impl<'a> Purchases<'a> {
    pub fn len(&self) -> usize {
        self.0.len() / 3
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<Purchase> {
        self.0.get(3 * i..3 * i + 3).map(decode)
    }

    pub fn first(&self) -> Option<Purchase> {
        self.get(0)
    }

    pub fn last(&self) -> Option<Purchase> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// In order (by time, then amount).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Purchase> + ExactSizeIterator + 'a {
        self.0.chunks_exact(3).map(decode)
    }

    /// The index of the first purchase for which `pred` is false (`pred`
    /// true for a prefix, as with `slice::partition_point`).
    pub fn partition_point(&self, pred: impl Fn(Purchase) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(&pred) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Purchases `lo..hi` (clamped).
    pub fn range(&self, lo: usize, hi: usize) -> Purchases<'a> {
        let hi = hi.min(self.len());
        Purchases(&self.0[3 * lo.min(hi)..3 * hi])
    }
}

impl Lists {
    /// The lists holding `purchases` and `reads` (both sorted).
    pub fn from_parts(purchases: impl ExactSizeIterator<Item = Purchase>, reads: &[Ts]) -> Self {
        let n = purchases.len();
        if n == 0 && reads.is_empty() {
            return Lists::default();
        }
        let mut v = Vec::with_capacity(1 + 3 * n + reads.len());
        v.push(n as u32);
        for p in purchases {
            v.extend_from_slice(&encode(p));
        }
        v.extend_from_slice(reads);
        Lists(v.into_boxed_slice())
    }

    fn purchase_count(&self) -> usize {
        self.0.first().map_or(0, |&n| n as usize)
    }

    pub fn purchases(&self) -> Purchases<'_> {
        let n = self.purchase_count();
        Purchases(self.0.get(1..1 + 3 * n).unwrap_or(&[]))
    }

    /// Message-read times, sorted.
    pub fn reads(&self) -> &[Ts] {
        let n = self.purchase_count();
        self.0.get(1 + 3 * n..).unwrap_or(&[])
    }

    /// The words with room for `more` (and the count word if there was
    /// none yet), taken out of `self`.
    fn take_for(&mut self, more: usize) -> Vec<u32> {
        let mut v = std::mem::take(&mut self.0).into_vec();
        if v.is_empty() {
            v.reserve_exact(1 + more);
            v.push(0);
        } else {
            v.reserve_exact(more);
        }
        v
    }

    /// Adds a purchase in order.
    pub fn insert_purchase(&mut self, x: Purchase) {
        let ps = self.purchases();
        let i = if ps.last().is_none_or(|l| l <= x) {
            ps.len()
        } else {
            ps.partition_point(|y| y <= x)
        };
        let mut v = self.take_for(3);
        let at = 1 + 3 * i;
        v.splice(at..at, encode(x));
        v[0] += 1;
        self.0 = v.into_boxed_slice();
    }

    /// Adds a read time in order.
    pub fn insert_read(&mut self, t: Ts) {
        let start = 1 + 3 * self.purchase_count();
        let mut v = self.take_for(1);
        let reads = &v[start..];
        let i = if reads.last().is_none_or(|&l| l <= t) {
            reads.len()
        } else {
            reads.partition_point(|&y| y <= t)
        };
        v.insert(start + i, t);
        self.0 = v.into_boxed_slice();
    }

    /// Both lists of `self` and `other`, merged in order.
    pub fn merge(&mut self, other: Lists) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            *self = other;
            return;
        }
        let mut purchases: Vec<Purchase> = self.purchases().iter().collect();
        purchases.extend(other.purchases().iter());
        purchases.sort_unstable();
        let mut reads = self.reads().to_vec();
        reads.extend_from_slice(other.reads());
        reads.sort_unstable();
        *self = Lists::from_parts(purchases.into_iter(), &reads);
    }

    /// A read that brings the list's words into the cache (bulk warming).
    pub(crate) fn warm(&self) -> u64 {
        self.0.first().map_or(0, |&n| u64::from(n)) ^ self.0.last().map_or(0, |&w| u64::from(w))
    }

    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[u32]>(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(ts: Ts, amount: i64) -> Purchase {
        Purchase { ts, amount }
    }

    #[test]
    fn purchases_and_reads_keep_their_order_and_values() {
        let mut l = Lists::default();
        assert_eq!(l.heap_bytes(), 0);
        l.insert_read(50);
        l.insert_purchase(p(30, 12_345));
        l.insert_read(10);
        l.insert_purchase(p(10, -7));
        l.insert_purchase(p(30, i64::MAX));
        l.insert_purchase(p(30, i64::MIN));
        l.insert_read(30);
        let got: Vec<Purchase> = l.purchases().iter().collect();
        assert_eq!(
            got,
            vec![p(10, -7), p(30, i64::MIN), p(30, 12_345), p(30, i64::MAX)]
        );
        assert_eq!(l.reads(), &[10, 30, 50]);
        assert_eq!(l.purchases().len(), 4);
        assert_eq!(l.purchases().last(), Some(p(30, i64::MAX)));
        assert_eq!(l.purchases().partition_point(|x| x.ts < 30), 1);
        let tail: Vec<Purchase> = l.purchases().range(1, 3).iter().collect();
        assert_eq!(tail, vec![p(30, i64::MIN), p(30, 12_345)]);
        assert_eq!(l.heap_bytes(), 4 * (1 + 3 * 4 + 3));
    }

    #[test]
    fn merging_is_the_same_as_inserting_everything_into_one() {
        let (mut a, mut b, mut both) = (Lists::default(), Lists::default(), Lists::default());
        for (i, t) in [5u32, 1, 9, 3, 7, 3].into_iter().enumerate() {
            let one = if i % 2 == 0 { &mut a } else { &mut b };
            one.insert_purchase(p(t, i as i64 * 100));
            one.insert_read(t + 1);
            both.insert_purchase(p(t, i as i64 * 100));
            both.insert_read(t + 1);
        }
        a.merge(b);
        assert_eq!(a, both);
        let mut empty = Lists::default();
        empty.merge(a.clone());
        assert_eq!(empty, a);
        a.merge(Lists::default());
        assert_eq!(empty, a);
    }
}
