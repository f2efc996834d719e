//! HyperLogLogs (`PFADD`, `PFCOUNT`, `PFMERGE`): 16,384 registers that only ever grow,
//! so merging two by taking each register's maximum loses nothing either saw. That makes
//! them convergent by construction: concurrent `PFADD`s through different nodes leave
//! sibling versions, any reader takes the registers' maximum over the live siblings, and
//! the next write stores that maximum over them all.
//!
//! The value is Redis's dense encoding (the `HYLL` header, then 6-bit registers), and
//! elements are hashed as Redis hashes them (MurmurHash64A, its seed), with its
//! estimator: a count here is the count Redis gives for the same elements, and a value
//! read with `GET` is a value Redis reads. Redis's sparse encoding is read too, so an
//! HLL copied from Redis works; halka always writes the dense one (12 KiB).

use crate::{Record, Refusal};
use bytes::{BufMut, Bytes, BytesMut};

/// Index bits: 2^14 registers, Redis's choice (standard error 0.81%).
const P: u32 = 14;
const REGISTERS: usize = 1 << P;
/// Bits a register's value is drawn from after the index: 64 − P.
const Q: u32 = 64 - P;
const BITS: usize = 6;
const HEADER: usize = 16;
/// Header, then the registers packed 6 bits each.
pub const DENSE_BYTES: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const MAGIC: &[u8; 4] = b"HYLL";
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;

/// Why a value is not a HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Key is not a valid HyperLogLog string value.")]
pub struct NotAnHll;

/// A HyperLogLog's registers, one byte each while in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Registers(Box<[u8; REGISTERS]>);

impl std::fmt::Debug for Registers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.iter().filter(|r| **r > 0).count();
        f.debug_struct("Registers").field("set", &set).finish()
    }
}

impl Default for Registers {
    fn default() -> Self {
        Self(Box::new([0; REGISTERS]))
    }
}

/// The register `element` falls in and the value it offers there, as Redis computes them:
/// the hash's low 14 bits pick the register, and the value is one more than the number of
/// zeros after them (at most 51).
#[must_use]
pub fn observe(element: &[u8]) -> (u16, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as u16;
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

impl Registers {
    /// The registers `value` holds, in Redis's dense or sparse encoding.
    ///
    /// # Errors
    /// [`NotAnHll`] for anything else.
    pub fn decode(value: &[u8]) -> Result<Self, NotAnHll> {
        if value.len() < HEADER || &value[..4] != MAGIC {
            return Err(NotAnHll);
        }
        let body = &value[HEADER..];
        match value[4] {
            DENSE if value.len() == DENSE_BYTES => {
                let mut out = Self::default();
                for (i, r) in out.0.iter_mut().enumerate() {
                    *r = dense_get(body, i);
                }
                Ok(out)
            }
            SPARSE => decode_sparse(body),
            _ => Err(NotAnHll),
        }
    }

    /// The dense encoding, its cached count marked stale (Redis recounts it).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(DENSE_BYTES);
        out.put_slice(MAGIC);
        out.put_slice(&[DENSE, 0, 0, 0]);
        // The cached cardinality, its top bit set: "not valid, count again".
        out.put_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80]);
        out.resize(DENSE_BYTES, 0);
        for (i, &r) in self.0.iter().enumerate() {
            dense_set(&mut out[HEADER..], i, r);
        }
        out.freeze()
    }

    /// Register `index`'s value.
    #[must_use]
    pub fn get(&self, index: u16) -> u8 {
        self.0[usize::from(index) % REGISTERS]
    }

    /// Raises register `index` to `value`; whether it grew.
    pub fn raise(&mut self, index: u16, value: u8) -> bool {
        let r = &mut self.0[usize::from(index) % REGISTERS];
        let grew = value > *r;
        *r = (*r).max(value);
        grew
    }

    /// Takes each register's maximum with `other`'s; whether any grew.
    pub fn merge(&mut self, other: &Registers) -> bool {
        let mut grew = false;
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            grew |= *theirs > *mine;
            *mine = (*mine).max(*theirs);
        }
        grew
    }

    /// The registers that are set, as (index, value): what a write carries.
    #[must_use]
    pub fn set(&self) -> Vec<(u16, u8)> {
        (0..REGISTERS as u16).zip(self.0.iter().copied()).filter(|(_, r)| *r > 0).collect()
    }

    /// The estimated number of distinct elements: Ertl's estimator, as Redis computes it
    /// (`hllCount`), so the same registers give the same count.
    #[must_use]
    pub fn count(&self) -> u64 {
        let mut histogram = [0u32; 64];
        for &r in self.0.iter() {
            histogram[usize::from(r)] += 1;
        }
        let m = REGISTERS as f64;
        let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
        for j in (1..=Q as usize).rev() {
            z += f64::from(histogram[j]);
            z *= 0.5;
        }
        z += m * sigma(f64::from(histogram[0]) / m);
        const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
        (ALPHA_INF * m * m / z).round() as u64
    }
}

fn dense_get(body: &[u8], i: usize) -> u8 {
    let (byte, bit) = (i * BITS / 8, i * BITS % 8);
    let low = u16::from(body[byte]);
    let high = u16::from(body.get(byte + 1).copied().unwrap_or(0));
    (((low | (high << 8)) >> bit) & 63) as u8
}

fn dense_set(body: &mut [u8], i: usize, value: u8) {
    let (byte, bit) = (i * BITS / 8, i * BITS % 8);
    let v = u16::from(value & 63) << bit;
    body[byte] = (body[byte] & !((63u16 << bit) as u8)) | v as u8;
    if let Some(next) = body.get_mut(byte + 1) {
        *next = (*next & !((63u16 << bit) >> 8) as u8) | (v >> 8) as u8;
    }
}

/// Redis's sparse opcodes: `00xxxxxx` skips 1–64 zero registers, `01xxxxxx yyyyyyyy`
/// skips 1–16384, `1vvvvvxx` sets 1–4 registers to 1–32.
fn decode_sparse(body: &[u8]) -> Result<Registers, NotAnHll> {
    let mut out = Registers::default();
    let (mut at, mut index) = (0, 0usize);
    while at < body.len() {
        let op = body[at];
        let (run, value, width) = match op >> 6 {
            0b00 => (usize::from(op & 0x3f) + 1, 0, 1),
            0b01 => {
                let next = usize::from(*body.get(at + 1).ok_or(NotAnHll)?);
                ((usize::from(op & 0x3f) << 8 | next) + 1, 0, 2)
            }
            _ => (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1, 1),
        };
        if index + run > REGISTERS {
            return Err(NotAnHll);
        }
        out.0[index..index + run].fill(value);
        index += run;
        at += width;
    }
    if index == REGISTERS { Ok(out) } else { Err(NotAnHll) }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

/// MurmurHash64A, the hash Redis gives elements. Written out here because the count must
/// match Redis's bit for bit, and the crate that has it depends on a 2015 `rand`.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The HyperLogLog `base` holds at `now_us`: the registers' maximum over its live versions
/// (concurrent `PFADD`s leave siblings); `None` when it holds nothing live.
///
/// # Errors
/// [`Refusal::WrongType`] for a collection, [`Refusal::NotAnHll`] for another string.
pub fn live(base: &Record, now_us: u64) -> Result<Option<Registers>, Refusal> {
    let mut registers: Option<Registers> = None;
    for version in base.versions().iter().filter(|v| v.is_live(now_us)) {
        if version.is_head() {
            return Err(Refusal::WrongType);
        }
        let value = version.value.as_deref().unwrap_or_default();
        let these = Registers::decode(value).map_err(|_| Refusal::NotAnHll)?;
        registers.get_or_insert_with(Registers::default).merge(&these);
    }
    Ok(registers)
}

/// What a `Change::Registers` write makes of `base`: its live registers (see [`live`])
/// raised by `raise`, encoded, and whether anything grew (a key holding nothing counts as
/// grown: `PFADD` creates it).
///
/// # Errors
/// As [`live`].
pub fn merged(base: &Record, now_us: u64, raise: &[(u16, u8)]) -> Result<(Bytes, bool), Refusal> {
    let current = live(base, now_us)?;
    let mut grew = current.is_none();
    let mut registers = current.unwrap_or_default();
    for &(index, value) in raise {
        grew |= registers.raise(index, value);
    }
    Ok((registers.encode(), grew))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_survive_the_dense_encoding() {
        let mut r = Registers::default();
        for i in 0..REGISTERS {
            r.raise(i as u16, (i % 52) as u8);
        }
        let bytes = r.encode();
        assert_eq!(bytes.len(), DENSE_BYTES);
        assert_eq!(Registers::decode(&bytes), Ok(r));
    }

    #[test]
    fn counts_are_within_the_standard_error() {
        let mut r = Registers::default();
        for i in 0..100_000u32 {
            let (index, value) = observe(format!("element:{i}").as_bytes());
            r.raise(index, value);
        }
        let n = r.count() as f64;
        // 0.81% standard error; five of them is far outside chance.
        assert!((n - 100_000.0).abs() < 100_000.0 * 0.0405, "{n}");
    }

    #[test]
    fn merging_takes_each_registers_maximum_in_any_order() {
        let (mut a, mut b) = (Registers::default(), Registers::default());
        a.raise(1, 5);
        a.raise(2, 1);
        b.raise(2, 7);
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert!(!ab.clone().merge(&a), "merging again changes nothing");
        assert_eq!(ab.set(), [(1, 5), (2, 7)]);
    }

    #[test]
    fn the_sparse_encoding_redis_writes_is_read() {
        // XZERO of 1000, VAL 3 ×2, XZERO for the rest.
        let mut value = Vec::from(*MAGIC);
        value.extend_from_slice(&[SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let rest = REGISTERS - 1002 - 1;
        value.extend_from_slice(&[0x40 | (999 >> 8) as u8, (999 & 0xff) as u8]);
        value.push(0x80 | (2 << 2) | 1);
        value.extend_from_slice(&[0x40 | (rest >> 8) as u8, (rest & 0xff) as u8]);
        let r = Registers::decode(&value).unwrap();
        assert_eq!(r.set(), [(1000, 3), (1001, 3)]);
    }

    #[test]
    fn anything_else_is_not_a_hyperloglog() {
        for bad in [&b"hello"[..], b"HYLL", b"HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"]
        {
            assert_eq!(Registers::decode(bad), Err(NotAnHll));
        }
    }
}
