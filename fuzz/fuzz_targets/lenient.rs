//! Fuzzes lenient decoding (`Decoder::feed_lenient`), which resynchronises
//! on any bytes instead of failing. The input's first byte picks
//! `max_frame` as the `decoder` target does, its second the number of feed
//! lengths that follow; the rest is the stream.
//!
//! The target panics when the decoder does: an error at all, more bytes
//! discarded than fed, or a split payload's buffer past its frame limit.

#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use lubdub::protocol::{Decoder, Payloads};

fuzz_target!(|data: &[u8]| {
    let Some((&[limit, n], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_frame = common::max_frame(limit);
    let n = usize::from(n).min(rest.len());
    let (lengths, mut stream) = rest.split_at(n);
    let total = stream.len();
    let mut dec = Decoder::new();
    let mut dropped = 0;
    for &len in lengths.iter().chain(std::iter::once(&u8::MAX)) {
        let (piece, tail) = stream.split_at(usize::from(len).min(stream.len()));
        stream = tail;
        dropped += dec.feed_lenient(piece, max_frame, Payloads::Deliver, |frame| {
            assert!(frame.payload.len() + 8 <= max_frame.max(8));
        });
        assert!(dec.error().is_none(), "a lenient decoder failed");
        assert!(dec.heap_bytes() <= max_frame, "{} held", dec.heap_bytes());
    }
    assert!(dropped <= total, "{dropped} of {total} bytes dropped");
});
