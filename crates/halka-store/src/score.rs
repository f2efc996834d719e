//! A sorted set member's score: parsed as Redis parses `ZADD`'s, written as Redis writes
//! `ZSCORE`'s, and ordered as Redis orders a sorted set (by score, then by member).
//!
//! A member's record holds its score as text: `ZADD` writes it so, and `ZINCRBY` turns it
//! into a float counter whose value is also text. Reading parses it back, so the stored
//! spelling never reaches a client.

use bytes::Bytes;
use std::cmp::Ordering;
use std::fmt;

/// A score: any `f64` but NaN (`ZADD` refuses NaN, and no sum of finite scores makes
/// one — `ZINCRBY` refuses what would).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

/// Why a score was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("value is not a valid float")]
    NotAFloat,
}

impl Score {
    /// Parses `text` as Redis's `ZADD` does: a decimal or exponent number, `inf`, `+inf`
    /// or `-inf` in any case; not NaN, not empty, no spaces.
    ///
    /// # Errors
    /// [`ScoreError::NotAFloat`].
    pub fn parse(text: &[u8]) -> Result<Self, ScoreError> {
        let text = std::str::from_utf8(text).map_err(|_| ScoreError::NotAFloat)?;
        let spaced = text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace);
        if text.is_empty() || text.len() > 5120 || spaced {
            return Err(ScoreError::NotAFloat);
        }
        let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
        // Rust also reads "infinity" and "nan"; Redis reads neither.
        if unsigned.eq_ignore_ascii_case("infinity") || unsigned.eq_ignore_ascii_case("nan") {
            return Err(ScoreError::NotAFloat);
        }
        match text.parse::<f64>() {
            Ok(f) if !f.is_nan() => Ok(Self(f)),
            _ => Err(ScoreError::NotAFloat),
        }
    }

    /// The text a member's record holds: Redis keeps `-0` as `0`.
    #[must_use]
    pub fn stored(self) -> String {
        Score(self.0 + 0.0).to_string()
    }

    /// The order of a sorted set: by score, `-0` equal to `0`.
    #[must_use]
    pub fn cmp_score(self, other: Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// As C's `%.17g`, which Redis uses: 17 significant digits, trailing zeros dropped, and
/// an exponent when it is below -4 or above 16 (`0.1` is `0.10000000000000001`, `1e20`
/// is `1e+20`, `inf` and `-inf` as such).
impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if x.is_infinite() {
            return f.write_str(if x > 0.0 { "inf" } else { "-inf" });
        }
        if x == 0.0 {
            return f.write_str(if x.is_sign_negative() { "-0" } else { "0" });
        }
        // `{:.16e}` rounds to 17 significant digits: "d.dddddddddddddddde±x".
        let scientific = format!("{x:.16e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        if !(-4..17).contains(&exponent) {
            let mantissa = trim_zeros(mantissa);
            let sign = if exponent < 0 { '-' } else { '+' };
            return write!(f, "{mantissa}e{sign}{:02}", exponent.unsigned_abs());
        }
        let decimals = usize::try_from(16 - exponent).unwrap_or(0);
        f.write_str(trim_zeros(&format!("{x:.decimals$}")))
    }
}

fn trim_zeros(number: &str) -> &str {
    if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { number }
}

/// A sorted set's members in its order — by score, then by member — each with its score.
/// Members whose stored score does not parse (none should) are left out.
#[must_use]
pub fn ranked(members: Vec<(Bytes, Bytes)>) -> Vec<(Bytes, Score)> {
    let mut out: Vec<(Bytes, Score)> = members
        .into_iter()
        .filter_map(|(member, value)| Some((member, Score::parse(&value).ok()?)))
        .collect();
    out.sort_by(|a, b| a.1.cmp_score(b.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_written_as_redis_writes_them() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-2.5, "-2.5"),
            (3.000_000_000_000_000_4, "3.0000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0, "0"),
            (-0.0, "-0"),
        ];
        for (x, text) in cases {
            assert_eq!(Score(x).to_string(), text, "{x}");
        }
    }

    #[test]
    fn scores_are_parsed_as_redis_parses_them() {
        for good in ["1", "-1.5", "+inf", "-INF", "inf", "1e20", "5.0e-3", ".5"] {
            assert!(Score::parse(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in ["", "nan", "NaN", "abc", " 1", "1 ", "infinity", "1,5"] {
            assert_eq!(Score::parse(bad.as_bytes()), Err(ScoreError::NotAFloat), "{bad}");
        }
    }

    #[test]
    fn members_rank_by_score_then_by_member() {
        let b = |s: &str| Bytes::from(s.to_owned());
        let members =
            vec![(b("c"), b("1")), (b("a"), b("2")), (b("b"), b("1")), (b("x"), b("-inf"))];
        let order: Vec<Bytes> = ranked(members).into_iter().map(|(m, _)| m).collect();
        assert_eq!(order, [b("x"), b("b"), b("c"), b("a")]);
    }
}
