//! The kernel's own liveness checks, as a second line of defence.
//!
//! lubdub's heartbeats catch a peer that stops talking. Two failures they
//! cannot see from the application on their own are a peer that vanished
//! without a FIN or RST (a cable pull, a NAT that dropped its mapping) while
//! *we* are not sending, and data we sent that is never acknowledged. The
//! first is TCP keepalive's job; the second is `TCP_USER_TIMEOUT`'s (Linux).
//!
//! When `TCP_USER_TIMEOUT` is set, Linux also uses it to decide when keepalive
//! probing has failed, so it must be at least `idle + interval × count` or it
//! cuts probing short; by default it is exactly that (Cloudflare, "When TCP
//! sockets refuse to die", 2019).

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// Socket options applied to every accepted or connected socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// `SO_KEEPALIVE` on/off; when off the three timings below are not set.
    pub enabled: bool,
    /// `TCP_KEEPIDLE`: quiet time before the first probe.
    pub idle: Duration,
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
    /// Probing starts after 30 s of silence (the default liveness limit, 5 s ×
    /// 6), then every 5 s, 3 times: a dead peer is dropped by the kernel within
    /// 45 s even if lubdub's own timers were somehow not running.
    fn default() -> Self {
        KeepaliveConfig {
            enabled: true,
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
            user_timeout: None,
            nodelay: true,
        }
    }
}

impl KeepaliveConfig {
    /// The `TCP_USER_TIMEOUT` this config applies, if any.
    pub fn effective_user_timeout(&self) -> Option<Duration> {
        match self.user_timeout {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None if self.enabled => Some(self.idle + self.interval * self.count),
            None => None,
        }
    }

    /// Applies the options to a connected TCP socket.
    pub fn apply<S>(&self, socket: &S) -> io::Result<()>
    where
        S: std::os::fd::AsFd,
    {
        let sock = SockRef::from(socket);
        if self.nodelay {
            sock.set_tcp_nodelay(true)?;
        }
        if self.enabled {
            let params = TcpKeepalive::new()
                .with_time(self.idle)
                .with_interval(self.interval)
                .with_retries(self.count);
            sock.set_tcp_keepalive(&params)?;
        } else {
            sock.set_keepalive(false)?;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(timeout) = self.effective_user_timeout() {
            sock.set_tcp_user_timeout(Some(timeout))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn applies_every_option_to_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let config = KeepaliveConfig {
            idle: Duration::from_secs(7),
            interval: Duration::from_secs(2),
            count: 4,
            ..KeepaliveConfig::default()
        };
        config.apply(&stream).unwrap();
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
    fn disabled_turns_keepalive_off_and_leaves_user_timeout_alone() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let config = KeepaliveConfig {
            enabled: false,
            ..KeepaliveConfig::default()
        };
        assert_eq!(config.effective_user_timeout(), None);
        config.apply(&stream).unwrap();
        let sock = SockRef::from(&stream);
        assert!(!sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_user_timeout().unwrap(), None);
    }
}
