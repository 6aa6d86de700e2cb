//! Fuzzes the frame decoder against the whole-stream reference decoder that
//! the property tests use (`src/protocol/tests/reference.rs`, included by
//! path), so both hold the decoder to one oracle.
//!
//! The input's first bytes choose how the rest is fed:
//!
//! - byte 0, `max_frame`: 0..=127 as is (so below the header too), 128..=191
//!   1 KiB to 64 KiB in 1 KiB steps, 192..=253 the default, 254 and 255
//!   `usize::MAX`;
//! - byte 1: bits 0-1 the payload policy (0 Deliver, 1 Skip, 2 and 3 one per
//!   feed), bits 2-7 the number `n` of feed lengths that follow;
//! - the next `n` bytes, one feed length each; with a policy per feed, bit 7
//!   set means Skip and bits 0-6 are the length;
//! - the rest is the stream; what the feeds leave of it is fed as one last
//!   chunk, under the uniform policy (Deliver when it is per feed).
//!
//! The target panics on the first disagreement `reference::check` finds: a
//! frame missing, extra, late, early or with the wrong kind or payload; the
//! wrong error, or one at the wrong feed; a frame or `Ok` after an error;
//! `pending()`, `is_mid_frame()`, `error()` or `heap_bytes()` out of line
//! (including any heap at all while only `Skip` has been used).

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use lubdub::protocol::{
    field, DecodeError, Decoder, FrameType, Kind, Payloads, HEADER_LEN, HEARTBEAT_REQUEST,
};

#[path = "../../src/protocol/tests/reference.rs"]
mod reference;

fuzz_target!(|data: &[u8]| {
    let Some((&[limit, plan], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_frame = common::max_frame(limit);
    let uniform = match plan & 0b11 {
        0 => Some(Payloads::Deliver),
        1 => Some(Payloads::Skip),
        _ => None,
    };
    let n = usize::from(plan >> 2).min(rest.len());
    let (lengths, stream) = rest.split_at(n);
    let mut feeds: Vec<(usize, Payloads)> = lengths
        .iter()
        .map(|&b| match uniform {
            Some(policy) => (usize::from(b), policy),
            None if b & 0x80 != 0 => (usize::from(b & 0x7f), Payloads::Skip),
            None => (usize::from(b), Payloads::Deliver),
        })
        .collect();
    // The rest in one feed, under the uniform policy if there is one.
    let last = uniform.unwrap_or(Payloads::Deliver);
    feeds.push((usize::MAX, last));
    if let Err(e) = reference::check(stream, &feeds, max_frame) {
        panic!("max_frame {max_frame}, feeds {feeds:?}: {e}");
    }
});
