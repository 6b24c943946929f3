//! Reading Prometheus text (what every `/metrics` serves) in tests.

/// The value of one sample line, named exactly (labels included), e.g.
/// `sample(body, "hookline_operator_leader")` or `sample(body, "x{l=\"a\"}")`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    samples(body)
        .find(|(name, _)| *name == series)
        .map(|(_, value)| value)
}

/// The sum of every sample of the family `name`, whatever their labels (0 when none).
pub fn family_sum(body: &str, name: &str) -> f64 {
    samples(body)
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .map(|(_, value)| value)
        .sum()
}

/// `(series, value)` of every sample line (comments and unreadable lines skipped).
fn samples(body: &str) -> impl Iterator<Item = (&str, f64)> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series, value.parse().ok()?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP x\nhookline_operator_leader 1\nhookline_operator_leader_other 5\nwith{l=\"a\"} 2\nwith{l=\"b\"} 3\n";

    #[test]
    fn samples_by_exact_series_and_families_summed() {
        assert_eq!(sample(BODY, "hookline_operator_leader"), Some(1.0));
        assert_eq!(sample(BODY, "with{l=\"a\"}"), Some(2.0));
        assert_eq!(sample(BODY, "absent"), None);
        assert_eq!(family_sum(BODY, "with"), 5.0);
        assert_eq!(family_sum(BODY, "hookline_operator_leader"), 1.0);
        assert_eq!(family_sum(BODY, "absent"), 0.0);
    }
}
