//! Where a client connects: an address, or a name resolved again for every
//! connect — off the reactor's thread.
//!
//! A name is looked up each time a connection is about to be made, so a
//! DNS change is followed at the next reconnect, and every address it
//! resolves to is tried in turn: `localhost` is `::1` and `127.0.0.1` on a
//! standard Debian `/etc/hosts`, and a server listening on IPv4 only must
//! still be found. A name that does not resolve is connection trouble like
//! any other — answered with backoff, never the end of the client.
//!
//! `getaddrinfo` blocks, for as long as a DNS server takes to answer, and a
//! reactor must not: [`Resolver`] runs lookups on one helper thread, started
//! the first time a name needs resolving (never for a plain address), and
//! wakes the reactor through its one `mio::Waker` (the one its
//! [`ShutdownHandle`](crate::shutdown::ShutdownHandle) also uses: mio allows
//! one per poll) when the answer is in.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::Arc;

use mio::Waker;

/// A server to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This address.
    Addr(SocketAddr),
    /// Whatever `host` resolves to, on `port`, looked up for every connect.
    Name {
        /// A host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target::Addr(addr)
    }
}

impl FromStr for Target {
    type Err = String;

    /// `1.2.3.4:80`, `[::1]:80` or `host.example:80`.
    fn from_str(text: &str) -> Result<Target, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Target::Addr(addr));
        }
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("`{text}` is not HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("`{port}` in `{text}` is not a port number"))?;
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!("`{host}` in `{text}` is not a host name"));
        }
        Ok(Target::Name {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => addr.fmt(f),
            Target::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Target {
    /// The address itself, for a target that is one.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Target::Addr(addr) => Some(*addr),
            Target::Name { .. } => None,
        }
    }

    /// Resolves the target now, on this thread (for checks made once at
    /// start, never on a reactor's hot path).
    pub fn resolve_blocking(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Target::Addr(addr) => Ok(vec![*addr]),
            Target::Name { host, port } => lookup(host, *port),
        }
    }
}

/// A failed lookup is `NotFound`, whatever the resolver called it (std
/// reports most `getaddrinfo` failures as uncategorised).
fn lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        ));
    }
    Ok(addrs)
}

/// The answer to one lookup.
pub type Lookup = io::Result<Vec<SocketAddr>>;

/// Looks names up on a helper thread and wakes the reactor when done. One
/// lookup at a time: a reactor asks again only once it has the answer.
pub struct Resolver {
    waker: Arc<Waker>,
    /// Requests out, answers back; made with the thread, on first use.
    channel: Option<(mpsc::Sender<Request>, mpsc::Receiver<Lookup>)>,
    pending: bool,
}

/// A host and port to look up.
type Request = (String, u16);

impl Resolver {
    /// A resolver whose answers wake the reactor through `waker`. No
    /// thread exists until the first [`request`](Self::request).
    pub fn new(waker: Arc<Waker>) -> Resolver {
        Resolver {
            waker,
            channel: None,
            pending: false,
        }
    }

    /// Whether a lookup is under way.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Starts looking `host` up (no-op while a lookup is pending).
    pub fn request(&mut self, host: &str, port: u16) {
        if self.pending {
            return;
        }
        let (requests, _) = self.channel.get_or_insert_with(|| {
            let (requests, inbox) = mpsc::channel::<Request>();
            let (outbox, answers) = mpsc::channel();
            let waker = self.waker.clone();
            std::thread::spawn(move || {
                // Ends when the resolver (the sender) is dropped.
                for (host, port) in inbox {
                    if outbox.send(lookup(&host, port)).is_err() {
                        break;
                    }
                    let _ = waker.wake();
                }
            });
            (requests, answers)
        });
        self.pending = requests.send((host.to_string(), port)).is_ok();
    }

    /// The answer, once it is in.
    pub fn answer(&mut self) -> Option<Lookup> {
        let (_, answers) = self.channel.as_ref()?;
        let answer = answers.try_recv().ok()?;
        self.pending = false;
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_names() {
        assert_eq!(
            "127.0.0.1:80".parse::<Target>(),
            Ok(Target::Addr("127.0.0.1:80".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:80".parse::<Target>(),
            Ok(Target::Addr("[::1]:80".parse().unwrap()))
        );
        let name: Target = "localhost:8898".parse().unwrap();
        assert_eq!(name.to_string(), "localhost:8898");
        assert!(name.addr().is_none());
        assert!("localhost".parse::<Target>().is_err());
        assert!("localhost:99999".parse::<Target>().is_err());
        assert!(":80".parse::<Target>().is_err());
        assert!("a b:80".parse::<Target>().is_err());
    }

    #[test]
    fn resolves_off_thread_and_wakes_the_poll() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(7)).unwrap());
        let mut resolver = Resolver::new(waker);
        resolver.request("localhost", 8898);
        assert!(resolver.is_pending());
        let mut events = mio::Events::with_capacity(4);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let answer = loop {
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            if let Some(answer) = resolver.answer() {
                break answer;
            }
            assert!(std::time::Instant::now() < deadline, "no answer");
        };
        let addrs = answer.unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8898));
        assert!(!resolver.is_pending());
        resolver.request("no-such-host.invalid", 1);
        let answer = loop {
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            if let Some(answer) = resolver.answer() {
                break answer;
            }
            assert!(std::time::Instant::now() < deadline, "no answer");
        };
        assert_eq!(answer.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
