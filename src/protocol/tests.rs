use super::*;

/// A frame as the tests compare it: owned, so frames from different
/// feeds can be collected.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned {
    kind: Kind,
    payload: Vec<u8>,
}

/// Raw frame bytes with any `type`, any `len` and any body (so malformed
/// and reserved frames can be built).
fn raw(ty: i32, len: i32, body: &[u8]) -> Vec<u8> {
    let mut out = [0u8; HEADER_LEN];
    out[field::TYPE].copy_from_slice(&ty.to_le_bytes());
    out[field::LEN].copy_from_slice(&len.to_le_bytes());
    let mut v = out.to_vec();
    v.extend_from_slice(body);
    v
}

/// Builds a stream of frames and the frames a decoder must yield for it.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    frames: Vec<Owned>,
}

impl Stream {
    fn known(&mut self, t: FrameType, payload: &[u8]) -> &mut Self {
        encode_frame(t, payload, &mut self.bytes).unwrap();
        self.frames.push(Owned {
            kind: Kind::Known(t),
            payload: payload.to_vec(),
        });
        self
    }
    fn data(&mut self, len: usize, seed: u8) -> &mut Self {
        let payload: Vec<u8> = (0..len)
            .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
            .collect();
        self.known(FrameType::Data, &payload)
    }
    fn reserved(&mut self, ty: i32, body_len: usize) -> &mut Self {
        let body = vec![0xAB; body_len];
        self.bytes
            .extend(raw(ty, (HEADER_LEN + body_len) as i32, &body));
        self.frames.push(Owned {
            kind: Kind::Reserved(ty),
            payload: Vec::new(),
        });
        self
    }
}

/// Feeds `chunks` in order; returns the frames, the index of the feed
/// that failed (if any) and the error.
fn decode<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    max: usize,
) -> (Vec<Owned>, Option<(usize, DecodeError)>) {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let r = dec.feed(chunk, max, |f| {
            out.push(Owned {
                kind: f.kind,
                payload: f.payload.to_vec(),
            })
        });
        if let Err(e) = r {
            return (out, Some((i, e)));
        }
    }
    assert!(!dec.is_mid_frame(), "stream ended mid-frame: {dec:?}");
    assert_eq!(dec.pending(), 0);
    assert_eq!(dec.heap_bytes(), 0);
    (out, None)
}

/// Splits `bytes` at the (sorted, possibly repeated) `cuts`.
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &c in cuts {
        chunks.push(&bytes[start..c]);
        start = c;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Every kind of frame, some payloads shorter and some longer than a header.
fn small_mixed() -> Stream {
    let mut s = Stream::default();
    s.known(FrameType::HeartbeatRequest, &[])
        .known(FrameType::HeartbeatResponse, &[])
        .data(0, 1)
        .data(1, 2)
        .reserved(7, 3)
        .reserved(-1, 0)
        .data(5, 3)
        .reserved(i32::MIN, 0)
        .known(FrameType::HeartbeatRequest, &[])
        .data(13, 4)
        .reserved(3, 9)
        .known(FrameType::HeartbeatResponse, &[]);
    s
}

/// xorshift64: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn heartbeat_constants_match_the_wire_format() {
    assert_eq!(HEARTBEAT_REQUEST, [0, 0, 0, 0, 8, 0, 0, 0]);
    assert_eq!(HEARTBEAT_RESPONSE, [1, 0, 0, 0, 8, 0, 0, 0]);
    let mut out = Vec::new();
    encode_frame(FrameType::HeartbeatRequest, &[], &mut out).unwrap();
    encode_frame(FrameType::HeartbeatResponse, &[], &mut out).unwrap();
    assert_eq!(out[..HEADER_LEN], HEARTBEAT_REQUEST);
    assert_eq!(out[HEADER_LEN..], HEARTBEAT_RESPONSE);
}

#[test]
fn frame_type_try_from_i32() {
    assert_eq!(FrameType::try_from(0), Ok(FrameType::HeartbeatRequest));
    assert_eq!(FrameType::try_from(1), Ok(FrameType::HeartbeatResponse));
    assert_eq!(FrameType::try_from(2), Ok(FrameType::Data));
    assert_eq!(FrameType::try_from(3), Err(ReservedType(3)));
    assert_eq!(FrameType::try_from(-1), Err(ReservedType(-1)));
    for t in [
        FrameType::HeartbeatRequest,
        FrameType::HeartbeatResponse,
        FrameType::Data,
    ] {
        assert_eq!(FrameType::try_from(t as i32), Ok(t));
        assert_eq!(Kind::from_i32(t as i32), Kind::Known(t));
    }
    assert_eq!(Kind::from_i32(i32::MIN), Kind::Reserved(i32::MIN));
}

#[test]
fn encode_frame_writes_header_then_payload() {
    let mut out = vec![0xEE]; // appends, never clears
    encode_frame(FrameType::Data, b"abc", &mut out).unwrap();
    assert_eq!(out, [0xEE, 2, 0, 0, 0, 11, 0, 0, 0, b'a', b'b', b'c']);
}

#[test]
fn encode_rejects_heartbeat_payload_and_oversize() {
    let mut out = Vec::new();
    for t in [FrameType::HeartbeatRequest, FrameType::HeartbeatResponse] {
        assert_eq!(
            encode_frame(t, b"x", &mut out),
            Err(EncodeError::HeartbeatPayload {
                kind: t,
                payload_len: 1
            })
        );
    }
    assert!(out.is_empty(), "nothing is written on error");
    // `encode_frame` checks through `Header::new`; a 2 GiB payload is
    // tested by length alone.
    assert!(Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD).is_ok());
    assert_eq!(
        Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD + 1),
        Err(EncodeError::TooLarge {
            payload_len: MAX_PAYLOAD + 1
        })
    );
    assert_eq!(
        Header::new(Kind::Known(FrameType::Data), MAX_PAYLOAD)
            .unwrap()
            .frame_len(),
        i32::MAX as usize
    );
}

#[test]
fn header_encode_parse_round_trip() {
    let kinds = [
        Kind::Known(FrameType::HeartbeatRequest),
        Kind::Known(FrameType::HeartbeatResponse),
        Kind::Known(FrameType::Data),
        Kind::Reserved(3),
        Kind::Reserved(-1),
        Kind::Reserved(i32::MAX),
        Kind::Reserved(i32::MIN),
    ];
    for kind in kinds {
        for payload_len in [0, 1, 7, 8, 1000, MAX_PAYLOAD] {
            let Ok(h) = Header::new(kind, payload_len) else {
                assert!(matches!(kind, Kind::Known(t) if t.is_heartbeat()) && payload_len > 0);
                continue;
            };
            assert_eq!(h.kind(), kind);
            assert_eq!(h.payload_len(), payload_len);
            assert_eq!(h.frame_len(), payload_len + HEADER_LEN);
            let bytes = h.encode();
            assert_eq!(bytes[field::TYPE], kind.to_i32().to_le_bytes());
            assert_eq!(Header::parse(&bytes, usize::MAX), Ok(h));
        }
    }
    // A `Reserved` holding a known value is normalised.
    let h = Header::new(Kind::Reserved(2), 4).unwrap();
    assert_eq!(h.kind(), Kind::Known(FrameType::Data));
    assert_eq!(
        Header::new(Kind::Reserved(0), 0).unwrap().encode(),
        HEARTBEAT_REQUEST
    );
}

#[test]
fn decoder_is_small() {
    let size = std::mem::size_of::<Decoder>();
    assert!(size <= 16, "Decoder is {size} bytes");
}

#[test]
fn whole_stream_yields_the_frames_it_was_built_from() {
    let s = small_mixed();
    let (frames, err) = decode([&s.bytes[..]], DEFAULT_MAX_FRAME);
    assert_eq!(err, None);
    assert_eq!(frames, s.frames);
}

#[test]
fn every_single_and_double_split_point_decodes_the_same() {
    let s = small_mixed();
    let n = s.bytes.len();
    for a in 0..=n {
        let (frames, err) = decode(split(&s.bytes, &[a]), DEFAULT_MAX_FRAME);
        assert_eq!(err, None, "cut at {a}");
        assert_eq!(frames, s.frames, "cut at {a}");
        for b in a..=n {
            let (frames, err) = decode(split(&s.bytes, &[a, b]), DEFAULT_MAX_FRAME);
            assert_eq!(err, None, "cuts at {a}, {b}");
            assert_eq!(frames, s.frames, "cuts at {a}, {b}");
        }
    }
}

#[test]
fn byte_at_a_time_decodes_the_same() {
    let s = small_mixed();
    let (frames, err) = decode(s.bytes.chunks(1), DEFAULT_MAX_FRAME);
    assert_eq!(err, None);
    assert_eq!(frames, s.frames);
}

#[test]
fn random_many_cut_splits_decode_the_same() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = Stream::default();
    for i in 0..300 {
        match rng.below(6) {
            0 => s.known(FrameType::HeartbeatRequest, &[]),
            1 => s.known(FrameType::HeartbeatResponse, &[]),
            2 => s.data(rng.below(20), i as u8),
            3 => s.data(rng.below(5000), i as u8),
            4 => s.reserved(3 + rng.below(100) as i32, rng.below(300)),
            _ => s.reserved(-(rng.below(1000) as i32) - 1, rng.below(20)),
        };
    }
    let n = s.bytes.len();
    for round in 0..300 {
        let mut cuts: Vec<usize> = (0..1 + rng.below(200)).map(|_| rng.below(n + 1)).collect();
        cuts.sort_unstable();
        let (frames, err) = decode(split(&s.bytes, &cuts), DEFAULT_MAX_FRAME);
        assert_eq!(err, None, "round {round}");
        assert!(frames == s.frames, "round {round}, cuts {cuts:?}");
    }
}

/// Every malformed header, each with the error it must produce.
fn malformed(max: usize) -> Vec<(Vec<u8>, DecodeError)> {
    use DecodeError::*;
    use FrameType::*;
    let too_big = max as i32 + 1;
    let mut cases = vec![
        (raw(2, 0, &[]), LenTooSmall { len: 0 }),
        (raw(2, 3, &[]), LenTooSmall { len: 3 }),
        (raw(2, 7, &[]), LenTooSmall { len: 7 }),
        (raw(2, -1, &[]), LenTooSmall { len: -1 }),
        (raw(2, i32::MIN, &[]), LenTooSmall { len: i32::MIN }),
        (raw(0, 0, &[]), LenTooSmall { len: 0 }),
        (raw(1, 7, &[]), LenTooSmall { len: 7 }),
        (raw(9, 3, &[]), LenTooSmall { len: 3 }),
        (raw(-4, -8, &[]), LenTooSmall { len: -8 }),
        (raw(2, too_big, &[]), LenTooLarge { len: too_big, max }),
        (raw(2, i32::MAX, &[]), LenTooLarge { len: i32::MAX, max }),
        (raw(9, too_big, &[]), LenTooLarge { len: too_big, max }),
        (raw(0, too_big, &[]), LenTooLarge { len: too_big, max }),
    ];
    for t in [HeartbeatRequest, HeartbeatResponse] {
        for len in [9, 16] {
            // Even with the announced body present, the header alone is wrong.
            let body = vec![0; len as usize - HEADER_LEN];
            cases.push((raw(t as i32, len, &body), HeartbeatLen { kind: t, len }));
        }
    }
    cases
}

#[test]
fn malformed_headers_give_typed_errors_at_every_split_and_stop_delivery() {
    for max in [DEFAULT_MAX_FRAME, 100] {
        let mut before = Stream::default();
        before
            .known(FrameType::HeartbeatRequest, &[])
            .data(10, 9)
            .reserved(5, 2);
        for (bad, expected) in malformed(max) {
            let mut bytes = before.bytes.clone();
            let bad_header_end = bytes.len() + HEADER_LEN;
            bytes.extend_from_slice(&bad);
            bytes.extend_from_slice(&HEARTBEAT_REQUEST); // must never be delivered
            let mut splits: Vec<Vec<usize>> = (0..=bytes.len()).map(|c| vec![c]).collect();
            splits.push((1..bytes.len()).collect()); // byte at a time
            for cuts in splits {
                let chunks = split(&bytes, &cuts);
                let (frames, err) = decode(chunks.iter().copied(), max);
                assert_eq!(frames, before.frames, "{expected:?} cuts {cuts:?}");
                let (failed_at, e) = err.expect("error expected");
                assert_eq!(e, expected, "cuts {cuts:?}");
                // The error comes with the feed holding the header's last
                // byte, not later.
                let ends: Vec<usize> = chunks
                    .iter()
                    .scan(0, |end, c| Some(*end + c.len()).inspect(|&e| *end = e))
                    .collect();
                let first_complete = ends.iter().position(|&e| e >= bad_header_end).unwrap();
                assert_eq!(failed_at, first_complete, "{expected:?} cuts {cuts:?}");
            }
        }
    }
}

#[test]
fn a_failed_decoder_stays_failed() {
    let mut dec = Decoder::new();
    let bad = raw(2, 3, &[]);
    let mut seen = 0;
    assert_eq!(
        dec.feed(&bad, DEFAULT_MAX_FRAME, |_| seen += 1),
        Err(DecodeError::LenTooSmall { len: 3 })
    );
    for _ in 0..3 {
        let r = dec.feed(&HEARTBEAT_REQUEST, DEFAULT_MAX_FRAME, |_| seen += 1);
        assert_eq!(r, Err(DecodeError::LenTooSmall { len: 3 }));
        assert_eq!(dec.feed(&[], DEFAULT_MAX_FRAME, |_| seen += 1), r);
    }
    assert_eq!(seen, 0);
    assert_eq!(dec.error(), Some(DecodeError::LenTooSmall { len: 3 }));
    assert!(!dec.is_mid_frame());
    assert_eq!(dec.pending(), 0);
}

#[test]
fn header_errors_do_not_wait_for_the_body() {
    // Only the eight header bytes of a 10 MB frame: rejected at once.
    let mut dec = Decoder::new();
    let r = dec.feed(&raw(2, 10_000_000, &[]), DEFAULT_MAX_FRAME, |_| {
        panic!("no frame")
    });
    assert_eq!(
        r,
        Err(DecodeError::LenTooLarge {
            len: 10_000_000,
            max: DEFAULT_MAX_FRAME
        })
    );
    // A valid header announcing the largest frame waits, holding no heap.
    let mut dec = Decoder::new();
    dec.feed(
        &raw(2, DEFAULT_MAX_FRAME as i32, &[]),
        DEFAULT_MAX_FRAME,
        |_| panic!("no frame"),
    )
    .unwrap();
    assert!(dec.is_mid_frame());
    assert_eq!(dec.pending(), HEADER_LEN);
    assert_eq!(dec.heap_bytes(), 0);
}

#[test]
fn data_frame_of_exactly_max_frame_is_accepted_one_more_is_not() {
    for max in [HEADER_LEN, 9, 100, DEFAULT_MAX_FRAME] {
        let mut s = Stream::default();
        s.data(max - HEADER_LEN, 1)
            .known(FrameType::HeartbeatResponse, &[]);
        let (frames, err) = decode([&s.bytes[..]], max);
        assert_eq!((frames, err), (s.frames.clone(), None), "max {max}");
        let (frames, err) = decode(split(&s.bytes, &[HEADER_LEN + 1]), max);
        assert_eq!((frames, err), (s.frames.clone(), None), "max {max}, split");

        let mut over = Vec::new();
        encode_frame(FrameType::Data, &vec![0; max + 1 - HEADER_LEN], &mut over).unwrap();
        let (frames, err) = decode([&over[..]], max);
        assert!(frames.is_empty());
        assert_eq!(
            err,
            Some((
                0,
                DecodeError::LenTooLarge {
                    len: max as i32 + 1,
                    max
                }
            ))
        );
    }
}

#[test]
fn max_frame_below_the_header_still_admits_heartbeats() {
    let mut s = Stream::default();
    s.known(FrameType::HeartbeatRequest, &[]).data(0, 0);
    let (frames, err) = decode([&s.bytes[..]], 0);
    assert_eq!((frames, err), (s.frames, None));
    let mut dec = Decoder::new();
    let r = dec.feed(&raw(2, 9, &[0]), 3, |_| {});
    assert_eq!(
        r,
        Err(DecodeError::LenTooLarge {
            len: 9,
            max: HEADER_LEN
        })
    );
}

#[test]
fn payloads_lying_whole_in_the_input_are_borrowed_not_copied() {
    let mut s = Stream::default();
    s.data(100, 5);
    let within = |input: &[u8], p: &[u8]| {
        let range = input.as_ptr_range();
        range.start <= p.as_ptr() && p.as_ptr_range().end <= range.end
    };
    let mut dec = Decoder::new();
    let mut hits = 0;
    dec.feed(&s.bytes, DEFAULT_MAX_FRAME, |f| {
        assert!(within(&s.bytes, f.payload));
        hits += 1;
    })
    .unwrap();
    // Header split, payload whole in the second read: still borrowed.
    let (first, second) = s.bytes.split_at(3);
    dec.feed(first, DEFAULT_MAX_FRAME, |_| panic!("incomplete"))
        .unwrap();
    dec.feed(second, DEFAULT_MAX_FRAME, |f| {
        assert!(within(second, f.payload));
        assert_eq!(f.payload, &s.frames[0].payload[..]);
        hits += 1;
    })
    .unwrap();
    assert_eq!(hits, 2);
    assert_eq!(dec.heap_bytes(), 0);
}

#[test]
fn reserved_frames_are_skipped_by_counting_and_reported_on_completion() {
    let bytes = raw(-7, 13, &[1, 2, 3, 4, 5]);
    let mut dec = Decoder::new();
    let mut frames = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        dec.feed(std::slice::from_ref(b), DEFAULT_MAX_FRAME, |f| {
            frames.push((f.kind, f.payload.len()))
        })
        .unwrap();
        assert_eq!(dec.heap_bytes(), 0, "byte {i}");
        if i + 1 < bytes.len() {
            assert!(
                frames.is_empty(),
                "reported before byte {i} completed the frame"
            );
            assert_eq!(dec.pending(), i + 1);
            assert!(dec.is_mid_frame());
        }
    }
    assert_eq!(frames, [(Kind::Reserved(-7), 0)]);
    assert!(!dec.is_mid_frame());
    // Whole in one read, the payload is not handed out either.
    dec.feed(&bytes, DEFAULT_MAX_FRAME, |f| assert!(f.payload.is_empty()))
        .unwrap();
}

#[test]
fn split_payload_buffer_tracks_bytes_received_and_is_released() {
    let mut s = Stream::default();
    s.data(1000, 3);
    let mut dec = Decoder::new();
    let mut got = Vec::new();
    dec.feed(&s.bytes[..HEADER_LEN], DEFAULT_MAX_FRAME, |_| {
        panic!("incomplete")
    })
    .unwrap();
    assert_eq!(
        dec.heap_bytes(),
        0,
        "nothing is allocated before payload bytes arrive"
    );
    for (i, b) in s.bytes[HEADER_LEN..].iter().enumerate() {
        dec.feed(std::slice::from_ref(b), DEFAULT_MAX_FRAME, |f| {
            got.push(f.payload.to_vec())
        })
        .unwrap();
        if got.is_empty() {
            let received = i + 1;
            assert_eq!(dec.pending(), HEADER_LEN + received);
            let held = dec.heap_bytes();
            assert!(
                held >= received && held <= 1000 && held <= 2 * received,
                "{held} for {received}"
            );
        }
    }
    assert_eq!(got, [s.frames[0].payload.clone()]);
    assert_eq!(
        (dec.pending(), dec.heap_bytes(), dec.is_mid_frame()),
        (0, 0, false)
    );
}

#[test]
fn skipped_data_payloads_are_never_buffered_and_frames_still_counted() {
    let mut s = Stream::default();
    s.known(FrameType::HeartbeatRequest, &[])
        .data(1000, 3)
        .reserved(9, 5)
        .data(0, 1)
        .known(FrameType::HeartbeatResponse, &[]);
    // The frames a skipping decoder reports: the same kinds, no payloads.
    let expected: Vec<(Kind, usize)> = s.frames.iter().map(|f| (f.kind, 0)).collect();
    for chunk in [1, 3, 8, 100, s.bytes.len()] {
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        for piece in s.bytes.chunks(chunk) {
            dec.feed_with(piece, DEFAULT_MAX_FRAME, Payloads::Skip, |f| {
                got.push((f.kind, f.payload.len()))
            })
            .unwrap();
            assert_eq!(dec.heap_bytes(), 0, "chunks of {chunk}");
        }
        assert_eq!(got, expected, "chunks of {chunk}");
        assert!(!dec.is_mid_frame());
    }
}

#[test]
fn lenient_discards_only_what_cannot_start_a_frame_and_keeps_every_reply() {
    // The original Qt server's welcome, and a reply in the same read; then
    // garbage between two replies, split at every point.
    let welcome = b"Welcome to the heartbeat server!!!\r\n";
    let mut stream = welcome.to_vec();
    stream.extend_from_slice(&HEARTBEAT_RESPONSE);
    stream.extend_from_slice(b"\x00\x01junk");
    stream.extend_from_slice(&HEARTBEAT_RESPONSE);
    stream.extend_from_slice(&HEARTBEAT_REQUEST);
    for cut in 0..=stream.len() {
        let mut dec = Decoder::new();
        let mut kinds = Vec::new();
        let mut dropped = 0;
        for piece in [&stream[..cut], &stream[cut..]] {
            dropped += dec.feed_lenient(piece, DEFAULT_MAX_FRAME, Payloads::Skip, |f| {
                kinds.push(f.kind)
            });
        }
        assert_eq!(
            kinds,
            [
                Kind::Known(FrameType::HeartbeatResponse),
                Kind::Known(FrameType::HeartbeatResponse),
                Kind::Known(FrameType::HeartbeatRequest)
            ],
            "cut at {cut}"
        );
        assert_eq!(dropped, welcome.len() + 6, "cut at {cut}");
        assert!(!dec.is_mid_frame() && dec.error().is_none());
    }
}

#[test]
fn a_skipped_data_frame_is_reported_only_when_its_last_byte_is_in() {
    let mut s = Stream::default();
    s.data(20, 0);
    let mut dec = Decoder::new();
    let mut reported = 0;
    for (i, b) in s.bytes.iter().enumerate() {
        dec.feed_with(
            std::slice::from_ref(b),
            DEFAULT_MAX_FRAME,
            Payloads::Skip,
            |f| {
                assert_eq!(f.kind, Kind::Known(FrameType::Data));
                reported += 1;
            },
        )
        .unwrap();
        assert_eq!(reported, usize::from(i + 1 == s.bytes.len()), "byte {i}");
    }
    // Header errors are still reported at once when skipping.
    let mut dec = Decoder::new();
    let e = dec.feed_with(&raw(2, 1 << 30, &[]), 1024, Payloads::Skip, |_| {});
    assert!(matches!(e, Err(DecodeError::LenTooLarge { .. })), "{e:?}");
}

#[test]
fn missing_is_the_fewest_bytes_that_complete_a_frame() {
    let mut dec = Decoder::new();
    assert_eq!(dec.missing(), HEADER_LEN, "between frames: a heartbeat");
    dec.feed(&HEARTBEAT_REQUEST[..3], DEFAULT_MAX_FRAME, |_| {})
        .unwrap();
    assert_eq!(dec.missing(), HEADER_LEN - 3);
    // A data frame of 8 + 10 bytes, 2 of its payload in: 8 to go, whether
    // the payload is delivered (buffered) or skipped.
    for payloads in [Payloads::Deliver, Payloads::Skip] {
        let mut dec = Decoder::new();
        let frame = raw(2, 18, &[7; 10]);
        dec.feed_with(&frame[..10], DEFAULT_MAX_FRAME, payloads, |_| {})
            .unwrap();
        assert_eq!(dec.missing(), 8, "{payloads:?}");
    }
    // After an error, nothing completes.
    let mut dec = Decoder::new();
    assert!(dec
        .feed(&raw(0, 3, &[]), DEFAULT_MAX_FRAME, |_| {})
        .is_err());
    assert_eq!(dec.missing(), usize::MAX);
}

#[test]
fn pending_and_mid_frame_follow_a_split_header() {
    let mut dec = Decoder::new();
    assert_eq!((dec.pending(), dec.is_mid_frame()), (0, false));
    for i in 0..HEADER_LEN - 1 {
        dec.feed(&HEARTBEAT_RESPONSE[i..i + 1], DEFAULT_MAX_FRAME, |_| {
            panic!("incomplete")
        })
        .unwrap();
        assert_eq!((dec.pending(), dec.is_mid_frame()), (i + 1, true));
    }
    let mut n = 0;
    dec.feed(
        &HEARTBEAT_RESPONSE[HEADER_LEN - 1..],
        DEFAULT_MAX_FRAME,
        |f| {
            assert_eq!(f.kind, Kind::Known(FrameType::HeartbeatResponse));
            n += 1;
        },
    )
    .unwrap();
    assert_eq!((n, dec.pending(), dec.is_mid_frame()), (1, 0, false));
}

#[test]
fn error_messages_are_one_human_line() {
    assert_eq!(
        DecodeError::LenTooSmall { len: 3 }.to_string(),
        "frame length 3 is below the 8-byte header"
    );
    assert_eq!(
        DecodeError::LenTooLarge {
            len: 70000,
            max: 65536
        }
        .to_string(),
        "frame length 70000 exceeds the 65536-byte limit"
    );
    assert_eq!(
        DecodeError::HeartbeatLen {
            kind: FrameType::HeartbeatResponse,
            len: 9
        }
        .to_string(),
        "heartbeat response has frame length 9, not 8"
    );
    let mut lines: Vec<String> = malformed(100).iter().map(|(_, e)| e.to_string()).collect();
    lines.push(
        EncodeError::TooLarge {
            payload_len: usize::MAX,
        }
        .to_string(),
    );
    lines.push(
        EncodeError::HeartbeatPayload {
            kind: FrameType::HeartbeatRequest,
            payload_len: 1,
        }
        .to_string(),
    );
    lines.push(ReservedType(-3).to_string());
    lines.push(Kind::Reserved(9).to_string());
    for line in lines {
        assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
        assert_eq!(line.trim(), line);
    }
}

/// Properties over generated streams, against a whole-stream reference decoder.
mod props;
/// The reference decoder and the per-feed check (shared with the fuzz target).
mod reference;

#[test]
fn a_failed_decoder_keeps_the_bytes_it_failed_on_and_a_partial_header_is_seen() {
    // Text split across reads: the header is assembled from both.
    let mut dec = Decoder::new();
    dec.feed(b"GET", DEFAULT_MAX_FRAME, |_| panic!("no frame"))
        .unwrap();
    assert_eq!(dec.partial_header(), b"GET");
    assert_eq!(dec.failed_header(), None);
    let r = dec.feed(b" / HTTP/1.1\r\n", DEFAULT_MAX_FRAME, |_| {
        panic!("no frame")
    });
    assert!(r.is_err());
    assert_eq!(dec.failed_header(), Some(*b"GET / HT"));
    assert_eq!(dec.partial_header(), b"");
    // Between frames there is no partial header.
    let mut dec = Decoder::new();
    dec.feed(&HEARTBEAT_REQUEST, DEFAULT_MAX_FRAME, |_| {})
        .unwrap();
    assert_eq!(dec.partial_header(), b"");
}
