//! A growable array kept in fixed chunks of at most 1 MiB: growing adds a
//! chunk and never moves what is already there.
//!
//! Why: the engine's big arrays (the person slots, the log index) grow
//! under the writer. A `Vec` that doubles copies all of itself into fresh
//! pages at once: at 1M persons that is 76 MB, measured at 171 ms on this
//! project's 2-core VM (where the first touch of a page the guest never
//! used is slow), a writer pause that grows with the engine. In chunks,
//! growing costs one chunk's pages at a time, and indexing one more load
//! (the chunk table, a few hundred bytes that stay in cache).

use std::ops::{Index, IndexMut};

/// Chunk size in bytes (at most; elements per chunk are a power of two).
const CHUNK_BYTES: usize = 1 << 20;

/// See the module docs. Indexing out of bounds panics, as a `Vec`'s does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunked<T> {
    /// Every chunk but the last is full; each has capacity [`Self::PER`].
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    /// Elements per chunk: the largest power of two whose chunk fits in
    /// [`CHUNK_BYTES`] (at least 1).
    pub const PER: usize = {
        let size = if std::mem::size_of::<T>() == 0 {
            1
        } else {
            std::mem::size_of::<T>()
        };
        let most = CHUNK_BYTES / size;
        if most == 0 {
            1
        } else {
            1 << (usize::BITS - 1 - most.leading_zeros())
        }
    };
    const SHIFT: u32 = Self::PER.trailing_zeros();
    const MASK: usize = Self::PER - 1;

    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn push(&mut self, value: T) {
        if self.len == self.chunks.len() << Self::SHIFT {
            self.chunks.push(Vec::with_capacity(Self::PER));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(value);
            self.len += 1;
        }
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i >> Self::SHIFT)?.get(i & Self::MASK)
    }

    /// The elements in order, one chunk's slice at a time.
    pub fn slices(&self) -> impl Iterator<Item = &[T]> + Clone + '_ {
        self.chunks.iter().map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + Clone + '_ {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut T> + '_ {
        self.chunks.iter_mut().flatten()
    }

    /// Elements `lo..hi` in order (as `v[lo..hi].iter()`; panics if out of
    /// bounds).
    pub fn range(&self, lo: usize, hi: usize) -> impl Iterator<Item = &T> + '_ {
        assert!(
            lo <= hi && hi <= self.len,
            "range {lo}..{hi} of {}",
            self.len
        );
        self.chunks
            .iter()
            .enumerate()
            .skip(lo >> Self::SHIFT)
            .take_while(move |(c, _)| c << Self::SHIFT < hi)
            .flat_map(move |(c, chunk)| {
                let base = c << Self::SHIFT;
                let from = lo.saturating_sub(base);
                let to = (hi - base).min(chunk.len());
                &chunk[from..to]
            })
    }

    /// Swaps two elements (panics if either is out of bounds).
    pub fn swap(&mut self, a: usize, b: usize) {
        let (ca, cb) = (a >> Self::SHIFT, b >> Self::SHIFT);
        let (ia, ib) = (a & Self::MASK, b & Self::MASK);
        if ca == cb {
            self.chunks[ca].swap(ia, ib);
            return;
        }
        let (lo, hi, ilo, ihi) = if ca < cb {
            (ca, cb, ia, ib)
        } else {
            (cb, ca, ib, ia)
        };
        let (left, right) = self.chunks.split_at_mut(hi);
        std::mem::swap(&mut left[lo][ilo], &mut right[0][ihi]);
    }

    /// Keeps the elements `keep` says yes to, in order (in place).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            if keep(&self[i]) {
                if kept != i {
                    self.swap(kept, i);
                }
                kept += 1;
            }
        }
        self.truncate(kept);
    }

    /// Drops the elements from `len` on, and the chunks left empty.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let chunks = len.div_ceil(Self::PER);
        self.chunks.truncate(chunks);
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(len - ((chunks - 1) << Self::SHIFT));
        }
        self.len = len;
    }

    /// Elements the allocated chunks hold.
    pub fn capacity(&self) -> usize {
        self.chunks.len() << Self::SHIFT
    }

    /// Heap bytes: the chunks and the chunk table.
    pub fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
    }
}

impl<T: Clone> Chunked<T> {
    /// Grows to `len` elements, the new ones `value` (never shrinks).
    pub fn grow_to(&mut self, len: usize, value: T) {
        while self.len < len {
            self.push(value.clone());
        }
    }
}

impl<T> From<Vec<T>> for Chunked<T> {
    fn from(v: Vec<T>) -> Self {
        v.into_iter().collect()
    }
}

impl<T> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = Chunked::new();
        for v in iter {
            out.push(v);
        }
        out
    }
}

impl<'a, T> IntoIterator for &'a Chunked<T> {
    type Item = &'a T;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<T>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.iter().flatten()
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;
    #[inline]
    fn index(&self, i: usize) -> &T {
        &self.chunks[i >> Self::SHIFT][i & Self::MASK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i >> Self::SHIFT][i & Self::MASK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small element type whose chunks hold few elements, so the tests
    /// cross many chunk boundaries.
    type Big = [u64; 16 * 1024];

    #[test]
    fn elements_per_chunk_are_a_power_of_two_within_a_mebibyte() {
        assert_eq!(Chunked::<u32>::PER, 1 << 18);
        assert_eq!(Chunked::<[u8; 72]>::PER, 8192);
        assert_eq!(Chunked::<Big>::PER, 8);
        assert_eq!(Chunked::<[u8; 2 << 20]>::PER, 1);
    }

    #[test]
    fn it_behaves_like_a_vec_across_chunks() {
        let n = 3 * Chunked::<u32>::PER + 17;
        let mut c = Chunked::new();
        let mut v = Vec::new();
        for i in 0..n as u32 {
            c.push(i.wrapping_mul(2_654_435_761));
            v.push(i.wrapping_mul(2_654_435_761));
        }
        assert_eq!(c.len(), v.len());
        assert!(c.iter().eq(v.iter()));
        assert!(c.iter().rev().eq(v.iter().rev()));
        assert_eq!(c.slices().count(), 4);
        for &(lo, hi) in &[
            (0, 0),
            (0, n),
            (5, 1 << 18),
            ((1 << 18) - 1, (1 << 19) + 3),
            (n - 1, n),
        ] {
            assert!(c.range(lo, hi).eq(v[lo..hi].iter()), "{lo}..{hi}");
        }
        for &(a, b) in &[(0, n - 1), (3, 4), ((1 << 18) + 1, 7)] {
            c.swap(a, b);
            v.swap(a, b);
        }
        assert!(c.iter().eq(v.iter()));
        c.retain(|x| x % 3 != 0);
        v.retain(|x| x % 3 != 0);
        assert!(c.iter().eq(v.iter()));
        assert_eq!((c.len(), c.get(v.len())), (v.len(), None));
        assert_eq!(c[v.len() - 1], v[v.len() - 1]);
        c.truncate(1 << 18);
        assert_eq!(
            (c.len(), c.capacity(), c.get((1 << 18) - 1)),
            (1 << 18, 1 << 18, v.get((1 << 18) - 1))
        );
        c.grow_to((1 << 18) + 2, 9);
        assert_eq!((c[1 << 18], c.capacity()), (9, 1 << 19));
    }

    #[test]
    fn growing_never_moves_an_element() {
        let mut c: Chunked<Big> = Chunked::new();
        c.push([1; 16 * 1024]);
        let first = &c[0] as *const Big;
        for _ in 0..100 {
            c.push([2; 16 * 1024]);
        }
        assert_eq!(first, &c[0] as *const Big);
        assert_eq!(c.capacity(), 104);
    }
}
