//! Order statistics and the bootstrap, for sets of runs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The nearest-rank percentile `p` (0–100) of `values`: the smallest value
/// with at least `p` % of the values at or below it (for 10 runs, p95 is the
/// largest). `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of `values`: the mean of the two middle values for an even
/// count. `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// A distribution of durations in milliseconds: count, minimum, median, p95,
/// maximum and mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// How many values.
    pub n: usize,
    /// The smallest.
    pub min_ms: f64,
    /// The median ([`median`]).
    pub p50_ms: f64,
    /// The nearest-rank 95th percentile ([`percentile`]).
    pub p95_ms: f64,
    /// The largest.
    pub max_ms: f64,
    /// The arithmetic mean.
    pub mean_ms: f64,
}

impl Distribution {
    /// The distribution of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        Some(Distribution {
            n: finite.len(),
            min_ms: percentile(&finite, 0.0)?,
            p50_ms: median(&finite)?,
            p95_ms: percentile(&finite, 95.0)?,
            max_ms: percentile(&finite, 100.0)?,
            mean_ms: finite.iter().sum::<f64>() / finite.len() as f64,
        })
    }
}

/// A percentile-bootstrap confidence interval of `median(b) - median(a)`:
/// `resamples` times, both samples are redrawn with replacement and the
/// difference of their medians kept; the interval is the central `level`
/// (e.g. 0.95) of those differences. Deterministic for a given `seed`.
/// `None` when either sample is empty.
pub fn bootstrap_median_difference(
    a: &[f64],
    b: &[f64],
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut scratch_a = vec![0.0; a.len()];
    let mut scratch_b = vec![0.0; b.len()];
    let mut diffs = Vec::with_capacity(resamples.max(1));
    for _ in 0..resamples.max(1) {
        for x in scratch_a.iter_mut() {
            *x = a[rng.random_range(0..a.len())];
        }
        for x in scratch_b.iter_mut() {
            *x = b[rng.random_range(0..b.len())];
        }
        diffs.push(median(&scratch_b)? - median(&scratch_a)?);
    }
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0 * 100.0;
    Some((percentile(&diffs, tail)?, percentile(&diffs, 100.0 - tail)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 100.0), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        // Ten runs: p95 is the worst one.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 95.0), Some(10.0));
        assert_eq!(percentile(&[], 95.0), None);
        assert_eq!(percentile(&[f64::NAN, 3.0], 50.0), Some(3.0));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn distribution_of_a_known_set() {
        let d = Distribution::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("values");
        assert_eq!(
            (d.n, d.min_ms, d.p50_ms, d.p95_ms, d.max_ms),
            (5, 1.0, 3.0, 5.0, 5.0)
        );
        assert_eq!(d.mean_ms, 3.0);
        assert!(Distribution::of(&[]).is_none());
    }

    #[test]
    fn bootstrap_separates_shifted_samples_and_not_identical_ones() {
        // B is A shifted by +1000 ms with a little noise: the interval holds
        // the shift and excludes zero.
        let a: Vec<f64> = (0..10).map(|i| 5000.0 + f64::from(i * 37 % 200)).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 1000.0).collect();
        let (lo, hi) = bootstrap_median_difference(&a, &b, 0.95, 2000, 7).expect("ci");
        assert!(lo > 0.0 && lo <= 1000.0 && hi >= 1000.0, "{lo}..{hi}");
        // The same sample twice: the interval holds zero.
        let (lo, hi) = bootstrap_median_difference(&a, &a, 0.95, 2000, 7).expect("ci");
        assert!(lo <= 0.0 && hi >= 0.0, "{lo}..{hi}");
        // Deterministic for a seed.
        assert_eq!(
            bootstrap_median_difference(&a, &b, 0.95, 500, 1),
            bootstrap_median_difference(&a, &b, 0.95, 500, 1)
        );
        assert!(bootstrap_median_difference(&[], &b, 0.95, 10, 1).is_none());
    }
}
