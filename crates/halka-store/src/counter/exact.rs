//! Exact sums of `f64`s, so that a counter's floating-point value does not depend on the
//! order its increments arrived in, and a huge increment followed by its opposite leaves
//! nothing behind.
//!
//! A node's floating-point net is kept as a short list of *partials*: non-overlapping
//! `f64`s whose exact (unrounded) sum is the net (Shewchuk's expansions, the scheme behind
//! Python's `math.fsum`). Adding to it is exact; only reading the counter rounds, once,
//! to the nearest `f64` ([`rounded_sum`], which `fsum` computes). So `1e308 + -1e308 + 1`
//! reads `1`, where summing as we go would read `0` for ever after.

use fsum::FSum;

/// Most partials a net may hold. Non-overlapping `f64`s cover disjoint bit ranges of the
/// 2,098 a finite `f64` can reach, 53 bits or more each: at most 40 of them.
pub const MAX_PARTIALS: usize = 40;

/// Adds `x` to the exact sum `partials`, keeping them non-overlapping and dropping zeros.
///
/// # Errors
/// The sum left the finite range (`partials` is then unchanged).
pub fn grow(partials: &mut Vec<f64>, mut x: f64) -> Result<(), Overflowed> {
    let mut kept = Vec::with_capacity(partials.len() + 1);
    for &p in partials.iter() {
        let mut y = p;
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        // `hi + lo` is exactly `x + y` (two-sum), as long as `hi` is finite.
        let hi = x + y;
        let lo = y - (hi - x);
        if !hi.is_finite() {
            return Err(Overflowed);
        }
        if lo != 0.0 {
            kept.push(lo);
        }
        x = hi;
    }
    if x != 0.0 {
        kept.push(x);
    }
    *partials = kept;
    Ok(())
}

/// The exact sum of `parts`, rounded once to the nearest `f64` (ties to even); not finite
/// when it does not fit.
pub fn rounded_sum(parts: impl IntoIterator<Item = f64>) -> f64 {
    FSum::with_all(parts).value()
}

/// `n` as `f64`s whose exact sum is `n` (an `f64` holds 53 bits; three hold any `i128`).
pub fn split_integer(n: i128) -> [f64; 3] {
    let mut rest = n;
    let mut parts = [0.0; 3];
    for part in &mut parts {
        // `as` rounds to nearest; the remainder is what the rounding left out, exactly.
        *part = rest as f64;
        rest -= *part as i128;
    }
    parts
}

/// A sum left the range of finite `f64`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed;

#[cfg(test)]
mod tests {
    use super::*;

    fn summed(xs: &[f64]) -> (Vec<f64>, f64) {
        let mut partials = Vec::new();
        for &x in xs {
            grow(&mut partials, x).unwrap();
        }
        let value = rounded_sum(partials.iter().copied());
        (partials, value)
    }

    #[test]
    fn a_huge_increment_and_its_opposite_leave_nothing_behind() {
        let (partials, value) = summed(&[1e308, -1e308, 1.0]);
        assert_eq!(value, 1.0);
        assert_eq!(partials, [1.0]);
    }

    #[test]
    fn small_increments_beside_a_huge_one_are_kept_exactly() {
        let (partials, value) = summed(&[1e300, 1.0, 1.0, -1e300]);
        assert_eq!(value, 2.0);
        assert_eq!(partials.len(), 1);
        assert_eq!(summed(&[0.1; 10]).1, 1.0);
    }

    #[test]
    fn a_sum_past_the_largest_float_is_refused_and_leaves_the_partials_alone() {
        let mut partials = vec![f64::MAX];
        assert_eq!(grow(&mut partials, f64::MAX), Err(Overflowed));
        assert_eq!(partials, [f64::MAX]);
    }

    #[test]
    fn integers_split_exactly() {
        for n in [0, 1, -7, i128::from(i64::MAX), i128::from(i64::MIN), (1 << 100) + 3] {
            let parts = split_integer(n);
            let back: i128 = parts.iter().map(|&p| p as i128).sum();
            assert_eq!(back, n, "{n}");
        }
    }
}
