//! The PROXY protocol header a load balancer sends in front of a
//! connection, so that the server learns the client's own address.
//!
//! A balancer in TCP mode — HAProxy with `send-proxy` or `send-proxy-v2`,
//! Envoy's `proxy_protocol` upstream transport socket, an AWS Network Load
//! Balancer with proxy protocol v2 turned on — opens a connection of its own
//! to the server for each client and, before any byte of the client's,
//! sends one header naming the client's address and the address the client
//! connected to. Version 1 is one text line, version 2 a binary block; both
//! are specified in HAProxy's `proxy-protocol.txt`.
//!
//! [`parse`] says what the bytes a connection has received so far hold: not
//! all of a header yet ([`Parsed::Incomplete`]), a whole header and how long
//! it is — what follows it is the client's own stream
//! ([`Parsed::Complete`]) — or something that can never become one
//! ([`HeaderError`]). It does no IO and reads no clock. The server calls it
//! on what the kernel holds for the socket (peeking, so nothing is copied
//! out), which makes a header split across any number of reads cost no
//! buffer; its deadline for the header is the reactor's business
//! (`Config::proxy_header_timeout`).
//!
//! # Bounds
//!
//! - **v1**: at most [`V1_MAX_LEN`] (107) bytes, the final `\r\n` included —
//!   the specification's own limit. A line with no `\r` by then is refused.
//! - **v2**: 16 fixed bytes and the length they announce, a 16-bit field
//!   (up to 64 KiB). Accepted here up to [`MAX_HEADER_LEN`] (512) bytes in
//!   all: IPv6 addresses (36 bytes) with 460 bytes of TLVs — room for an AWS
//!   VPC endpoint id, HAProxy's unique id (at most 128 bytes) and an SNI
//!   name (at most 255) together — or UNIX addresses (216 bytes) with 280.
//!   A longer announcement is refused as soon as its 16 bytes are in,
//!   before any of the rest has been waited for.
//!
//! # What is decided here, and what `ppp` parses
//!
//! Whether a header is complete is decided here, from the framing alone: a
//! v1 line ends at its `\r\n`, a v2 block 16 + its announced length bytes
//! after its start. The [`ppp`] crate parses whole headers (and v2's fixed
//! 16 bytes, for the early checks of version, command, family and
//! protocol). Its own verdicts on a partial input are not relied on: a v1
//! line cut just after the source port (`PROXY TCP4 192.0.2.7 198.51.100.1
//! 56324 `, one byte short of a destination port) comes back from it as a
//! bad destination port, a terminal error, although the next byte can make
//! the line whole.
//!
//! # Which address counts
//!
//! A `PROXY` header for TCP over IPv4 or IPv6 names the client
//! ([`Header::source`]). A v2 `LOCAL` header is the balancer speaking for
//! itself (its health checks send one); a v1 `UNKNOWN` line, or a v2 header
//! for a family without IP addresses, says the balancer cannot name the
//! client. In those cases the connection's own peer, the balancer, stands.
//!
//! ```
//! use lubdub::proxy::{parse, Parsed, Version};
//!
//! let read = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 8898\r\n\0\0\0\0\x08\0\0\0";
//! assert_eq!(parse(&read[..20]), Ok(Parsed::Incomplete));
//! let Ok(Parsed::Complete(header)) = parse(read) else { panic!("a whole v1 line") };
//! assert_eq!(header.version, Version::V1);
//! assert_eq!(header.len, 46);
//! assert_eq!(header.source(), Some("192.0.2.7:56324".parse().unwrap()));
//! // What follows the header is the client's first frame, a heartbeat.
//! assert_eq!(&read[header.len..], lubdub::protocol::HEARTBEAT_REQUEST);
//! ```

use std::fmt;
use std::net::SocketAddr;

/// The longest v1 line, `\r\n` included (the specification's limit).
pub const V1_MAX_LEN: usize = 107;

/// What every v1 line begins with.
pub const V1_PREFIX: &[u8; 6] = b"PROXY ";

/// The 12 bytes every v2 header begins with.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a v2 header: the signature, the version and command,
/// the family and protocol, and the big-endian length of the rest.
pub const V2_FIXED_LEN: usize = 16;

/// Where v2's fixed part keeps the length of what follows it.
const V2_LENGTH: std::ops::Range<usize> = 14..16;

/// The longest header accepted, either version; see the [module
/// docs](self#bounds) for what fits.
pub const MAX_HEADER_LEN: usize = 512;

/// What the bytes received so far hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The start of a header, not all of it yet: wait for more. Never the
    /// answer for [`MAX_HEADER_LEN`] bytes or more.
    Incomplete,
    /// A whole header, the first [`Header::len`] bytes of the input.
    Complete(Header),
}

/// A whole PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Its length in bytes: the client's own stream begins after it.
    pub len: usize,
    /// Which version of the protocol it is.
    pub version: Version,
    /// What it says about the connection.
    pub addresses: Addresses,
}

impl Header {
    /// The client's address as the balancer saw it, when the header names
    /// one; `None` for `LOCAL` and `UNKNOWN`, where the connection's own
    /// peer stands.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.addresses {
            Addresses::Proxied { source, .. } => Some(source),
            Addresses::Local | Addresses::Unknown => None,
        }
    }
}

/// The two versions of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text line: `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
    V1,
    /// The binary block.
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// A client's connection relayed by the balancer (v1 `TCP4`/`TCP6`, v2
    /// `PROXY` over IPv4 or IPv6).
    Proxied {
        /// The client, as the balancer saw it.
        source: SocketAddr,
        /// The address the client connected to (the balancer's frontend).
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: the balancer's own connection, a health check for
    /// instance. Any addresses in it are ignored, as the specification
    /// requires.
    Local,
    /// v1 `UNKNOWN`, or a v2 `PROXY` header for a family without IP
    /// addresses (unspecified, UNIX): the balancer cannot name the client.
    Unknown,
}

/// Why the bytes received can never begin with a valid header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// The first bytes are neither v1's `PROXY ` nor v2's signature: the
    /// peer does not speak the protocol (a client that bypassed the
    /// balancer, or a balancer not configured to send it).
    NotProxy,
    /// Longer than allowed: a v1 line with no `\r\n` within its 107 bytes,
    /// or a v2 header announcing more than [`MAX_HEADER_LEN`] in all.
    TooLong(Version),
    /// It begins as a header of this version but breaks its rules; the
    /// text says which, for a log line.
    Malformed(Version, &'static str),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotProxy => f.write_str("no PROXY header: the first bytes are not one"),
            HeaderError::TooLong(Version::V1) => {
                write!(f, "PROXY v1 line without \\r\\n within {V1_MAX_LEN} bytes")
            }
            HeaderError::TooLong(Version::V2) => {
                write!(f, "PROXY v2 header longer than {MAX_HEADER_LEN} bytes")
            }
            HeaderError::Malformed(version, why) => {
                write!(f, "malformed PROXY {version} header: {why}")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Says what `input`, the first bytes a connection received, holds: see
/// the [module docs](self). Looks at no more than [`MAX_HEADER_LEN`]
/// bytes; bytes after a complete header are not looked at.
pub fn parse(input: &[u8]) -> Result<Parsed, HeaderError> {
    match input.first() {
        None => Ok(Parsed::Incomplete),
        Some(&b) if b == V1_PREFIX[0] => v1(input),
        Some(&b) if b == V2_SIGNATURE[0] => v2(input),
        Some(_) => Err(HeaderError::NotProxy),
    }
}

/// Whether `input` is a prefix of `signature`, or begins with all of it.
fn begins_as(input: &[u8], signature: &[u8]) -> bool {
    let n = input.len().min(signature.len());
    input[..n] == signature[..n]
}

fn v1(input: &[u8]) -> Result<Parsed, HeaderError> {
    if !begins_as(input, V1_PREFIX) {
        return Err(HeaderError::NotProxy);
    }
    // The `\r` of the final `\r\n` is at most at index 105.
    let window = &input[..input.len().min(V1_MAX_LEN - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if window.len() == V1_MAX_LEN - 1 {
            return Err(HeaderError::TooLong(Version::V1));
        }
        return Ok(Parsed::Incomplete);
    };
    match input.get(cr + 1) {
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(malformed_v1("\\r not followed by \\n")),
    }
    let line = &input[..cr + 2];
    let header = ppp::v1::Header::try_from(line).map_err(v1_error)?;
    let addresses = match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => Addresses::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        ppp::v1::Addresses::Tcp6(a) => Addresses::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        ppp::v1::Addresses::Unknown => Addresses::Unknown,
    };
    Ok(Parsed::Complete(Header {
        len: line.len(),
        version: Version::V1,
        addresses,
    }))
}

fn malformed_v1(why: &'static str) -> HeaderError {
    HeaderError::Malformed(Version::V1, why)
}

/// What was wrong with a whole v1 line, for a log line.
fn v1_error(e: ppp::v1::BinaryParseError) -> HeaderError {
    use ppp::v1::ParseError as E;
    let why = match e {
        ppp::v1::BinaryParseError::InvalidUtf8(_) => "not text",
        ppp::v1::BinaryParseError::Parse(e) => match e {
            E::HeaderTooLong => return HeaderError::TooLong(Version::V1),
            E::InvalidProtocol | E::MissingProtocol => "protocol is not TCP4, TCP6 or UNKNOWN",
            E::InvalidSourceAddress(_)
            | E::InvalidDestinationAddress(_)
            | E::MissingSourceAddress
            | E::MissingDestinationAddress => "bad address",
            E::InvalidSourcePort(_)
            | E::InvalidDestinationPort(_)
            | E::MissingSourcePort
            | E::MissingDestinationPort => "bad port",
            E::InvalidPrefix
            | E::MissingPrefix
            | E::Partial
            | E::MissingNewLine
            | E::InvalidSuffix => "not PROXY, a protocol, two addresses and two ports",
        },
    };
    malformed_v1(why)
}

fn v2(input: &[u8]) -> Result<Parsed, HeaderError> {
    if !begins_as(input, V2_SIGNATURE) {
        return Err(HeaderError::NotProxy);
    }
    if input.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete);
    }
    let announced = u16::from_be_bytes([input[V2_LENGTH.start], input[V2_LENGTH.start + 1]]);
    let len = V2_FIXED_LEN + announced as usize;
    if len > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong(Version::V2));
    }
    // Given part of the block, ppp still checks the fixed 16 bytes before
    // it says the rest is missing: a bad version or family is refused now.
    let header = match ppp::v2::Header::try_from(&input[..input.len().min(len)]) {
        Ok(header) => header,
        Err(ppp::v2::ParseError::Partial(..)) => return Ok(Parsed::Incomplete),
        Err(e) => return Err(v2_error(&e)),
    };
    // The TLVs must fill exactly what is left after the addresses.
    if let Some(Err(e)) = header.tlvs().find(Result::is_err) {
        return Err(v2_error(&e));
    }
    use ppp::v2::{Addresses as A, Command, Protocol};
    let addresses = match (header.command, header.addresses) {
        (Command::Local, _) => Addresses::Local,
        (Command::Proxy, A::IPv4(_) | A::IPv6(_)) if header.protocol == Protocol::Datagram => {
            return Err(HeaderError::Malformed(
                Version::V2,
                "UDP addresses in front of a TCP connection",
            ))
        }
        (Command::Proxy, A::IPv4(a)) => Addresses::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        (Command::Proxy, A::IPv6(a)) => Addresses::Proxied {
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        (Command::Proxy, A::Unspecified | A::Unix(_)) => Addresses::Unknown,
    };
    Ok(Parsed::Complete(Header {
        len,
        version: Version::V2,
        addresses,
    }))
}

/// What was wrong with a v2 block, for a log line.
fn v2_error(e: &ppp::v2::ParseError) -> HeaderError {
    use ppp::v2::ParseError as E;
    let why = match e {
        E::Version(_) => "version is not 2",
        E::Command(_) => "command is neither LOCAL nor PROXY",
        E::AddressFamily(_) => "unknown address family",
        E::Protocol(_) => "unknown transport protocol",
        E::InvalidAddresses(..) => "length too short for its addresses",
        E::InvalidTLV(..) | E::Leftovers(_) => "TLVs do not fill the announced length",
        // Not reached: the signature and the length are checked first.
        E::Incomplete(_) | E::Prefix | E::Partial(..) => "truncated",
    };
    HeaderError::Malformed(Version::V2, why)
}

#[cfg(test)]
mod tests;
