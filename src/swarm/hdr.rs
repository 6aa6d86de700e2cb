//! A histogram as text: HdrHistogram's own V2 encoding, in base64.
//!
//! Reports carry their round-trip histograms so that reports can be merged
//! exactly: percentiles of a merged run are read from the merged histogram,
//! never averaged from the parts' percentiles. The form is HdrHistogram's
//! V2 (uncompressed), which the Java, Rust, Go and C implementations all
//! read, base64-encoded as their logs write it:
//!
//! ```text
//! offset  field                                  (big-endian)
//!  0      cookie 0x1c849313                      u32   → text starts "HISTEw"
//!  4      payload length in bytes                u32
//!  8      normalizing index offset (always 0)    u32
//! 12      significant digits                     u32
//! 16      lowest discernible value               u64
//! 24      highest trackable value                u64
//! 32      integer to double ratio (always 1.0)   f64
//! 40      payload: one zig-zag varint per counts-array index up to the
//!         maximum's, a run of n > 1 empty slots written as -n
//! ```
//!
//! The varint is LEB128 over 64 bits with one twist: a ninth byte, if any,
//! carries all eight of its bits. hdrhistogram's own serializer sits behind
//! its `serialization` feature, which pulls in zlib, a parser-combinator
//! crate and base64 for the compressed form this module does not need: the
//! uncompressed form and base64 are a few dozen lines each.
//!
//! Decoding takes text from outside (a file given to `swarm merge`), so it
//! checks everything, bounds what it allocates, and never panics.

use std::fmt;

use hdrhistogram::Histogram;

const COOKIE: u32 = 0x1c84_9313;
const HEADER_LEN: usize = 40;
/// Largest `highest trackable value` accepted, and most significant digits:
/// together they bound the counts array a decoded histogram allocates
/// (about 3 million slots at worst, 24 MiB; lubdub's own are 17,408).
const MAX_HIGH: u64 = 1 << 40;
const MAX_DIGITS: u32 = 5;

/// Why text is not a histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HdrError(&'static str);

impl fmt::Display for HdrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for HdrError {}

/// `hist` in V2 form, base64.
pub fn encode(hist: &Histogram<u64>) -> String {
    let mut bytes = Vec::with_capacity(HEADER_LEN + 64);
    bytes.extend_from_slice(&COOKIE.to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes()); // payload length, below
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(&u32::from(hist.sigfig()).to_be_bytes());
    bytes.extend_from_slice(&hist.low().to_be_bytes());
    bytes.extend_from_slice(&hist.high().to_be_bytes());
    bytes.extend_from_slice(&1.0f64.to_be_bytes());
    // Every slot up to the maximum's, as hdrhistogram's serializer writes
    // them (an empty histogram is one empty slot).
    let max = hist.max();
    let mut zeros: i64 = 0;
    for slot in hist.iter_all() {
        let count = slot.count_at_value();
        if count == 0 {
            zeros += 1;
        } else {
            flush_zeros(&mut bytes, &mut zeros);
            // A count past i64::MAX cannot be written; none is ever near.
            put_varint(&mut bytes, zig_zag(count.min(i64::MAX as u64) as i64));
        }
        if slot.value_iterated_to() >= max {
            break;
        }
    }
    flush_zeros(&mut bytes, &mut zeros);
    let payload = (bytes.len() - HEADER_LEN) as u32;
    bytes[4..8].copy_from_slice(&payload.to_be_bytes());
    base64_encode(&bytes)
}

/// A run of empty slots: one is written as a count of 0, more as `-n`.
fn flush_zeros(bytes: &mut Vec<u8>, zeros: &mut i64) {
    match *zeros {
        0 => {}
        1 => put_varint(bytes, 0),
        n => put_varint(bytes, zig_zag(-n)),
    }
    *zeros = 0;
}

/// A histogram from text [`encode`] (or any HdrHistogram V2 writer) made.
pub fn decode(text: &str) -> Result<Histogram<u64>, HdrError> {
    let bytes = base64_decode(text.trim()).ok_or(HdrError("not base64"))?;
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or(HdrError("shorter than a histogram's header"))?;
    let u32_at = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let u64_at = |at: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_be_bytes(b)
    };
    if u32_at(0) != COOKIE {
        return Err(HdrError(
            "not an uncompressed HdrHistogram V2 encoding (its cookie is wrong)",
        ));
    }
    let payload_len = u32_at(4) as usize;
    if u32_at(8) != 0 || f64::from_bits(u64_at(32)) != 1.0 {
        return Err(HdrError(
            "uses a normalizing offset or a double ratio, which lubdub does not read",
        ));
    }
    let (digits, low, high) = (u32_at(12), u64_at(16), u64_at(24));
    if digits > MAX_DIGITS || high > MAX_HIGH {
        return Err(HdrError(
            "has a range or precision larger than lubdub reads",
        ));
    }
    let template = Histogram::<u64>::new_with_bounds(low, high, digits as u8)
        .map_err(|_| HdrError("has bounds no histogram can have"))?;
    let payload = bytes
        .get(HEADER_LEN..)
        .filter(|p| p.len() == payload_len)
        .ok_or(HdrError(
            "its payload length is not the one its header gives",
        ))?;

    // Decoded into (slot, count) pairs first: the template's slots give
    // each one a value to record at.
    let mut counts = Vec::new();
    let (mut at, mut slot) = (0, 0u64);
    while at < payload.len() {
        let (value, used) = get_varint(&payload[at..]).ok_or(HdrError("ends inside a number"))?;
        at += used;
        match un_zig_zag(value) {
            n if n < 0 => slot = slot.saturating_add(n.unsigned_abs()),
            count => {
                if count > 0 {
                    counts.push((slot, count as u64));
                }
                slot += 1;
            }
        }
        if slot > template.distinct_values() as u64 {
            return Err(HdrError("has more slots than its range"));
        }
    }
    let mut hist = template.clone();
    let mut wanted = counts.into_iter().peekable();
    for (index, item) in template.iter_all().enumerate() {
        let Some(&(slot, count)) = wanted.peek() else {
            break;
        };
        if slot == index as u64 {
            hist.record_n(item.value_iterated_to(), count)
                .map_err(|_| HdrError("has a count outside its range"))?;
            wanted.next();
        }
    }
    Ok(hist)
}

fn zig_zag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn un_zig_zag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// LEB128, seven bits a byte, except that a ninth byte holds eight.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    for _ in 0..8 {
        if n < 0x80 {
            out.push(n as u8);
            return;
        }
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The number at the start of `bytes` and how many bytes it took.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut n = 0u64;
    for i in 0..9 {
        let b = *bytes.get(i)?;
        if i == 8 {
            return Some((n | u64::from(b) << 56, 9));
        }
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4).
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padded or not; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone sixth of a byte left over is no base64 (one char in four).
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::counters::rtt_histogram;

    #[test]
    fn a_histogram_comes_back_equal_and_with_the_same_percentiles() {
        let mut hist = rtt_histogram();
        for v in [1, 2, 3, 700, 701, 5_000, 123_456, 59_999_999] {
            hist.record_n(v, v % 7 + 1).unwrap();
        }
        // A count that needs a long varint.
        hist.record_n(40_000, 1 << 40).unwrap();
        let text = encode(&hist);
        assert!(text.starts_with("HISTEw"), "{text}");
        let back = decode(&text).unwrap();
        assert_eq!(back, hist);
        for q in [0.5, 0.99, 0.999, 1.0] {
            assert_eq!(back.value_at_quantile(q), hist.value_at_quantile(q));
        }
        assert_eq!(back.max(), hist.max());
        assert_eq!(back.mean(), hist.mean());
        assert_eq!(back.len(), hist.len());
    }

    #[test]
    fn an_empty_histogram_is_one_empty_slot_as_hdrhistogram_writes_it() {
        let empty = rtt_histogram();
        let text = encode(&empty);
        let bytes = base64_decode(&text).unwrap();
        assert_eq!(bytes.len(), HEADER_LEN + 1);
        assert_eq!(&bytes[4..8], &1u32.to_be_bytes());
        assert_eq!(bytes[HEADER_LEN], 0);
        assert_eq!(decode(&text).unwrap(), empty);
    }

    #[test]
    fn runs_of_empty_slots_are_written_as_negative_counts() {
        let mut hist = rtt_histogram();
        hist.record(1).unwrap(); // slot 1 (slot 0 holds 0)
        hist.record(4).unwrap(); // slot 4: two empty slots between
        let bytes = base64_decode(&encode(&hist)).unwrap();
        // slot 0 empty (0), slot 1 one (2), slots 2-3 empty (-2 → 3), slot 4 one (2).
        assert_eq!(&bytes[HEADER_LEN..], &[0, 2, 3, 2]);
    }

    #[test]
    fn varints_match_hdrhistograms_nine_byte_form() {
        for n in [
            0,
            1,
            127,
            128,
            300,
            1 << 49,
            (1 << 56) - 1,
            1 << 56,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert!(out.len() <= 9);
            assert_eq!(get_varint(&out), Some((n, out.len())), "{n}");
        }
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        for n in [0, 1, -1, -2, i64::MAX, i64::MIN] {
            assert_eq!(un_zig_zag(zig_zag(n)), n);
        }
        assert_eq!(zig_zag(-2), 3);
    }

    #[test]
    fn base64_is_rfc_4648() {
        for (raw, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw), text);
            assert_eq!(base64_decode(text).unwrap(), raw);
        }
        assert_eq!(base64_decode("Zm9vYg"), Some(b"foob".to_vec()));
        assert_eq!(base64_decode("Z"), None);
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn bad_text_is_an_error_never_a_panic() {
        let good = base64_decode(&encode(&rtt_histogram())).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), good[..39].to_vec()];
        // A wrong cookie, a payload length that lies, a range too large.
        let mut bad = good.clone();
        bad[3] = 0x14;
        cases.push(bad);
        let mut bad = good.clone();
        bad[7] = 9;
        cases.push(bad);
        let mut bad = good.clone();
        bad[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        cases.push(bad);
        // Bounds no histogram has: low above high.
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&(1u64 << 39).to_be_bytes());
        cases.push(bad);
        // More slots than the range has (17,408), a number cut short.
        let mut past_the_end = Vec::new();
        put_varint(&mut past_the_end, zig_zag(-17_408));
        past_the_end.push(2);
        for payload in [
            &[0x81, 0x80, 0x80, 0x01][..],
            &[0xff][..],
            &past_the_end[..],
        ] {
            let mut bad = good[..HEADER_LEN].to_vec();
            bad[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
            bad.extend_from_slice(payload);
            cases.push(bad);
        }
        for bytes in cases {
            assert!(decode(&base64_encode(&bytes)).is_err(), "{bytes:?}");
        }
        assert!(decode("not base64 at all!").is_err());
        // Every truncation of a real one.
        let mut hist = rtt_histogram();
        for v in 1..2000 {
            hist.record(v * 37).unwrap();
        }
        let full = base64_decode(&encode(&hist)).unwrap();
        for cut in 0..full.len() {
            assert!(
                decode(&base64_encode(&full[..cut])).is_err(),
                "cut at {cut}"
            );
        }
    }
}
