//! How good a probability proved to be on outcomes it did not train on.

/// The area under the ROC curve: the chance that a randomly chosen late invoice scores above
/// a randomly chosen punctual one, ties counting one half (from the ranks: Mann–Whitney U).
/// `None` unless both outcomes occur and the lengths agree.
pub fn roc_auc(scores: &[f64], late: &[bool]) -> Option<f64> {
    if scores.len() != late.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives = late.iter().filter(|l| **l).count();
    let negatives = late.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Ranks 1..n, tied scores sharing the average of their ranks.
    let mut rank_sum_of_late = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let late_in_tie = order[start..end].iter().filter(|&&i| late[i]).count();
        rank_sum_of_late += average_rank * late_in_tie as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum_of_late - p * (p + 1.0) / 2.0) / (p * n))
}

/// The Brier score: the mean squared difference between the probability and the outcome
/// (0 is perfect; always saying 0.5 scores 0.25). `None` for no rows or lengths that differ.
pub fn brier(probabilities: &[f64], late: &[bool]) -> Option<f64> {
    if probabilities.is_empty() || probabilities.len() != late.len() {
        return None;
    }
    let sum: f64 = (probabilities.iter().zip(late))
        .map(|(p, l)| (p - if *l { 1.0 } else { 0.0 }).powi(2))
        .sum();
    Some(sum / probabilities.len() as f64)
}

/// The central `level` interval (e.g. 0.9) of the mean of `values` over `resamples` bootstrap
/// resamples (the values drawn again with replacement, as many as there are), from a fixed
/// seed so that the same values give the same interval. `None` for fewer than
/// [`MIN_FOR_INTERVAL`] values: an interval over a handful says nothing.
pub fn bootstrap_mean(values: &[f64], level: f64, resamples: usize) -> Option<(f64, f64)> {
    let n = values.len();
    if n < MIN_FOR_INTERVAL || resamples == 0 {
        return None;
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            (0..n)
                .map(|_| values[(next() % n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round()) as usize];
    let tail = (1.0 - level) / 2.0;
    Some((at(tail), at(1.0 - tail)))
}

/// Values needed for a bootstrap interval.
pub const MIN_FOR_INTERVAL: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_ordered_right_and_ties_as_half() {
        // Perfect, reversed, and no better than chance.
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        // Pairs (late, punctual): (0.7,0.2) (0.7,0.7) (0.7,0.9) (0.4,0.2) (0.4,0.7) (0.4,0.9)
        // = 1 + 0.5 + 0 + 1 + 0 + 0 = 2.5 of 6.
        let auc = roc_auc(
            &[0.2, 0.7, 0.9, 0.7, 0.4],
            &[false, false, false, true, true],
        );
        assert!((auc.unwrap() - 2.5 / 6.0).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.3, 0.6], &[true, true]), None);
        assert_eq!(roc_auc(&[0.3], &[true, false]), None);
        assert_eq!(roc_auc(&[f64::NAN, 0.1], &[true, false]), None);
    }

    #[test]
    fn brier_is_the_mean_squared_error_of_the_probability() {
        assert_eq!(brier(&[1.0, 0.0], &[true, false]), Some(0.0));
        assert_eq!(brier(&[0.5, 0.5], &[true, false]), Some(0.25));
        let b = brier(&[0.8, 0.3, 0.6], &[true, false, false]).unwrap();
        assert!((b - (0.04 + 0.09 + 0.36) / 3.0).abs() < 1e-12);
        assert_eq!(brier(&[], &[]), None);
    }

    #[test]
    fn a_bootstrap_interval_holds_the_mean_and_narrows_with_more_values() {
        assert_eq!(bootstrap_mean(&[1.0, 2.0, 3.0, 4.0], 0.9, 1000), None);
        let few: Vec<f64> = (0..6).map(|i| f64::from(i % 3)).collect();
        let many: Vec<f64> = (0..600).map(|i| f64::from(i % 3)).collect();
        let (lo, hi) = bootstrap_mean(&few, 0.9, 2000).unwrap();
        assert!(lo < 1.0 && 1.0 < hi, "{lo} {hi}");
        let (lo2, hi2) = bootstrap_mean(&many, 0.9, 2000).unwrap();
        assert!(
            lo2 < 1.0 && 1.0 < hi2 && hi2 - lo2 < (hi - lo) / 5.0,
            "{lo2} {hi2}"
        );
        // The standard error of the mean of 600 values spread 0, 1, 2: 0.033; a 90 % interval
        // is about ±1.645 of it.
        assert!(
            ((hi2 - lo2) / 2.0 - 1.645 * 0.0333).abs() < 0.01,
            "{lo2} {hi2}"
        );
        // The same values, the same interval; all alike, no width.
        assert_eq!(bootstrap_mean(&few, 0.9, 2000), Some((lo, hi)));
        assert_eq!(bootstrap_mean(&[2.0; 8], 0.9, 500), Some((2.0, 2.0)));
    }
}
