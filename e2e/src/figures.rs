//! Summaries of benchmark samples, as the benchmarks print them.

/// The median, the 95th percentile (nearest rank) and the maximum of `samples`; `None` when
/// there are none.
pub fn summary(samples: &[f64]) -> Option<Summary> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    let max = *sorted.last()?;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // Nearest rank: the smallest sample with at least 95 % of the samples at or below it.
    let rank = (0.95 * n as f64).ceil() as usize;
    let p95 = sorted[rank.clamp(1, n) - 1];
    Some(Summary { median, p95, max })
}

/// See `summary`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_p95_and_max_of_odd_even_and_single_samples() {
        type Want = Option<(f64, f64, f64)>;
        let cases: [(&[f64], Want); 5] = [
            (&[], None),
            (&[2.0], Some((2.0, 2.0, 2.0))),
            (&[3.0, 1.0, 2.0], Some((2.0, 3.0, 3.0))),
            (&[4.0, 1.0, 3.0, 2.0], Some((2.5, 4.0, 4.0))),
            // Twenty samples 1..=20: the 19th is the 95th percentile, the 20th the maximum.
            (
                &(1..=20).map(f64::from).collect::<Vec<_>>(),
                Some((10.5, 19.0, 20.0)),
            ),
        ];
        for (samples, want) in cases {
            let got = summary(samples).map(|s| (s.median, s.p95, s.max));
            assert_eq!(got, want, "{samples:?}");
        }
    }
}
