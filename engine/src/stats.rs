//! Streaming statistics with bounded memory: mean and standard deviation (Welford), min/max, and
//! quantiles from a log-scale histogram (about 2 % relative error), so per-packet samples never
//! have to be stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Buckets per power of two; 32 gives ~2.2 % bucket width.
const BUCKETS_PER_OCTAVE: f64 = 32.0;
/// Smallest value resolved (1 ns when values are in ms); smaller values share bucket 0.
const MIN_RESOLVED: f64 = 1e-6;
const BUCKETS: usize = 2048;

#[derive(Debug, Clone)]
pub struct Distribution {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    buckets: Vec<u32>,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: Vec::new(),
        }
    }
}

/// Summary of a distribution as it appears in reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub stdev: f64,
}

impl Distribution {
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS];
        }
        let b = bucket(v);
        self.buckets[b] = self.buckets[b].saturating_add(1);
    }

    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.mean
        }
    }
    pub fn max(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.max
        }
    }
    pub fn min(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.min
        }
    }
    pub fn stdev(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }

    /// Quantile `q` in [0, 1], clamped to the observed min and max.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return bucket_value(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            min: round6(self.min()),
            max: round6(self.max()),
            mean: round6(self.mean()),
            median: round6(self.quantile(0.5)),
            p95: round6(self.quantile(0.95)),
            p99: round6(self.quantile(0.99)),
            stdev: round6(self.stdev()),
        }
    }

    /// Counts per bucket edge for a chart: (upper edge, count) of the non-empty buckets merged
    /// into at most `bins` groups.
    pub fn histogram(&self, bins: usize) -> Vec<(f64, u64)> {
        let used: Vec<(usize, u32)> = self
            .buckets
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .collect();
        let (Some(&first), Some(&last)) = (used.first(), used.last()) else {
            return Vec::new();
        };
        let span = last.0 - first.0 + 1;
        let per = span.div_ceil(bins.max(1));
        let mut out: Vec<(f64, u64)> = Vec::new();
        for (i, n) in used {
            let group = (i - first.0) / per;
            let edge = bucket_value(first.0 + (group + 1) * per - 1);
            match out.last_mut() {
                Some(last) if last.0 == edge => last.1 += u64::from(n),
                _ => out.push((edge, u64::from(n))),
            }
        }
        out
    }
}

/// `floor(log2(v / MIN_RESOLVED) · 32) + 1`, from the bits of the float: the exponent gives
/// the octave, the mantissa's place among the 32 steps of `2^(k/32)` the bucket within it (a
/// logarithm per sample was most of the cost of adding one).
fn bucket(v: f64) -> usize {
    if v.is_nan() || v <= MIN_RESOLVED {
        return 0;
    }
    let x = v / MIN_RESOLVED;
    let bits = x.to_bits();
    let octave = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = bits & MANTISSA_MASK;
    let steps = &*OCTAVE_STEPS;
    // Each of the 256 slices of the mantissa holds at most one step (steps are > 1/256 apart).
    let mut k = usize::from(steps.by_slice[(mantissa >> 44) as usize]);
    if k + 1 < 32 && mantissa >= steps.starts[k + 1] {
        k += 1;
    }
    let b = octave * BUCKETS_PER_OCTAVE as i64 + k as i64 + 1;
    (b.max(1) as usize).min(BUCKETS - 1)
}

const MANTISSA_MASK: u64 = (1 << 52) - 1;

/// Where each of the 32 buckets of an octave starts, as mantissa bits of `2^(k/32)`, and the
/// first bucket of each 1/256 slice of the mantissa.
struct OctaveSteps {
    starts: [u64; 32],
    by_slice: [u8; 256],
}

static OCTAVE_STEPS: std::sync::LazyLock<OctaveSteps> = std::sync::LazyLock::new(|| {
    let starts: [u64; 32] =
        std::array::from_fn(|k| ((k as f64 / BUCKETS_PER_OCTAVE).exp2().to_bits()) & MANTISSA_MASK);
    let by_slice = std::array::from_fn(|i| {
        let slice_start = (i as u64) << 44;
        starts.iter().rposition(|&s| s <= slice_start).unwrap_or(0) as u8
    });
    OctaveSteps { starts, by_slice }
});

fn bucket_value(b: usize) -> f64 {
    if b == 0 {
        return 0.0;
    }
    // Middle of the bucket.
    MIN_RESOLVED * ((b as f64 - 0.5) / BUCKETS_PER_OCTAVE).exp2()
}

/// Counts distinct 64-bit values (hashes of keys): exactly up to [`DISTINCT_EXACT_LIMIT`]
/// values, at 8 bytes a value and without a random memory access per value (values are
/// buffered, then sorted and merged into a sorted, de-duplicated run); past it, by a
/// HyperLogLog sketch of 16 KiB (standard error 0.8 %), so memory stays bounded whatever the
/// number of flows (3 million one-packet flows held 75 MB here). [`Distinct::is_exact`] says
/// which. The values are already uniform hashes, so the sketch needs no hashing of its own.
#[derive(Debug, Default)]
pub struct Distinct {
    pending: Vec<u64>,
    merged: Vec<u64>,
    sketch: Option<Box<HyperLogLog>>,
}

/// Values buffered before a merge (1 MiB).
const DISTINCT_BUFFER: usize = 1 << 17;
/// Distinct values counted exactly (8 MiB, 16 MiB while merging); the shared captures hold at
/// most a few thousand conversations, far below.
pub const DISTINCT_EXACT_LIMIT: usize = 1 << 20;

impl Distinct {
    pub fn add(&mut self, v: u64) {
        if let Some(sketch) = &mut self.sketch {
            sketch.add(v);
            return;
        }
        self.pending.push(v);
        if self.pending.len() >= DISTINCT_BUFFER.max(self.merged.len() / 4) {
            self.merge();
        }
    }

    fn merge(&mut self) {
        if self.sketch.is_some() {
            return;
        }
        self.pending.sort_unstable();
        self.pending.dedup();
        let mut out = Vec::with_capacity(self.merged.len() + self.pending.len());
        let (mut a, mut b) = (
            self.merged.iter().peekable(),
            self.pending.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(&&x), Some(&&y)) if x > y => b.next(),
                (Some(_), Some(_)) => {
                    b.next();
                    a.next()
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            out.extend(next);
        }
        self.merged = out;
        self.pending.clear();
        if self.merged.len() > DISTINCT_EXACT_LIMIT {
            let mut sketch = Box::<HyperLogLog>::default();
            for &v in &self.merged {
                sketch.add(v);
            }
            self.sketch = Some(sketch);
            self.merged = Vec::new();
            self.pending = Vec::new();
        }
    }

    /// Distinct values added so far (an estimate once past [`DISTINCT_EXACT_LIMIT`]).
    pub fn count(&mut self) -> u64 {
        self.merge();
        match &self.sketch {
            Some(sketch) => sketch.estimate(),
            None => self.merged.len() as u64,
        }
    }

    /// Whether [`Distinct::count`] is exact.
    pub fn is_exact(&self) -> bool {
        self.sketch.is_none()
    }
}

/// Registers of the sketch: 2^14, one byte each.
const HLL_BITS: u32 = 14;

/// Flajolet et al.'s HyperLogLog over values that are already uniform 64-bit hashes, with the
/// linear-counting correction for small counts.
#[derive(Debug)]
struct HyperLogLog {
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog {
            registers: vec![0; 1 << HLL_BITS],
        }
    }
}

impl HyperLogLog {
    fn add(&mut self, v: u64) {
        let index = (v >> (64 - HLL_BITS)) as usize;
        // The rank of the first 1 in the remaining bits (a guard bit caps it).
        let rest = (v << HLL_BITS) | (1 << (HLL_BITS - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let r = &mut self.registers[index];
        *r = (*r).max(rank);
    }

    fn estimate(&self) -> u64 {
        let m = self.registers.len() as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

/// The `n` first items in an order, gathered in bounded memory from a stream of any length:
/// items pile up and are cut to the first `n` when there are `4n`; after a cut, an item that
/// does not come before the `n`-th kept one is dropped at once (most are, on long captures).
pub struct Top<T> {
    n: usize,
    items: Vec<T>,
    /// `items[n - 1]` is the `n`-th of the last cut (the items after it came later).
    full: bool,
    order: fn(&T, &T) -> std::cmp::Ordering,
}

impl<T> Top<T> {
    pub fn new(n: usize, order: fn(&T, &T) -> std::cmp::Ordering) -> Self {
        Top {
            n,
            items: Vec::new(),
            full: false,
            order,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.full && (self.order)(&item, &self.items[self.n - 1]) != std::cmp::Ordering::Less {
            return;
        }
        self.items.push(item);
        if self.items.len() >= 4 * self.n.max(1) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        self.items.sort_by(self.order);
        self.items.truncate(self.n);
        self.full = self.n > 0 && self.items.len() == self.n;
    }

    /// The first `n` items, in order.
    pub fn into_sorted(mut self) -> Vec<T> {
        self.cut();
        self.items
    }

    /// The first `n` items, in order, leaving this empty.
    pub fn take_sorted(&mut self) -> Vec<T> {
        self.cut();
        self.full = false;
        std::mem::take(&mut self.items)
    }
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Adds one to the count of `key`, allocating the key only the first time it is counted (the
/// analyses count labels once per flow or handshake).
pub fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_exact_limit_distinct_estimates_within_two_percent_in_bounded_memory() {
        use std::hash::BuildHasher;
        let hasher = foldhash::quality::FixedState::with_seed(1);
        let mut d = Distinct::default();
        let n = 3 * DISTINCT_EXACT_LIMIT as u64;
        for i in 0..n {
            d.add(hasher.hash_one(i));
            d.add(hasher.hash_one(i / 2)); // repeats count once
        }
        assert!(!d.is_exact());
        assert!(d.merged.capacity() + d.pending.capacity() < DISTINCT_BUFFER);
        let estimate = d.count() as f64;
        let error = (estimate - n as f64).abs() / n as f64;
        assert!(error < 0.02, "{estimate} for {n}: {error}");
        // Below the limit the count stays exact.
        let mut small = Distinct::default();
        for i in 0..1000u64 {
            small.add(hasher.hash_one(i % 700));
        }
        assert_eq!((small.count(), small.is_exact()), (700, true));
    }

    #[test]
    fn distinct_counts_each_value_once_across_merges() {
        let mut x = 7u64;
        let mut all: Vec<u64> = Vec::new();
        for i in 0..(3 * DISTINCT_BUFFER as u64) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            all.push(x % 200_000);
            all.push(i % 1000);
        }
        let mut d = Distinct::default();
        for &v in &all {
            d.add(v);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(d.count(), all.len() as u64);
        d.add(all[0]);
        assert_eq!(d.count(), all.len() as u64, "a value already counted");
    }

    #[test]
    fn top_keeps_the_first_n_of_a_long_stream_in_order() {
        let mut top = Top::new(5, |a: &(u64, u64), b: &(u64, u64)| {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1))
        });
        let mut all = Vec::new();
        let mut x = 3u64;
        for i in 0..10_000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let item = ((x >> 33) % 500, i);
            all.push(item);
            top.push(item);
        }
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        all.truncate(5);
        assert_eq!(top.into_sorted(), all);
    }

    #[test]
    fn buckets_from_the_float_bits_are_those_of_the_logarithm() {
        let by_log = |v: f64| -> usize {
            if v <= MIN_RESOLVED {
                return 0;
            }
            let b = ((v / MIN_RESOLVED).log2() * BUCKETS_PER_OCTAVE) as usize + 1;
            b.min(BUCKETS - 1)
        };
        let mut x = 11u64;
        let mut differ = 0;
        for _ in 0..200_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Values from 1e-9 to 1e9, evenly spread in logarithm.
            let v = 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 18.0 - 9.0);
            let (a, b) = (bucket(v), by_log(v));
            // The two may only part on a bucket's edge, where the logarithm rounds.
            assert!(a.abs_diff(b) <= 1, "{v}: {a} against {b}");
            differ += usize::from(a != b);
        }
        assert!(differ < 20, "{differ} values in another bucket");
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        assert_eq!(bucket(f64::INFINITY), BUCKETS - 1);
        assert_eq!(bucket(2.0 * MIN_RESOLVED), 33);
    }

    #[test]
    fn mean_stdev_and_median_of_a_small_set() {
        let mut d = Distribution::default();
        for v in [1.0, 2.0, 3.0, 4.0, 100.0] {
            d.add(v);
        }
        assert_eq!(d.mean(), 22.0);
        assert!((d.quantile(0.5) - 3.0).abs() < 0.1);
        assert_eq!(d.max(), 100.0);
        assert!((d.stdev() - 43.617).abs() < 0.01);
    }
}
