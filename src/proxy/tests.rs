//! Every header both balancers and the specification send, fed one byte
//! at a time; garbage, overlong and malformed headers refused as early as
//! the bytes allow; and, as properties over generated input, that a verdict
//! once reached never changes as more bytes come.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::protocol::HEARTBEAT_REQUEST;

/// A v2 header: the signature, `version_command` (0x21 PROXY, 0x20
/// LOCAL), `family_protocol` (0x11 TCP over IPv4, 0x21 over IPv6, 0x00
/// unspecified), then `body` with its length.
fn v2(version_command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(version_command);
    h.push(family_protocol);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_ipv4(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        unreachable!()
    };
    let mut body = Vec::new();
    body.extend(s.ip().octets());
    body.extend(d.ip().octets());
    body.extend(s.port().to_be_bytes());
    body.extend(d.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    v2(0x21, 0x11, &body)
}

fn v2_ipv6(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V6(s), SocketAddr::V6(d)) = (src, dst) else {
        unreachable!()
    };
    let mut body = Vec::new();
    body.extend(s.ip().octets());
    body.extend(d.ip().octets());
    body.extend(s.port().to_be_bytes());
    body.extend(d.port().to_be_bytes());
    v2(0x21, 0x21, &body)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxied(src: &str, dst: &str) -> Addresses {
    Addresses::Proxied {
        source: addr(src),
        destination: addr(dst),
    }
}

/// Feeds `header` (followed by a heartbeat) one byte more at a time, as a
/// peer that sends it byte by byte would be read: incomplete for every
/// proper prefix, the same whole header from its last byte on, and what
/// follows it untouched.
fn byte_by_byte(header: &[u8], version: Version, addresses: Addresses) {
    let stream = [header, &HEARTBEAT_REQUEST[..]].concat();
    for k in 0..header.len() {
        assert_eq!(
            parse(&stream[..k]),
            Ok(Parsed::Incomplete),
            "{k} of {} bytes: {:?}",
            header.len(),
            String::from_utf8_lossy(&stream[..k])
        );
    }
    let whole = Header {
        len: header.len(),
        version,
        addresses,
    };
    for k in header.len()..=stream.len() {
        assert_eq!(
            parse(&stream[..k]),
            Ok(Parsed::Complete(whole)),
            "{k} bytes"
        );
    }
    assert_eq!(stream[whole.len..], HEARTBEAT_REQUEST);
}

#[test]
fn v1_tcp4_byte_by_byte() {
    // Every prefix, including the one ppp alone takes for a bad port:
    // `... 56324 ` with the destination port still to come.
    let line = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 8898\r\n";
    byte_by_byte(
        line,
        Version::V1,
        proxied("192.0.2.7:56324", "198.51.100.1:8898"),
    );
}

#[test]
fn v1_tcp6_byte_by_byte() {
    let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 8898\r\n";
    byte_by_byte(
        line,
        Version::V1,
        proxied("[2001:db8::7]:56324", "[2001:db8::1]:8898"),
    );
}

#[test]
fn v1_at_its_longest_byte_by_byte() {
    let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), 104);
    let all = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535";
    byte_by_byte(line, Version::V1, proxied(all, all));
    // The specification's worst case, 107 bytes, is UNKNOWN with the
    // longest addresses after it.
    let line = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(line.len(), V1_MAX_LEN);
    byte_by_byte(line, Version::V1, Addresses::Unknown);
}

#[test]
fn v1_unknown_leaves_the_peer_standing() {
    byte_by_byte(b"PROXY UNKNOWN\r\n", Version::V1, Addresses::Unknown);
    // The specification lets a sender put anything after UNKNOWN.
    byte_by_byte(
        b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        Version::V1,
        Addresses::Unknown,
    );
    let Ok(Parsed::Complete(h)) = parse(b"PROXY UNKNOWN\r\n") else {
        panic!()
    };
    assert_eq!(h.source(), None);
}

#[test]
fn v2_ipv4_byte_by_byte() {
    let h = v2_ipv4(addr("192.0.2.7:56324"), addr("198.51.100.1:8898"), &[]);
    assert_eq!(h.len(), 28);
    byte_by_byte(
        &h,
        Version::V2,
        proxied("192.0.2.7:56324", "198.51.100.1:8898"),
    );
}

#[test]
fn v2_ipv6_byte_by_byte() {
    let h = v2_ipv6(addr("[2001:db8::7]:56324"), addr("[2001:db8::1]:8898"));
    assert_eq!(h.len(), 52);
    byte_by_byte(
        &h,
        Version::V2,
        proxied("[2001:db8::7]:56324", "[2001:db8::1]:8898"),
    );
}

#[test]
fn v2_with_tlvs_byte_by_byte() {
    // An AWS-style VPC endpoint id (type 0xEA) and a NOOP (0x04) padding.
    let mut tlvs = vec![0xEA, 0, 23, 0x01];
    tlvs.extend_from_slice(b"vpce-0123456789abcdef0");
    tlvs.extend_from_slice(&[0x04, 0, 3, 0, 0, 0]);
    let h = v2_ipv4(addr("10.1.2.3:4000"), addr("10.0.0.1:8898"), &tlvs);
    byte_by_byte(&h, Version::V2, proxied("10.1.2.3:4000", "10.0.0.1:8898"));
}

#[test]
fn v2_local_is_the_balancers_own_connection() {
    // What HAProxy's health checks send: LOCAL, unspecified, no body.
    byte_by_byte(&v2(0x20, 0x00, &[]), Version::V2, Addresses::Local);
    // LOCAL with addresses in it: they are ignored.
    let mut h = v2_ipv4(addr("192.0.2.7:1"), addr("198.51.100.1:2"), &[]);
    h[12] = 0x20;
    byte_by_byte(&h, Version::V2, Addresses::Local);
    let Ok(Parsed::Complete(h)) = parse(&h) else {
        panic!()
    };
    assert_eq!(h.source(), None);
}

#[test]
fn v2_without_ip_addresses_leaves_the_peer_standing() {
    byte_by_byte(&v2(0x21, 0x00, &[]), Version::V2, Addresses::Unknown);
    // UNIX stream sockets: 108 bytes each way.
    byte_by_byte(&v2(0x21, 0x31, &[0; 216]), Version::V2, Addresses::Unknown);
}

#[test]
fn anything_that_is_not_a_header_is_refused_at_its_first_wrong_byte() {
    // A lubdub client that bypassed the balancer: its first byte.
    assert_eq!(parse(&HEARTBEAT_REQUEST[..1]), Err(HeaderError::NotProxy));
    assert_eq!(parse(b"G"), Err(HeaderError::NotProxy));
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(HeaderError::NotProxy));
    // The prefix up to its last byte, then a wrong one.
    assert_eq!(parse(b"PROXY"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PROXY\r\n"), Err(HeaderError::NotProxy));
    assert_eq!(parse(b"PROXX "), Err(HeaderError::NotProxy));
    for k in 1..V2_SIGNATURE.len() {
        let mut sig = V2_SIGNATURE.to_vec();
        assert_eq!(parse(&sig[..k]), Ok(Parsed::Incomplete));
        sig[k] ^= 0x40;
        assert_eq!(parse(&sig[..=k]), Err(HeaderError::NotProxy), "byte {k}");
    }
}

#[test]
fn overlong_headers_are_refused_without_waiting_for_them() {
    // v1: no `\r` among the first 106 bytes can never end in time.
    let mut line = b"PROXY TCP4 ".to_vec();
    line.resize(V1_MAX_LEN - 2, b'1');
    assert_eq!(parse(&line), Ok(Parsed::Incomplete));
    line.push(b'1');
    assert_eq!(parse(&line), Err(HeaderError::TooLong(Version::V1)));
    // A `\r` as byte 107 is one too late.
    line.push(b'\r');
    assert_eq!(parse(&line), Err(HeaderError::TooLong(Version::V1)));
    // v2: refused on its 16th byte when it announces more than the bound,
    // and waited for when it announces exactly the bound.
    let over = v2(0x21, 0x11, &[0; MAX_HEADER_LEN - V2_FIXED_LEN + 1]);
    assert_eq!(
        parse(&over[..V2_FIXED_LEN]),
        Err(HeaderError::TooLong(Version::V2))
    );
    let mut longest = v2_ipv4(addr("10.0.0.2:1"), addr("10.0.0.1:2"), &[]);
    let room = MAX_HEADER_LEN - longest.len() - 3;
    let mut tlv = vec![0x04];
    tlv.extend_from_slice(&(room as u16).to_be_bytes());
    tlv.resize(3 + room, 0);
    longest = v2_ipv4(addr("10.0.0.2:1"), addr("10.0.0.1:2"), &tlv);
    assert_eq!(longest.len(), MAX_HEADER_LEN);
    assert_eq!(parse(&longest[..V2_FIXED_LEN]), Ok(Parsed::Incomplete));
    assert!(matches!(parse(&longest), Ok(Parsed::Complete(h)) if h.len == MAX_HEADER_LEN));
    // 0xFFFF announced: refused, not held.
    let mut huge = v2(0x21, 0x11, &[]);
    huge[14..16].copy_from_slice(&[0xFF, 0xFF]);
    assert_eq!(parse(&huge), Err(HeaderError::TooLong(Version::V2)));
}

#[test]
fn malformed_headers_are_refused_with_a_reason() {
    let v1_bad = [
        (
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 8898\r\r"[..],
            "\\r not followed",
        ),
        (
            b"PROXY TCP4 192.0.2.256 198.51.100.1 56324 8898\r\n",
            "bad address",
        ),
        (
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",
            "bad address",
        ),
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 8898\r\n",
            "bad port",
        ),
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 056 8898\r\n",
            "bad port",
        ),
        (b"PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n", "protocol"),
        (b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n", "bad port"),
        (
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",
            "PROXY, a protocol",
        ),
        (b"PROXY TCP4 \xff 198.51.100.1 1 2\r\n", "not text"),
    ];
    for (line, why) in v1_bad {
        match parse(line) {
            Err(HeaderError::Malformed(Version::V1, w)) if w.contains(why) => {}
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }
    let ok = v2_ipv4(addr("192.0.2.7:1"), addr("198.51.100.1:2"), &[]);
    let with = |at: usize, byte: u8| {
        let mut h = ok.clone();
        h[at] = byte;
        h
    };
    let v2_bad = [
        (with(12, 0x31), "version"),
        (with(12, 0x22), "command"),
        (with(13, 0x41), "family"),
        (with(13, 0x13), "protocol"),
        (with(13, 0x12), "UDP"),
        (v2(0x21, 0x21, &[0; 12]), "too short"),
        // A TLV announcing more than is left.
        (
            v2_ipv4(addr("192.0.2.7:1"), addr("198.51.100.1:2"), &[4, 0, 9, 0]),
            "TLVs",
        ),
        // Two bytes left over: too few for a TLV.
        (
            v2_ipv4(addr("192.0.2.7:1"), addr("198.51.100.1:2"), &[4, 0]),
            "TLVs",
        ),
    ];
    for (h, why) in v2_bad {
        match parse(&h) {
            Err(HeaderError::Malformed(Version::V2, w)) if w.contains(why) => {}
            other => panic!("{h:02x?} ({why}): {other:?}"),
        }
    }
    // A bad fixed part is refused on its 16th byte, before the rest.
    assert!(matches!(
        parse(&with(12, 0x31)[..V2_FIXED_LEN]),
        Err(HeaderError::Malformed(Version::V2, _))
    ));
}

#[test]
fn errors_say_what_went_wrong() {
    assert_eq!(
        HeaderError::TooLong(Version::V2).to_string(),
        "PROXY v2 header longer than 512 bytes"
    );
    assert_eq!(
        HeaderError::Malformed(Version::V1, "bad port").to_string(),
        "malformed PROXY v1 header: bad port"
    );
}

/// A valid header of either version with any addresses.
fn any_header() -> impl Strategy<Value = Vec<u8>> {
    let v4 = (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(s, d, sp, dp)| {
        (
            SocketAddr::from((Ipv4Addr::from(s), sp)),
            SocketAddr::from((Ipv4Addr::from(d), dp)),
        )
    });
    let v6 =
        (any::<u128>(), any::<u128>(), any::<u16>(), any::<u16>()).prop_map(|(s, d, sp, dp)| {
            (
                SocketAddr::from((Ipv6Addr::from(s), sp)),
                SocketAddr::from((Ipv6Addr::from(d), dp)),
            )
        });
    prop_oneof![
        v4.clone().prop_map(|(s, d)| format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        )
        .into_bytes()),
        v6.clone().prop_map(|(s, d)| format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        )
        .into_bytes()),
        (v4, vec(any::<u8>(), 0..40)).prop_map(|((s, d), value)| {
            let mut tlv = vec![0x04];
            tlv.extend_from_slice(&(value.len() as u16).to_be_bytes());
            tlv.extend_from_slice(&value);
            v2_ipv4(s, d, &tlv)
        }),
        v6.prop_map(|(s, d)| v2_ipv6(s, d)),
        Just(v2(0x20, 0x00, &[])),
    ]
}

proptest! {
    /// A valid header is incomplete for every proper prefix and whole from
    /// its last byte on, whatever follows it; its addresses are the ones
    /// written.
    #[test]
    fn a_valid_header_completes_exactly_at_its_last_byte(
        header in any_header(),
        after in vec(any::<u8>(), 0..16),
    ) {
        let stream = [&header[..], &after[..]].concat();
        for k in 0..header.len() {
            prop_assert_eq!(parse(&stream[..k]), Ok(Parsed::Incomplete));
        }
        let Ok(Parsed::Complete(whole)) = parse(&stream) else {
            return Err(TestCaseError::fail(format!("{:?}", parse(&stream))));
        };
        prop_assert_eq!(whole.len, header.len());
    }

    /// On any bytes at all: no panic, never "incomplete" once the bound is
    /// reached, and a verdict, once given, is the one every longer input
    /// gets — an error is never taken back by more bytes, a header never
    /// changes.
    #[test]
    fn a_verdict_once_given_stands(
        start in prop_oneof![
            Just(Vec::new()),
            Just(V1_PREFIX.to_vec()),
            Just(V2_SIGNATURE.to_vec()),
            any_header().prop_map(|h| h[..h.len() / 2].to_vec()),
        ],
        tail in vec(prop_oneof![any::<u8>(), Just(b' '), Just(b'\r'), Just(b'\n'), Just(b'1')], 0..600),
    ) {
        let input = [&start[..], &tail[..]].concat();
        let mut verdict: Option<Result<Parsed, HeaderError>> = None;
        for k in 0..=input.len() {
            let now = parse(&input[..k]);
            if k >= MAX_HEADER_LEN {
                prop_assert_ne!(now, Ok(Parsed::Incomplete));
            }
            if let Ok(Parsed::Complete(h)) = now {
                prop_assert!(h.len <= k && h.len <= MAX_HEADER_LEN);
            }
            match verdict {
                Some(v) => prop_assert_eq!(now, v, "{} bytes", k),
                None if now != Ok(Parsed::Incomplete) => verdict = Some(now),
                None => {}
            }
        }
    }
}
