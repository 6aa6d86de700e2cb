//! Proves the decoder's memory claims with a counting global allocator: the
//! per-heartbeat path and whole data frames allocate nothing; a data payload
//! split across reads does allocate (so the counter is shown to work), and the
//! buffer is released when the frame completes.
//!
//! Counting is switched on per thread, only around `feed` calls, so the test
//! harness's own threads and the test's setup never show up in the counts.

use lubdub::protocol::{
    encode_frame, Decoder, FrameType, Kind, DEFAULT_MAX_FRAME, HEADER_LEN, HEARTBEAT_REQUEST,
    HEARTBEAT_RESPONSE,
};

mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::measure;

/// Feeds `stream` in chunks of `chunk` bytes, counting frames and payload
/// bytes; returns (allocations, frees, frames, payload bytes).
fn feed_chunked(dec: &mut Decoder, stream: &[u8], chunk: usize) -> (usize, usize, usize, usize) {
    let (mut frames, mut bytes) = (0, 0);
    let (allocs, frees) = measure(|| {
        for piece in stream.chunks(chunk) {
            dec.feed(piece, DEFAULT_MAX_FRAME, |f| {
                frames += 1;
                bytes += f.payload.len();
            })
            .expect("valid stream");
        }
    });
    (allocs, frees, frames, bytes)
}

fn assert_idle(dec: &Decoder, what: &str) {
    assert!(!dec.is_mid_frame(), "{what}: decoder mid-frame");
    assert_eq!(dec.pending(), 0, "{what}: bytes pending");
    assert_eq!(dec.heap_bytes(), 0, "{what}: heap held");
}

// One #[test] so nothing else runs on this binary's threads while it
// measures (counting is per thread anyway).
#[test]
fn decode_allocations() {
    const BEATS: usize = 100_000;
    let mut beats = Vec::with_capacity(BEATS * HEADER_LEN);
    for i in 0..BEATS {
        beats.extend_from_slice(if i % 3 == 0 {
            &HEARTBEAT_RESPONSE
        } else {
            &HEARTBEAT_REQUEST
        });
    }

    // Heartbeats fed whole: one read holding all of them, and typical read sizes.
    for chunk in [beats.len(), 4096, 1500, HEADER_LEN] {
        let mut dec = Decoder::new();
        let (allocs, frees, frames, _) = feed_chunked(&mut dec, &beats, chunk);
        assert_eq!((allocs, frees), (0, 0), "heartbeats in chunks of {chunk}");
        assert_eq!(frames, BEATS, "chunks of {chunk}");
        assert_idle(&dec, "whole heartbeats");
    }

    // Heartbeats split at every possible point: chunk sizes 1..=2 headers put
    // read boundaries at every offset within a header (1 is byte at a time).
    for chunk in 1..=2 * HEADER_LEN + 1 {
        let mut dec = Decoder::new();
        let (allocs, frees, frames, _) = feed_chunked(&mut dec, &beats, chunk);
        assert_eq!((allocs, frees), (0, 0), "heartbeats in chunks of {chunk}");
        assert_eq!(frames, BEATS, "chunks of {chunk}");
        assert_idle(&dec, "split heartbeats");
    }
    // And one cut at each offset of a single heartbeat.
    for cut in 0..=HEADER_LEN {
        let mut dec = Decoder::new();
        let mut frames = 0;
        let (allocs, _) = measure(|| {
            dec.feed(&HEARTBEAT_REQUEST[..cut], DEFAULT_MAX_FRAME, |_| {
                frames += 1
            })
            .unwrap();
            dec.feed(&HEARTBEAT_REQUEST[cut..], DEFAULT_MAX_FRAME, |_| {
                frames += 1
            })
            .unwrap();
        });
        assert_eq!((allocs, frames), (0, 1), "heartbeat cut at {cut}");
    }

    // Whole data frames (empty to the largest allowed), mixed with heartbeats
    // and reserved frames, fed in one read: zero copy, zero allocation.
    let sizes = [0, 1, 7, 8, 100, 1400, 4096, DEFAULT_MAX_FRAME - HEADER_LEN];
    let mut mixed = Vec::new();
    let mut expected_bytes = 0;
    for &size in &sizes {
        encode_frame(FrameType::Data, &vec![0x5A; size], &mut mixed).unwrap();
        mixed.extend_from_slice(&HEARTBEAT_REQUEST);
        expected_bytes += size;
    }
    let mut dec = Decoder::new();
    let (allocs, frees, frames, bytes) = feed_chunked(&mut dec, &mixed, mixed.len());
    assert_eq!((allocs, frees), (0, 0), "whole data frames");
    assert_eq!((frames, bytes), (2 * sizes.len(), expected_bytes));
    assert_idle(&dec, "whole data frames");

    // A data frame whose header is split but whose payload then arrives whole
    // is still borrowed from the read: no allocation.
    let mut frame = Vec::new();
    encode_frame(FrameType::Data, &[7; 300], &mut frame).unwrap();
    let mut dec = Decoder::new();
    let (allocs, _) = measure(|| {
        dec.feed(&frame[..5], DEFAULT_MAX_FRAME, |_| panic!("incomplete"))
            .unwrap();
        dec.feed(&frame[5..], DEFAULT_MAX_FRAME, |f| {
            assert_eq!(f.payload.len(), 300)
        })
        .unwrap();
    });
    assert_eq!(allocs, 0, "split header, whole payload");

    // A reserved frame split mid-body is skipped by counting: no allocation.
    let mut reserved = Vec::new();
    reserved.extend_from_slice(&9i32.to_le_bytes());
    reserved.extend_from_slice(&1008i32.to_le_bytes());
    reserved.extend_from_slice(&[0; 1000]);
    let mut dec = Decoder::new();
    let (allocs, frees, frames, _) = feed_chunked(&mut dec, &reserved, 333);
    assert_eq!((allocs, frees, frames), (0, 0, 1), "split reserved frame");
    assert_idle(&dec, "split reserved frame");

    // A data payload split across reads is buffered: the counter sees it
    // (proving it counts), and every allocation is freed by the time the
    // frame has been delivered.
    let mut dec = Decoder::new();
    let (mut frames, mut mid_heap) = (0, 0);
    let (allocs, frees) = measure(|| {
        dec.feed(&frame[..100], DEFAULT_MAX_FRAME, |_| panic!("incomplete"))
            .unwrap();
        mid_heap = dec.heap_bytes();
        dec.feed(&frame[100..], DEFAULT_MAX_FRAME, |f| {
            assert_eq!(f.kind, Kind::Known(FrameType::Data));
            assert_eq!(f.payload, &[7; 300][..]);
            frames += 1;
        })
        .unwrap();
    });
    assert_eq!(frames, 1);
    assert!(mid_heap >= 100 - HEADER_LEN, "mid-frame heap {mid_heap}");
    assert!(
        allocs > 0,
        "a split data payload must allocate; is the counter working?"
    );
    assert_eq!(
        frees, 2,
        "the payload buffer and its box are released once the frame completes"
    );
    assert_idle(&dec, "after a split data frame");
}
