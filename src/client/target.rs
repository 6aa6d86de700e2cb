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
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
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

/// A target's addresses, and which to try next: shared by the client (one
/// connection) and the swarm (all of its connections).
///
/// Within one connect attempt every address of the right family is tried
/// once, in turn ([`pick`](Self::pick) with the index just tried); a new
/// attempt starts at the address that last worked, else at the next one in
/// rotation, so a swarm's connections spread over the addresses until one
/// is known to work.
#[derive(Debug)]
pub(crate) struct Addresses {
    list: Vec<SocketAddr>,
    /// When `list` was looked up, in the caller's ticks (`None`: never; a
    /// plain address never is).
    resolved_at: Option<u64>,
    needs_lookup: bool,
    next: usize,
    /// The address of the last connect that succeeded: used first until a
    /// connect to it fails.
    good: Option<SocketAddr>,
}

impl Addresses {
    pub fn new(target: &Target) -> Addresses {
        Addresses {
            list: target.addr().into_iter().collect(),
            resolved_at: None,
            needs_lookup: target.addr().is_none(),
            next: 0,
            good: None,
        }
    }

    /// Whether no address is known yet.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a name's addresses are older than `every` ticks at `now`
    /// (or were never looked up); never for a plain address.
    pub fn stale(&self, now: u64, every: u64) -> bool {
        self.needs_lookup
            && self
                .resolved_at
                .is_none_or(|at| now >= at.saturating_add(every))
    }

    /// A lookup's answer. A failed one keeps the addresses already known (a
    /// DNS hiccup is not the server going away).
    pub fn resolved(&mut self, answer: Lookup, now: u64) {
        self.resolved_at = Some(now);
        match answer {
            // The same addresses in a new order (round-robin DNS) keep the
            // old order: connects in flight name their address by index.
            // Only a changed set replaces the list — then an attempt under
            // way may skip or repeat one address, once.
            Ok(list) if same_set(&list, &self.list) => {}
            Ok(list) => {
                if self.good.is_some_and(|good| !list.contains(&good)) {
                    self.good = None;
                }
                self.list = list;
            }
            Err(e) => log::debug!("lookup failed: {e}"),
        }
    }

    /// How many addresses a connect from `source` can use (those of its
    /// family): the most tries one attempt makes.
    pub fn usable(&self, source: Option<IpAddr>) -> usize {
        self.list.iter().filter(|a| fits(source, a)).count()
    }

    /// The address for a connect from `source`, with its index: the next
    /// usable one after index `after` (a connect that just failed there),
    /// else the last good one, else the next in rotation.
    pub fn pick(
        &mut self,
        source: Option<IpAddr>,
        after: Option<u16>,
    ) -> io::Result<(u16, SocketAddr)> {
        let n = self.list.len();
        let start = match after {
            Some(at) => usize::from(at) + 1,
            None => {
                let good = self
                    .good
                    .and_then(|g| self.list.iter().position(|a| *a == g))
                    .filter(|&i| fits(source, &self.list[i]));
                if let Some(i) = good {
                    return Ok((i as u16, self.list[i]));
                }
                self.next = self.next.wrapping_add(1);
                self.next
            }
        };
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| fits(source, &self.list[i]))
            .map(|i| (i as u16, self.list[i]))
            .ok_or_else(|| {
                // Not a port shortage: counted with the other failures.
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "no address of the source address's family",
                )
            })
    }

    /// A connect to the address at index `at` failed: if it was the good
    /// one, it is good no more.
    pub fn failed(&mut self, at: u16) {
        if self
            .list
            .get(usize::from(at))
            .is_some_and(|a| Some(*a) == self.good)
        {
            self.good = None;
        }
    }

    /// The address at index `at`, if the list still has one there.
    pub fn get(&self, at: u16) -> Option<SocketAddr> {
        self.list.get(usize::from(at)).copied()
    }

    /// A connect to `addr` succeeded: try it first from now on.
    pub fn succeeded(&mut self, addr: SocketAddr) {
        self.good = Some(addr);
    }
}

/// One connect attempt's way through the addresses: how many it has tried,
/// and the index of the last. Four bytes, kept per connection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Attempt {
    tried: u16,
    at: u16,
}

impl Attempt {
    /// Whether this attempt has an address left to try from `source`.
    pub fn has_next(&self, addrs: &Addresses, source: Option<IpAddr>) -> bool {
        usize::from(self.tried) < addrs.usable(source)
    }

    /// The next address to try from `source`, counted as tried.
    pub fn next(
        &mut self,
        addrs: &mut Addresses,
        source: Option<IpAddr>,
    ) -> io::Result<SocketAddr> {
        let after = (self.tried > 0).then_some(self.at);
        self.tried += 1;
        let (at, addr) = addrs.pick(source, after)?;
        self.at = at;
        Ok(addr)
    }

    /// The address this attempt tried last — the peer of a connection it
    /// made — if it tried one (read from the list as it is now: a name
    /// looked up again since may have moved it).
    pub fn last(&self, addrs: &Addresses) -> Option<SocketAddr> {
        (self.tried > 0).then(|| addrs.get(self.at)).flatten()
    }

    /// The address last tried did not connect.
    pub fn failed(&self, addrs: &mut Addresses) {
        addrs.failed(self.at);
    }
}

/// Whether two short lists hold the same addresses, in any order.
fn same_set(a: &[SocketAddr], b: &[SocketAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Whether a connect from `source` can reach `addr`.
fn fits(source: Option<IpAddr>, addr: &SocketAddr) -> bool {
    source.is_none_or(|ip| ip.is_ipv4() == addr.is_ipv4())
}

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
    fn every_usable_address_is_tried_once_per_attempt_the_good_one_first() {
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let mut addrs = Addresses::new(&"name.test:1".parse().unwrap());
        assert!(addrs.is_empty() && addrs.stale(0, 10));
        addrs.resolved(Ok(vec![v6, a, b]), 0);
        assert!(!addrs.stale(9, 10) && addrs.stale(10, 10));
        // From an IPv4 source only the two IPv4 addresses, each once.
        let source = Some("127.0.0.9".parse().unwrap());
        assert_eq!(addrs.usable(source), 2);
        let (first, x) = addrs.pick(source, None).unwrap();
        let (_, y) = addrs.pick(source, Some(first)).unwrap();
        assert!(x != y && x.is_ipv4() && y.is_ipv4());
        // The one that worked is tried first, until it fails.
        addrs.succeeded(b);
        assert_eq!(addrs.pick(None, None).unwrap().1, b);
        addrs.failed(0); // a failure elsewhere changes nothing
        assert_eq!(addrs.pick(None, None).unwrap().1, b);
        addrs.failed(2);
        let rotation: std::collections::BTreeSet<SocketAddr> =
            (0..3).map(|_| addrs.pick(None, None).unwrap().1).collect();
        assert_eq!(rotation.len(), 3, "back to taking turns");
        // A failed lookup keeps what was known.
        addrs.resolved(Err(io::Error::from(io::ErrorKind::NotFound)), 20);
        assert_eq!(addrs.usable(None), 3);
        // No address of the source's family: a plain failure, not a port one.
        let v6_only = Some("::1".parse().unwrap());
        addrs.resolved(Ok(vec![a]), 30);
        assert_eq!(
            addrs.pick(v6_only, None).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_reordered_answer_does_not_move_an_attempt_under_way() {
        // Round-robin DNS answers [A, B], then [B, A]. A connect to A (index
        // 0) times out after the second answer: B must still be tried, and
        // B's standing as the good address must not go with A's failure.
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let mut addrs = Addresses::new(&"name.test:1".parse().unwrap());
        addrs.resolved(Ok(vec![a, b]), 0);
        addrs.succeeded(a);
        let (at, first) = addrs.pick(None, None).unwrap();
        assert_eq!(first, a);
        addrs.resolved(Ok(vec![b, a]), 10);
        addrs.failed(at);
        assert_eq!(addrs.pick(None, Some(at)).unwrap().1, b);
        addrs.succeeded(b);
        addrs.resolved(Ok(vec![a, b]), 20);
        addrs.failed(0); // A, as the attempt knew it
        assert_eq!(addrs.pick(None, None).unwrap().1, b, "B is still good");
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
        let mut wait_for_answer = |resolver: &mut Resolver| loop {
            poll.poll(&mut events, Some(std::time::Duration::from_millis(100)))
                .unwrap();
            if let Some(answer) = resolver.answer() {
                break answer;
            }
            assert!(std::time::Instant::now() < deadline, "no answer");
        };
        let addrs = wait_for_answer(&mut resolver).unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8898));
        assert!(!resolver.is_pending());
        resolver.request("no-such-host.invalid", 1);
        assert_eq!(
            wait_for_answer(&mut resolver).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
