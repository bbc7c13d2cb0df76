//! Small statistics over timings: medians and nearest-rank percentiles.

/// The median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    percentile_interpolated(values, 0.5)
}

/// The `q`-quantile (0..=1) of `values` with linear interpolation between closest ranks
/// (numpy's default), so p50 of an even count is the mean of the middle two; 0 when empty.
pub fn percentile_interpolated(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Rounds to `digits` decimals, for JSON that is readable and stable.
pub fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_percentiles_match_numpy() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        // numpy.percentile([1..=10], 95) == 9.55
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((percentile_interpolated(&v, 0.95) - 9.55).abs() < 1e-12);
        assert_eq!(percentile_interpolated(&[5.0], 0.95), 5.0);
    }
}
