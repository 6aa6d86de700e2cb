//! Replies leave in the order of the requests, heartbeats and data alike,
//! however many requests one read brings.

use std::io::Write;
use std::time::Duration;

use lubdub::server::{ConnId, Context, Handler};

use crate::common::{connect, read_n, start};
use crate::support::{arrives_within, concat, data, REQUEST, RESPONSE};

/// Echoes every data frame from `on_data`; a payload starting with `big`
/// is answered with 40,000 bytes of its last byte instead.
struct Echo;

impl Handler for Echo {
    type State = ();
    fn on_data(&mut self, ctx: &mut Context<'_, ()>, id: ConnId, payload: &[u8]) {
        let reply = match payload.strip_prefix(b"big") {
            Some(tag) => vec![tag[0]; 40_000],
            None => payload.to_vec(),
        };
        ctx.send(id, &reply).expect("echo");
    }
}

#[test]
fn heartbeats_and_data_in_one_write_are_answered_in_request_order() {
    let server = start(Echo, |_| {});
    let mut peer = connect(server.addr);
    // One write of 40 bytes: the server reads all five requests at once, so
    // a reactor that answered heartbeats apart from data (say, counted
    // them and appended their replies after the read) would send
    // A, BB, resp, resp, resp.
    let burst = concat(&[&REQUEST, &data(b"A"), &REQUEST, &data(b"BB"), &REQUEST]);
    peer.write_all(&burst).unwrap();
    let expected = concat(&[&RESPONSE, &data(b"A"), &RESPONSE, &data(b"BB"), &RESPONSE]);
    assert_eq!(read_n(&mut peer, expected.len()), expected);
    assert_eq!(
        arrives_within(&mut peer, Duration::from_millis(50)),
        b"",
        "more than one reply per request"
    );
    let stats = *server.stop().stats();
    assert_eq!((stats.heartbeats, stats.data_frames), (3, 2), "{stats}");
    assert_eq!(stats.bytes_in, burst.len() as u64, "{stats}");
}

#[test]
fn request_order_holds_when_large_replies_are_written_in_the_middle_of_a_read() {
    // Two 40 kB replies pass the 64 KiB at which replies staged during a
    // read are written before the read is done: the heartbeat replies
    // staged around them must still leave between them, not after.
    let server = start(Echo, |_| {});
    let mut peer = connect(server.addr);
    let burst = concat(&[&REQUEST, &data(b"big1"), &REQUEST, &data(b"big2"), &REQUEST]);
    peer.write_all(&burst).unwrap();
    let expected = concat(&[
        &RESPONSE,
        &data(&[b'1'; 40_000]),
        &RESPONSE,
        &data(&[b'2'; 40_000]),
        &RESPONSE,
    ]);
    let got = read_n(&mut peer, expected.len());
    assert!(got == expected, "replies out of request order");
    assert_eq!(arrives_within(&mut peer, Duration::from_millis(50)), b"");
}
