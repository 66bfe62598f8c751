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
}
