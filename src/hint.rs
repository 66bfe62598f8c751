//! "Did you mean …?": the likely intent of a mistyped name.

/// The name among `names` closest to `word` (a typo's likely intent), if any is close.
pub fn closest<'a>(word: &str, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::levenshtein(word, n), n))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.as_str())
}
