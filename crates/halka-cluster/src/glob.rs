//! Redis glob patterns (`SCAN … MATCH`, `KEYS`), compiled once per command.
//!
//! A pattern is compiled into tokens before any key is matched: a class (`[a-z]`,
//! `[^abc]`) becomes a 256-bit set, so matching a byte against it costs one lookup however
//! long the class was written, and runs of `*` collapse into one. Patterns are capped at
//! [`MAX_PATTERN_BYTES`], refused with [`GlobError::TooLong`]. Matching is the greedy
//! segment search: the pattern between stars must match at the start (before the first
//! star), at the end (after the last), and each segment in between at its leftmost place
//! after the previous one. That costs at most `(key + segments) × longest segment`
//! steps for one key, and a segment longer than the key fails at once.
//!
//! Syntax as Redis's: `*`, `?`, `[abc]`, `[^a-z]` (a range's ends in either order),
//! `\` to take the next byte literally; an unclosed `[` runs to the end of the pattern.

use thiserror::Error;

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GlobError {
    #[error(
        "pattern of {len} bytes is longer than the {max} bytes halka accepts (Redis has no \
         such limit)"
    )]
    TooLong { len: usize, max: usize },
}

/// One position of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    /// `?`: any one byte.
    Any,
    /// A class, as the set of bytes it matches (negation applied).
    Class(Box<[u64; 4]>),
}

impl Token {
    fn matches(&self, b: u8) -> bool {
        match self {
            Token::Byte(c) => *c == b,
            Token::Any => true,
            Token::Class(set) => set[usize::from(b >> 6)] & (1 << (b & 63)) != 0,
        }
    }
}

/// A compiled pattern: the segments between its stars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    segments: Vec<Vec<Token>>,
    /// Whether the pattern starts with a star (the first segment may match anywhere).
    leading_star: bool,
    /// Whether it ends with one.
    trailing_star: bool,
}

impl Glob {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`GlobError::TooLong`] past [`MAX_PATTERN_BYTES`].
    pub fn new(pattern: &[u8]) -> Result<Self, GlobError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(GlobError::TooLong { len: pattern.len(), max: MAX_PATTERN_BYTES });
        }
        // The segments between stars; a star closes the current one, and runs of stars
        // count as one.
        let mut segments = Vec::new();
        let mut current = Vec::new();
        let mut stars = 0;
        let mut i = 0;
        while i < pattern.len() {
            let token = match pattern[i] {
                b'*' => {
                    if stars == 0 || !current.is_empty() {
                        segments.push(std::mem::take(&mut current));
                        stars += 1;
                    }
                    i += 1;
                    continue;
                }
                b'?' => Token::Any,
                b'[' => {
                    let (set, end) = class(pattern, i);
                    current.push(Token::Class(Box::new(set)));
                    i = end;
                    continue;
                }
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    Token::Byte(pattern[i])
                }
                c => Token::Byte(c),
            };
            current.push(token);
            i += 1;
        }
        segments.push(current);
        let leading_star = pattern.first() == Some(&b'*');
        let trailing_star = stars > 0 && segments.last().is_some_and(Vec::is_empty);
        if trailing_star {
            segments.pop();
        }
        if leading_star && !segments.is_empty() {
            segments.remove(0);
        }
        Ok(Self { segments, leading_star, trailing_star })
    }

    /// Whether `key` matches.
    #[must_use]
    pub fn matches(&self, key: &[u8]) -> bool {
        let n = self.segments.len();
        if n == 0 {
            // "" matches only ""; "*" matches anything.
            return self.leading_star || key.is_empty();
        }
        let stars = n - 1 + usize::from(self.leading_star) + usize::from(self.trailing_star);
        if stars == 0 {
            return self.segments[0].len() == key.len() && fits(&self.segments[0], key);
        }
        let mut at = 0;
        for (i, segment) in self.segments.iter().enumerate() {
            let first = i == 0 && !self.leading_star;
            let last = i == n - 1 && !self.trailing_star;
            let rest = &key[at..];
            if segment.len() > rest.len() {
                return false;
            }
            if first {
                if !fits(segment, &rest[..segment.len()]) {
                    return false;
                }
                at += segment.len();
            } else if last {
                return fits(segment, &rest[rest.len() - segment.len()..]);
            } else {
                match (0..=rest.len() - segment.len()).find(|&p| fits(segment, &rest[p..])) {
                    Some(p) => at += p + segment.len(),
                    None => return false,
                }
            }
        }
        // Every segment placed; a trailing star takes the rest.
        self.trailing_star || at == key.len()
    }
}

/// Whether `segment` matches `key`'s first `segment.len()` bytes, and `key` is no shorter.
fn fits(segment: &[Token], key: &[u8]) -> bool {
    key.len() >= segment.len() && segment.iter().zip(key).all(|(t, &b)| t.matches(b))
}

/// The set of bytes the class starting at `pattern[open] == b'['` matches, and where the
/// pattern continues after it.
fn class(pattern: &[u8], open: usize) -> ([u64; 4], usize) {
    let mut set = [0_u64; 4];
    let mut add = |b: u8| set[usize::from(b >> 6)] |= 1 << (b & 63);
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            add(pattern[i + 1]);
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (pattern[i].min(pattern[i + 2]), pattern[i].max(pattern[i + 2]));
            (lo..=hi).for_each(&mut add);
            i += 3;
        } else {
            add(pattern[i]);
            i += 1;
        }
    }
    if negate {
        set.iter_mut().for_each(|w| *w = !*w);
    }
    (set, (i + 1).min(pattern.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, key: &str) -> bool {
        Glob::new(pattern.as_bytes()).unwrap().matches(key.as_bytes())
    }

    #[test]
    fn globs_match_as_redis_matches_them() {
        for (p, k, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:mail", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("a**b", "ab", true),
            ("ab*", "a", false),
            ("*ab", "b", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("[abc", "b", true),
            ("*[", "x", false),
        ] {
            assert_eq!(matches(p, k), want, "{p:?} against {k:?}");
        }
    }

    #[test]
    fn a_pattern_past_the_cap_is_refused_with_its_length() {
        let long = vec![b'a'; MAX_PATTERN_BYTES + 1];
        let err = Glob::new(&long).unwrap_err();
        assert_eq!(err, GlobError::TooLong { len: MAX_PATTERN_BYTES + 1, max: MAX_PATTERN_BYTES });
    }

    /// The reference: Redis's recursive definition, exponential but obviously right.
    fn reference(p: &[u8], k: &[u8]) -> bool {
        match p.first() {
            None => k.is_empty(),
            Some(b'*') => (0..=k.len()).any(|i| reference(&p[1..], &k[i..])),
            Some(b'?') => !k.is_empty() && reference(&p[1..], &k[1..]),
            Some(&c) => k.first() == Some(&c) && reference(&p[1..], &k[1..]),
        }
    }

    proptest! {
        /// Over patterns of `a`, `b`, `?` and `*`, the segment search agrees with the
        /// recursive definition.
        #[test]
        fn the_segment_search_agrees_with_the_definition(
            p in "[ab?*]{0,8}",
            k in "[ab]{0,10}",
        ) {
            prop_assert_eq!(matches(&p, &k), reference(p.as_bytes(), k.as_bytes()), "{:?} {:?}", p, k);
        }
    }
}
