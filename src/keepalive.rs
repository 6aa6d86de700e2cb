//! The kernel's own liveness checks, as a second line of defence.
//!
//! lubdub's heartbeats catch a peer that stops talking. Two failures they
//! cannot see from the application on their own are a peer that vanished
//! without a FIN or RST (a cable pull, a NAT that dropped its mapping) while
//! *we* are not sending, and data we sent that is never acknowledged. The
//! first is TCP keepalive's job; the second is `TCP_USER_TIMEOUT`'s (Linux).
//!
//! # Defaults follow the heartbeat
//!
//! A connection that heartbeats is never idle for as long as the heartbeat
//! silence limit (`interval × misses`), so by default the kernel starts
//! probing only after that long: a healthy connection is never probed, and
//! a dead one whose heartbeats lubdub somehow did not judge is still dropped
//! soon after. A fixed idle shorter than the interval would instead make the
//! kernel probe every healthy connection every interval — at hundreds of
//! thousands of connections, enough probe traffic for loopback to drop some
//! and the kernel to kill healthy connections.
//!
//! When `TCP_USER_TIMEOUT` is set, Linux also uses it to decide when keepalive
//! probing has failed, so it must be at least `idle + interval × count` or it
//! cuts probing short; by default it is exactly that (Cloudflare, "When TCP
//! sockets refuse to die", 2019).
//!
//! # What the kernel accepts
//!
//! `TCP_KEEPIDLE` and `TCP_KEEPINTVL` are whole seconds from 1 to 32,767,
//! `TCP_KEEPCNT` is 1 to 127, `TCP_USER_TIMEOUT` is whole milliseconds up to
//! `i32::MAX` (Linux `net/ipv4/tcp.c`). A value outside these is refused by
//! [`KeepaliveConfig::validate`] before any socket exists — the kernel would
//! otherwise refuse it on every accepted socket. Values lubdub derives are
//! rounded up to whole seconds and kept inside the same ranges.

use std::fmt;
use std::io;
use std::time::Duration;

use socket2::SockRef;

use crate::check::{self, ConfigError};
use crate::duration::format;

/// Largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL` in seconds (`MAX_TCP_KEEPIDLE`).
pub const MAX_SECONDS: u64 = 32_767;
/// Largest `TCP_KEEPCNT` (`MAX_TCP_KEEPCNT`).
pub const MAX_COUNT: u32 = 127;
/// Largest `TCP_USER_TIMEOUT` (an `int` of milliseconds).
pub const MAX_USER_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// What the user asked for. [`resolve`](Self::resolve) turns it into the
/// [`SocketOptions`] actually applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// `SO_KEEPALIVE` on/off; when off the three timings below are not set.
    pub enabled: bool,
    /// `TCP_KEEPIDLE`: quiet time before the first probe. `None` follows the
    /// heartbeat silence limit (`interval × misses`), rounded up to whole
    /// seconds.
    pub idle: Option<Duration>,
    /// `TCP_KEEPINTVL`: time between unanswered probes.
    pub interval: Duration,
    /// `TCP_KEEPCNT`: unanswered probes before the kernel drops the connection.
    pub count: u32,
    /// `TCP_USER_TIMEOUT` (Linux only): how long sent data may stay
    /// unacknowledged. `None` means `idle + interval × count`; zero leaves the
    /// kernel default (about 15 minutes of retransmissions).
    pub user_timeout: Option<Duration>,
    /// `TCP_NODELAY`: heartbeats are tiny and latency-sensitive, so Nagle is off.
    pub nodelay: bool,
}

impl Default for KeepaliveConfig {
    /// Probing starts once a connection has been quiet for the heartbeat
    /// silence limit, then every 5 s, 3 times: with lubdub's default 5 s × 6
    /// a dead peer is dropped by the kernel within 45 s even if lubdub's own
    /// timers were somehow not running.
    fn default() -> Self {
        KeepaliveConfig {
            enabled: true,
            idle: None,
            interval: Duration::from_secs(5),
            count: 3,
            user_timeout: None,
            nodelay: true,
        }
    }
}

impl KeepaliveConfig {
    /// Refuses values the kernel would refuse. Fields are named as the
    /// command line names them (`keepalive_idle`, `keepalive_interval`,
    /// `keepalive_count`, `user_timeout`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(idle) = self.idle {
            whole_seconds("keepalive_idle", idle)?;
        }
        whole_seconds("keepalive_interval", self.interval)?;
        check::number("keepalive_count", self.count, 1, MAX_COUNT)?;
        if let Some(timeout) = self.user_timeout {
            check::duration("user_timeout", timeout, Duration::ZERO, MAX_USER_TIMEOUT)?;
            if timeout.subsec_nanos() % 1_000_000 != 0 {
                return Err(ConfigError::new(
                    "user_timeout",
                    format!(
                        "must be whole milliseconds, the kernel's unit (got {})",
                        format(timeout)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The options to apply, for a side whose heartbeat silence limit is
    /// `silence_limit`.
    pub fn resolve(&self, silence_limit: Duration) -> SocketOptions {
        let idle = self.idle.unwrap_or_else(|| kernel_seconds(silence_limit));
        let user_timeout = match self.user_timeout {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None if self.enabled => Some(
                self.interval
                    .checked_mul(self.count)
                    .and_then(|probing| idle.checked_add(probing))
                    .map_or(MAX_USER_TIMEOUT, |d| d.min(MAX_USER_TIMEOUT)),
            ),
            None => None,
        };
        SocketOptions {
            nodelay: self.nodelay,
            keepalive: self.enabled.then_some(Probes {
                idle,
                interval: self.interval,
                count: self.count,
            }),
            user_timeout,
        }
    }
}

/// A duration the kernel takes in whole seconds, 1 to [`MAX_SECONDS`].
fn whole_seconds(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    check::duration(
        field,
        value,
        Duration::from_secs(1),
        Duration::from_secs(MAX_SECONDS),
    )?;
    if value.subsec_nanos() != 0 {
        return Err(ConfigError::new(
            field,
            format!(
                "must be whole seconds, the kernel's unit (got {})",
                format(value)
            ),
        ));
    }
    Ok(())
}

/// `d` rounded up to whole seconds, within the kernel's range.
fn kernel_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.clamp(1, MAX_SECONDS))
}

/// The keepalive probe timings applied to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probes {
    /// `TCP_KEEPIDLE`.
    pub idle: Duration,
    /// `TCP_KEEPINTVL`.
    pub interval: Duration,
    /// `TCP_KEEPCNT`.
    pub count: u32,
}

/// The socket options one side applies to each of its connections, resolved
/// from a [`KeepaliveConfig`] and that side's heartbeat settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE` with these timings, or off.
    pub keepalive: Option<Probes>,
    /// `TCP_USER_TIMEOUT`, or the kernel default.
    pub user_timeout: Option<Duration>,
}

/// One socket option the kernel refused.
#[derive(Debug)]
pub struct SockoptError {
    /// The option, as the kernel names it (`TCP_KEEPIDLE`, …).
    pub option: &'static str,
    /// What the kernel said.
    pub error: io::Error,
}

impl fmt::Display for SockoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.option, self.error)
    }
}

impl std::error::Error for SockoptError {}

impl SocketOptions {
    /// Applies the options to a connected TCP socket, stopping at the first
    /// one the kernel refuses.
    pub fn apply<S>(&self, socket: &S) -> Result<(), SockoptError>
    where
        S: std::os::fd::AsFd,
    {
        let sock = SockRef::from(socket);
        let named = |option| move |error| SockoptError { option, error };
        if self.nodelay {
            sock.set_tcp_nodelay(true).map_err(named("TCP_NODELAY"))?;
        }
        match self.keepalive {
            Some(probes) => {
                sock.set_keepalive(true).map_err(named("SO_KEEPALIVE"))?;
                // One option at a time, so a refusal names the one refused.
                // `validate` keeps each within an int.
                let fd = socket.as_fd();
                let secs = |d: Duration| d.as_secs() as libc::c_int;
                tcp_int(fd, libc::TCP_KEEPIDLE, secs(probes.idle))
                    .map_err(named("TCP_KEEPIDLE"))?;
                tcp_int(fd, libc::TCP_KEEPINTVL, secs(probes.interval))
                    .map_err(named("TCP_KEEPINTVL"))?;
                tcp_int(fd, libc::TCP_KEEPCNT, probes.count as libc::c_int)
                    .map_err(named("TCP_KEEPCNT"))?;
            }
            None => sock.set_keepalive(false).map_err(named("SO_KEEPALIVE"))?,
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(timeout) = self.user_timeout {
            sock.set_tcp_user_timeout(Some(timeout))
                .map_err(named("TCP_USER_TIMEOUT"))?;
        }
        Ok(())
    }
}

/// `setsockopt(fd, IPPROTO_TCP, name, &value)`.
fn tcp_int(
    fd: std::os::fd::BorrowedFd<'_>,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local;
    // the descriptor is borrowed for the whole call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl fmt::Display for SocketOptions {
    /// `keepalive=30s/5sx3 user_timeout=45s`, as the startup lines show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.keepalive {
            Some(p) => write!(
                f,
                "keepalive={}/{}x{}",
                format(p.idle),
                format(p.interval),
                p.count
            )?,
            None => f.write_str("keepalive=off")?,
        }
        match self.user_timeout {
            Some(d) => write!(f, " user_timeout={}", format(d)),
            None => f.write_str(" user_timeout=off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn socket_pair() -> (TcpListener, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (listener, stream)
    }

    #[test]
    fn applies_every_option_to_a_real_socket() {
        let (_listener, stream) = socket_pair();
        let config = KeepaliveConfig {
            idle: Some(Duration::from_secs(7)),
            interval: Duration::from_secs(2),
            count: 4,
            ..KeepaliveConfig::default()
        };
        config.validate().unwrap();
        config
            .resolve(Duration::from_secs(30))
            .apply(&stream)
            .unwrap();
        let sock = SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
        assert!(sock.tcp_nodelay().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(
            sock.tcp_user_timeout().unwrap(),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn idle_follows_the_heartbeat_limit_so_a_heartbeating_connection_is_never_probed() {
        let config = KeepaliveConfig::default();
        // 60 s × 6: probing starts after 6 minutes of silence, and the user
        // timeout is longer than the heartbeat interval.
        let options = config.resolve(Duration::from_secs(360));
        let probes = options.keepalive.unwrap();
        assert_eq!(probes.idle, Duration::from_secs(360));
        assert_eq!(options.user_timeout, Some(Duration::from_secs(375)));
        // Sub-second limits round up to the kernel's one second; limits past
        // its range are clamped to it; the user timeout stays in its range.
        let short = config.resolve(Duration::from_millis(300));
        assert_eq!(short.keepalive.unwrap().idle, Duration::from_secs(1));
        let long = config.resolve(Duration::from_secs(10_000 * 24 * 3600));
        assert_eq!(
            long.keepalive.unwrap().idle,
            Duration::from_secs(MAX_SECONDS)
        );
        let (_listener, stream) = socket_pair();
        short.apply(&stream).unwrap();
        long.apply(&stream).unwrap();
        let greedy = KeepaliveConfig {
            idle: Some(Duration::from_secs(MAX_SECONDS)),
            interval: Duration::from_secs(MAX_SECONDS),
            count: MAX_COUNT,
            ..config
        };
        assert_eq!(
            greedy.resolve(Duration::ZERO).user_timeout,
            Some(MAX_USER_TIMEOUT)
        );
        greedy.resolve(Duration::ZERO).apply(&stream).unwrap();
    }

    #[test]
    fn values_the_kernel_refuses_are_refused_up_front_naming_the_field() {
        let base = KeepaliveConfig::default();
        let cases = [
            (
                KeepaliveConfig {
                    idle: Some(Duration::from_millis(500)),
                    ..base
                },
                "keepalive_idle",
            ),
            (
                KeepaliveConfig {
                    idle: Some(Duration::from_secs(10 * 3600)),
                    ..base
                },
                "keepalive_idle",
            ),
            (
                KeepaliveConfig {
                    idle: Some(Duration::from_millis(1500)),
                    ..base
                },
                "keepalive_idle",
            ),
            (
                KeepaliveConfig {
                    interval: Duration::from_secs(10 * 3600),
                    ..base
                },
                "keepalive_interval",
            ),
            (KeepaliveConfig { count: 0, ..base }, "keepalive_count"),
            (KeepaliveConfig { count: 128, ..base }, "keepalive_count"),
            (
                KeepaliveConfig {
                    user_timeout: Some(Duration::from_secs(600 * 3600)),
                    ..base
                },
                "user_timeout",
            ),
            (
                KeepaliveConfig {
                    user_timeout: Some(Duration::from_micros(1500)),
                    ..base
                },
                "user_timeout",
            ),
        ];
        for (config, field) in cases {
            let e = config.validate().unwrap_err();
            assert_eq!(e.field, field, "{config:?}: {e}");
        }
        // The extremes the kernel does take are accepted, and it takes them.
        let (_listener, stream) = socket_pair();
        for config in [
            KeepaliveConfig {
                idle: Some(Duration::from_secs(1)),
                interval: Duration::from_secs(1),
                count: 1,
                user_timeout: Some(Duration::ZERO),
                ..base
            },
            KeepaliveConfig {
                idle: Some(Duration::from_secs(MAX_SECONDS)),
                interval: Duration::from_secs(MAX_SECONDS),
                count: MAX_COUNT,
                user_timeout: Some(MAX_USER_TIMEOUT),
                ..base
            },
        ] {
            config.validate().unwrap();
            config
                .resolve(Duration::from_secs(30))
                .apply(&stream)
                .unwrap();
        }
    }

    #[test]
    fn a_refused_option_is_named() {
        // The kernel refuses a zero keepalive idle (what `500ms` used to
        // become): the error says which option it was.
        let (_listener, stream) = socket_pair();
        let options = SocketOptions {
            nodelay: true,
            keepalive: Some(Probes {
                idle: Duration::ZERO,
                interval: Duration::from_secs(1),
                count: 1,
            }),
            user_timeout: None,
        };
        let e = options.apply(&stream).unwrap_err();
        assert_eq!(e.option, "TCP_KEEPIDLE", "{e}");
        assert!(e.to_string().starts_with("TCP_KEEPIDLE: "), "{e}");
    }

    #[test]
    fn disabled_turns_keepalive_off_and_leaves_user_timeout_alone() {
        let (_listener, stream) = socket_pair();
        let config = KeepaliveConfig {
            enabled: false,
            ..KeepaliveConfig::default()
        };
        let options = config.resolve(Duration::from_secs(30));
        assert_eq!(options.user_timeout, None);
        assert_eq!(options.to_string(), "keepalive=off user_timeout=off");
        options.apply(&stream).unwrap();
        let sock = SockRef::from(&stream);
        assert!(!sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_user_timeout().unwrap(), None);
    }
}
