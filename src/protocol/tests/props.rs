//! Property tests: the incremental decoder against the whole-stream
//! reference (`reference.rs`) over generated streams, split points, frame
//! limits and payload policies. `reference::check` states what is compared
//! after every feed.

use proptest::collection::vec;
use proptest::prelude::*;

use super::reference::check;
use super::*;

/// One piece of a generated stream.
#[derive(Clone, Debug)]
enum Piece {
    /// A heartbeat request (`false`) or response (`true`).
    Heartbeat(bool),
    /// A data frame with this payload.
    Data(Vec<u8>),
    /// A frame of a reserved (never 0, 1 or 2) type with this body.
    Reserved(i32, Vec<u8>),
    /// A header with any type and any length, usually malformed, and a few
    /// bytes after it.
    Header(i32, i32, Vec<u8>),
    /// Bytes that need not line up with anything.
    Junk(Vec<u8>),
}

impl Piece {
    fn write(&self, out: &mut Vec<u8>) {
        let frame = |ty: i32, body: &[u8]| raw(ty, (HEADER_LEN + body.len()) as i32, body);
        out.extend(match self {
            Piece::Heartbeat(false) => HEARTBEAT_REQUEST.to_vec(),
            Piece::Heartbeat(true) => HEARTBEAT_RESPONSE.to_vec(),
            Piece::Data(payload) => frame(FrameType::Data as i32, payload),
            Piece::Reserved(ty, body) => frame(*ty, body),
            Piece::Header(ty, len, tail) => raw(*ty, *len, tail),
            Piece::Junk(bytes) => bytes.clone(),
        });
    }
}

/// Type values that are interesting at the edges, or anything.
fn any_type() -> impl Strategy<Value = i32> {
    prop_oneof![(-1..=3i32), Just(i32::MIN), Just(i32::MAX), any::<i32>()]
}

/// Bodies up to 24 bytes: frames up to 32 bytes, so a small `max_frame`
/// admits some and rejects others.
fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=24)
}

/// A heartbeat or data frame.
fn known_frame() -> impl Strategy<Value = Piece> {
    prop_oneof![
        any::<bool>().prop_map(Piece::Heartbeat),
        body().prop_map(Piece::Data),
    ]
}

/// A well-formed frame of any kind (which `max_frame` may still reject).
fn frame() -> impl Strategy<Value = Piece> {
    let reserved = any_type().prop_map(|t| if (0..=2).contains(&t) { t + 3 } else { t });
    prop_oneof![
        3 => any::<bool>().prop_map(Piece::Heartbeat),
        3 => body().prop_map(Piece::Data),
        2 => (reserved, body()).prop_map(|(t, b)| Piece::Reserved(t, b)),
    ]
}

/// A piece that is most likely malformed.
fn malformed() -> impl Strategy<Value = Piece> {
    let len = prop_oneof![(-9..=40i32), Just(i32::MIN), Just(i32::MAX), any::<i32>()];
    let tail = || vec(any::<u8>(), 0..=8);
    prop_oneof![
        (any_type(), len, tail()).prop_map(|(t, l, tail)| Piece::Header(t, l, tail)),
        // A heartbeat with a body, or with a length below the header.
        (0..=1i32, prop_oneof![-9..=7i32, 9..=40i32], tail())
            .prop_map(|(t, l, tail)| Piece::Header(t, l, tail)),
        vec(any::<u8>(), 1..=8).prop_map(Piece::Junk),
    ]
}

/// Up to 16 frames, and in half the streams one malformed piece among them
/// (so frames come before it, to be delivered, and after it, not to be).
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let bad = proptest::option::weighted(0.5, (malformed(), any::<prop::sample::Index>()));
    (vec(frame(), 0..=16), bad).prop_map(|(mut pieces, bad)| {
        if let Some((piece, at)) = bad {
            pieces.insert(at.index(pieces.len() + 1), piece);
        }
        let mut out = Vec::new();
        for p in &pieces {
            p.write(&mut out);
        }
        out
    })
}

/// Limits below the header, among the generated frame sizes (at most 32
/// bytes), and above them.
fn max_frame() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => 0..=40usize,
        1 => 32..=64usize,
        1 => Just(DEFAULT_MAX_FRAME),
        1 => Just(usize::MAX),
    ]
}

/// Chunk lengths (the rest of the stream is fed as one last chunk under the
/// last policy), each with a policy drawn from `policy`: byte-sized,
/// header-sized and larger cuts, and empty feeds.
fn feeds(policy: impl Strategy<Value = Payloads>) -> impl Strategy<Value = Vec<(usize, Payloads)>> {
    let len = prop_oneof![0..=3usize, 0..=16usize, 0..=64usize];
    vec((len, policy), 1..=24)
}

fn any_policy() -> impl Strategy<Value = Payloads> {
    prop_oneof![Just(Payloads::Deliver), Just(Payloads::Skip)]
}

proptest! {
    // proptest's default of 256 cases each: about a third of a second for
    // all four in a debug build. `PROPTEST_CASES=20000` makes a longer hunt.

    #[test]
    fn frame_streams_split_anywhere_decode_as_the_reference(
        stream in stream(),
        feeds in feeds(Just(Payloads::Deliver)),
        max in max_frame(),
    ) {
        check(&stream, &feeds, max).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn random_bytes_split_anywhere_decode_as_the_reference(
        stream in vec(any::<u8>(), 0..=256),
        feeds in feeds(any_policy()),
        max in max_frame(),
    ) {
        check(&stream, &feeds, max).map_err(TestCaseError::fail)?;
    }

    /// Same kinds in the same order, every payload empty, no heap after
    /// any feed.
    #[test]
    fn skipping_payloads_reports_the_same_kinds_and_never_allocates(
        stream in stream(),
        feeds in feeds(Just(Payloads::Skip)),
        max in max_frame(),
    ) {
        check(&stream, &feeds, max).map_err(TestCaseError::fail)?;
    }

    /// A data frame is finished under the policy its header came in with.
    #[test]
    fn a_policy_change_mid_frame_finishes_the_frame_as_it_began(
        stream in stream(),
        feeds in feeds(any_policy()),
        max in max_frame(),
    ) {
        check(&stream, &feeds, max).map_err(TestCaseError::fail)?;
    }
}

/// `stream` fed leniently in the pieces `cuts` makes of it: the frames
/// delivered (kind and payload) and the bytes discarded.
fn lenient(stream: &[u8], cuts: &[usize], max: usize) -> (Vec<(Kind, Vec<u8>)>, usize) {
    let mut dec = Decoder::new();
    let mut frames = Vec::new();
    let mut dropped = 0;
    let mut rest = stream;
    for &cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
        let (piece, tail) = rest.split_at(cut.min(rest.len()));
        rest = tail;
        dropped += dec.feed_lenient(piece, max, Payloads::Deliver, |f| {
            frames.push((f.kind, f.payload.to_vec()))
        });
        assert!(dec.error().is_none(), "a lenient decoder never fails");
    }
    (frames, dropped)
}

/// The frames a strict decoder delivers for a stream it accepts whole.
fn strict(stream: &[u8], max: usize) -> Option<Vec<(Kind, Vec<u8>)>> {
    let mut frames = Vec::new();
    Decoder::new()
        .feed(stream, max, |f| frames.push((f.kind, f.payload.to_vec())))
        .ok()?;
    Some(frames)
}

proptest! {
    /// Where a strict decoder accepts a stream of known frames, a lenient
    /// one agrees with it frame for frame and discards nothing. (Reserved
    /// frames are taken for garbage when reading leniently.)
    #[test]
    fn lenient_agrees_with_strict_on_a_well_formed_stream(
        pieces in vec(known_frame(), 0..12),
        cuts in vec(0usize..40, 0..8),
    ) {
        let mut stream = Vec::new();
        for p in &pieces {
            p.write(&mut stream);
        }
        let expected = strict(&stream, DEFAULT_MAX_FRAME).expect("well formed");
        let (frames, dropped) = lenient(&stream, &cuts, DEFAULT_MAX_FRAME);
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(dropped, 0);
    }

    /// Text between known frames (the Qt welcome, or any ASCII) is dropped
    /// byte for byte and every frame around it is kept, however it is split.
    #[test]
    fn lenient_drops_exactly_the_text_between_frames_and_keeps_every_frame(
        parts in vec((vec(0x20u8..0x7f, 0..=40), any::<bool>(), body()), 0..8),
        cuts in vec(0usize..60, 0..8),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        let mut text_len = 0;
        for (text, heartbeat, payload) in &parts {
            stream.extend_from_slice(text);
            text_len += text.len();
            if *heartbeat {
                Piece::Heartbeat(true).write(&mut stream);
                expected.push((Kind::Known(FrameType::HeartbeatResponse), Vec::new()));
            } else {
                Piece::Data(payload.clone()).write(&mut stream);
                expected.push((Kind::Known(FrameType::Data), payload.clone()));
            }
        }
        let (frames, dropped) = lenient(&stream, &cuts, DEFAULT_MAX_FRAME);
        prop_assert_eq!(frames, expected);
        prop_assert_eq!(dropped, text_len);
    }

    /// Any bytes at all: no panic, no failure, and no more discarded than
    /// was fed.
    #[test]
    fn lenient_never_fails_on_any_bytes(
        stream in vec(any::<u8>(), 0..=256),
        cuts in vec(0usize..64, 0..8),
        max in max_frame(),
    ) {
        let (_, dropped) = lenient(&stream, &cuts, max);
        prop_assert!(dropped <= stream.len());
    }
}
