//! The scrape's HTTP, sans-IO: what a request head asks for, and the bytes
//! of the answer. The head is parsed by `httparse`; nothing here reads a
//! socket or a clock.

use std::fmt::Write as _;

/// The longest request head accepted (request line and headers). A
/// Prometheus scrape sends a few hundred bytes; past this the scraper is
/// answered 431 and closed, so one cannot pin more than this much memory.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers parsed from one head; more is a bad request.
const MAX_HEADERS: usize = 64;

/// The Content-Type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request head, so far, asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The head is not complete yet: read more.
    Partial,
    /// `GET /metrics` (or `HEAD`): the exposition.
    Metrics {
        /// `HEAD`: the headers alone.
        head_only: bool,
    },
    /// `GET /`: a pointer to `/metrics`.
    Index {
        /// `HEAD`: the headers alone.
        head_only: bool,
    },
    /// Another path.
    NotFound,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// Past [`MAX_HEAD`] bytes without a complete head.
    TooLarge,
    /// Not HTTP/1.x.
    Bad,
}

/// Judges the bytes received so far on a scrape connection.
pub fn parse(head: &[u8]) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => return Request::TooLarge,
        Ok(httparse::Status::Partial) => return Request::Partial,
        Err(httparse::Error::TooManyHeaders) => return Request::TooLarge,
        Err(_) => return Request::Bad,
    }
    let head_only = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Request::MethodNotAllowed,
    };
    // The query string (`?name[]=…` from a federating server) is ignored:
    // every scrape gets every series.
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match path {
        "/metrics" => Request::Metrics { head_only },
        "/" => Request::Index { head_only },
        _ => Request::NotFound,
    }
}

/// A whole HTTP/1.1 response, closing the connection: the status line,
/// headers and (unless `head_only`) the body.
pub fn response(status: u16, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = String::with_capacity(160);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// The plain-text answer to anything but a scrape: status and body.
pub fn refusal(request: Request) -> (u16, &'static str) {
    match request {
        Request::Index { .. } => (200, "lubdub: metrics are at /metrics\n"),
        Request::NotFound => (404, "not found: metrics are at /metrics\n"),
        Request::MethodNotAllowed => (405, "only GET and HEAD\n"),
        Request::TooLarge => (431, "request head too large\n"),
        Request::Bad | Request::Partial | Request::Metrics { .. } => (400, "bad request\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_split_anywhere_is_partial_until_its_blank_line() {
        let full = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Request::Partial, "cut at {cut}");
        }
        assert_eq!(parse(full), Request::Metrics { head_only: false });
    }

    #[test]
    fn paths_and_methods_are_told_apart() {
        assert_eq!(
            parse(b"GET /metrics?name[]=up HTTP/1.1\r\n\r\n"),
            Request::Metrics { head_only: false }
        );
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Request::Metrics { head_only: true }
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Request::Index { head_only: false }
        );
        assert_eq!(parse(b"GET /metricsx HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Request::MethodNotAllowed
        );
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01\x00"), Request::Bad);
        assert_eq!(parse(b"GET /metrics SPDY/9\r\n\r\n"), Request::Bad);
    }

    #[test]
    fn a_head_that_never_ends_is_too_large_at_the_bound_and_not_before() {
        let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
        let pad = format!("X-Pad: {}\r\n", "a".repeat(247));
        while head.len() + pad.len() < MAX_HEAD {
            head.extend_from_slice(pad.as_bytes());
        }
        assert_eq!(parse(&head), Request::Partial);
        head.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&head), Request::TooLarge);
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert_eq!(parse(&head), Request::TooLarge);
    }

    #[test]
    fn a_response_says_its_length_and_closes() {
        let r = response(200, CONTENT_TYPE, b"a 1\n", false);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 4\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; version=0.0.4"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\na 1\n"), "{text}");
        let head = String::from_utf8(response(200, CONTENT_TYPE, b"a 1\n", true)).unwrap();
        assert!(head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        let (status, _) = refusal(Request::MethodNotAllowed);
        let refused = String::from_utf8(response(status, "text/plain", b"", false)).unwrap();
        assert!(refused.starts_with("HTTP/1.1 405 "), "{refused}");
        assert!(refused.contains("Allow: GET, HEAD\r\n"), "{refused}");
    }
}
