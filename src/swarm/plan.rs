//! How a swarm too big for one process is split over several, and whether
//! the machine can hold it at all.
//!
//! One process holds at most its open-files limit of connections (less a
//! reserve); one source address reaches one server through at most one
//! ephemeral port range; every connection costs memory in the swarm and,
//! more, in the kernel (both ends of it, when the server is on this
//! machine). A plan splits the clients as evenly as possible over workers,
//! gives each a slice of the heartbeat schedule, a share of the connect
//! rate and, when there are source addresses, its own of them, and checks
//! all three limits before anything starts: a plan the machine cannot hold
//! is refused in one line, not found out halfway through a ramp-up.
//!
//! The plan is pure: the machine's limits and the ports in use come in as
//! values ([`Machine`], [`InUse`]), so every rule is tested without the
//! machine it describes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::ports::InUse;
use super::{Exchange, SwarmConfig};
use crate::limits::FD_RESERVE;

/// Most worker processes one swarm runs.
pub const MAX_WORKERS: usize = 1024;

/// Kernel memory per TCP socket, measured: 10,000 idle heartbeating
/// loopback connections (20,000 sockets, both ends) grew the slab by
/// 100 MB — the socket, its file, inode and dentry, its epoll item.
pub const KERNEL_PER_SOCKET: u64 = 5 * 1024;
/// The swarm's own memory per client: its 320-byte entry, the wheel node,
/// the ready queue, the allocator's rounding (a 10,000-client swarm's
/// resident set was about 10 MB), plus its ring of 4-byte send stamps.
pub const SWARM_PER_CLIENT: u64 = 1024;
/// Each worker's own: the binary, its buffers and histograms.
pub const PER_WORKER: u64 = 8 << 20;

/// How many workers: a number, or as many as the open-files limit needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many.
    Count(usize),
    /// As few as hold the clients under the open-files limit, with room.
    Auto,
}

/// The machine's limits, read once ([`Machine::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// The hard open-files limit: each worker raises its soft limit to it.
    pub file_limit: u64,
    /// Bytes of memory available (`MemAvailable`), if known.
    pub mem_available: Option<u64>,
}

impl Machine {
    /// This machine's limits.
    pub fn read() -> Machine {
        Machine {
            file_limit: crate::limits::file_limit().map_or(1024, |l| l.hard),
            mem_available: mem_available(),
        }
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One worker's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// Its index, from 0.
    pub index: usize,
    /// Its clients.
    pub clients: usize,
    /// The fleet's index of its first client.
    pub first: usize,
    /// Workers in the plan (its clients' heartbeats interleave with
    /// theirs: see [`crate::swarm::Slice`]).
    pub of_workers: usize,
    /// Its connects per second (0: unpaced, as the whole).
    pub connect_rate: u64,
    /// Its source addresses (empty: the kernel's choice).
    pub sources: Vec<IpAddr>,
}

/// A swarm split over worker processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The workers, in order.
    pub workers: Vec<WorkerPlan>,
    /// Source addresses the plan chose itself (on loopback, when the
    /// clients need more ports than one address has), or `None`.
    pub picked_sources: Option<Vec<IpAddr>>,
    /// What the plan is expected to need in memory, in bytes.
    pub memory: u64,
}

/// Splits `config` over workers, or says in one line why this machine
/// cannot hold it. `server` is the server's address (`None`: not known
/// yet, and ports are not checked); `in_use` the ports taken towards it
/// (`None`: the range cannot be read).
pub fn plan(
    config: &SwarmConfig,
    workers: Workers,
    machine: &Machine,
    server: Option<SocketAddr>,
    in_use: Option<&InUse>,
) -> Result<Plan, String> {
    let clients = config.clients;
    let per_process = machine.file_limit.saturating_sub(FD_RESERVE);
    let count = match workers {
        Workers::Count(n) => n,
        // A twentieth of the limit left as room: a worker holds a few
        // descriptors past its reserve while it logs and reconnects.
        Workers::Auto => clients.div_ceil((per_process * 19 / 20).max(1) as usize),
    };
    if count == 0 || count > MAX_WORKERS {
        return Err(format!("must be 1 ..= {MAX_WORKERS} (got {count})"));
    }
    if count > clients {
        return Err(format!(
            "{count} workers for {clients} clients: each needs at least one"
        ));
    }
    let largest = clients.div_ceil(count) as u64;
    if largest + FD_RESERVE > machine.file_limit {
        return Err(format!(
            "{largest} clients per worker need {} open files, but a process may hold {} (ulimit -Hn); use more workers (--workers auto picks enough)",
            largest + FD_RESERVE,
            machine.file_limit
        ));
    }
    let mut plan = Plan {
        workers: split(config, count),
        picked_sources: None,
        memory: memory(config, count, server),
    };
    if let (Some(server), Some(in_use)) = (server, in_use) {
        sources(config, &mut plan, server, in_use)?;
    }
    if let Some(available) = machine.mem_available {
        // A tenth left to everything else on the machine.
        if plan.memory > available / 10 * 9 {
            return Err(format!(
                "{clients} clients need about {} MiB ({} KiB each in the swarm and the kernel{}, and {} MiB per worker), but only {} MiB are available (MemAvailable)",
                plan.memory >> 20,
                per_client(config, server) >> 10,
                if is_local(server) { ", both ends on this machine" } else { "" },
                per_worker(config) >> 20,
                available >> 20
            ));
        }
    }
    Ok(plan)
}

/// Clients as even as can be (the first ones one more), each worker's
/// first client, and the connect rate shared in proportion.
fn split(config: &SwarmConfig, count: usize) -> Vec<WorkerPlan> {
    let (each, extra) = (config.clients / count, config.clients % count);
    let mut first = 0;
    (0..count)
        .map(|index| {
            let clients = each + usize::from(index < extra);
            let rate = config.connect_rate as u128 * clients as u128 / config.clients as u128;
            let worker = WorkerPlan {
                index,
                clients,
                first,
                of_workers: count,
                // Unpaced stays unpaced; a paced share is never unpaced.
                connect_rate: match config.connect_rate {
                    0 => 0,
                    _ => (rate as u64).max(1),
                },
                sources: Vec::new(),
            };
            first += clients;
            worker
        })
        .collect()
}

/// Memory for the clients, in the swarm and in the kernel, and per worker.
fn memory(config: &SwarmConfig, count: usize, server: Option<SocketAddr>) -> u64 {
    (config.clients as u64)
        .saturating_mul(per_client(config, server))
        .saturating_add((count as u64).saturating_mul(per_worker(config)))
}

fn per_client(config: &SwarmConfig, server: Option<SocketAddr>) -> u64 {
    let ring = match config.flood {
        Some(depth) => u64::from(depth),
        None => u64::from(config.misses).saturating_add(2).min(64),
    };
    let sockets = if is_local(server) { 2 } else { 1 };
    SWARM_PER_CLIENT + 4 * ring + KERNEL_PER_SOCKET * sockets
}

/// A worker's fixed cost: its own, and the request repeated for writing.
fn per_worker(config: &SwarmConfig) -> u64 {
    let request = match &config.exchange {
        Exchange::Heartbeat => 8,
        Exchange::Fixed { request, .. } => request.len() as u64,
    };
    let copies = u64::from(config.flood.unwrap_or(1).clamp(64, 4096));
    PER_WORKER + request * copies
}

fn is_local(server: Option<SocketAddr>) -> bool {
    server.is_some_and(|s| s.ip().is_loopback())
}

/// Gives each worker its source addresses and checks the ports: the
/// addresses given, split between the workers (each its own, when there
/// are enough); or on loopback, when the kernel's one address has too few
/// ports, addresses picked from 127.0.0.2 up; or the kernel's choice.
fn sources(
    config: &SwarmConfig,
    plan: &mut Plan,
    server: SocketAddr,
    in_use: &InUse,
) -> Result<(), String> {
    let clients = config.clients as u64;
    if !config.sources.is_empty() {
        return assign(&mut plan.workers, &config.sources, in_use).map_err(|e| {
            format!("{e} towards {server}; add --source-addrs, or wait for ports in TIME_WAIT")
        });
    }
    let free = in_use.free(&[]);
    let loopback = matches!(server.ip(), IpAddr::V4(ip) if ip.is_loopback());
    if clients <= free.cheap() || (!loopback && clients <= free.available()) {
        return Ok(());
    }
    let IpAddr::V4(ip) = server.ip() else {
        return Err(not_enough(clients, server, free.available()));
    };
    if !ip.is_loopback() {
        return Err(not_enough(clients, server, free.available()));
    }
    // All of 127.0.0.0/8 is this host's: each worker takes addresses of
    // its own, from 127.0.0.2 up, until they have cheap ports (two fifths
    // of each range, see `Free::cheap`) for its clients, passing over one
    // whose cheap ports are all taken (by an earlier run, say).
    let mut next = u32::from(Ipv4Addr::new(127, 0, 0, 2));
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    let mut picked = Vec::new();
    for w in plan.workers.iter_mut() {
        let (mut own, mut free) = (Vec::new(), 0);
        while free < w.clients as u64 {
            if next > last {
                return Err(not_enough(clients, server, in_use.free(&[]).available()));
            }
            let ip = IpAddr::V4(Ipv4Addr::from(next));
            next += 1;
            match in_use.free(&[ip]).cheap() {
                0 => continue,
                n => free += n,
            }
            own.push(ip);
        }
        picked.extend_from_slice(&own);
        w.sources = own;
    }
    plan.picked_sources = Some(picked);
    Ok(())
}

fn not_enough(clients: u64, server: SocketAddr, free: u64) -> String {
    format!(
        "{clients} clients need as many local ports towards {server}, but the address the kernel picks has {free} free; give --source-addrs"
    )
}

/// Splits `sources` between the workers — a run of its own to each when
/// there are at least as many as workers, all of them to each otherwise —
/// and checks that each worker's addresses (or all of them, when shared)
/// have ports for its clients.
fn assign(workers: &mut [WorkerPlan], sources: &[IpAddr], in_use: &InUse) -> Result<(), String> {
    let count = workers.len();
    if sources.len() >= count {
        for w in workers.iter_mut() {
            let own =
                &sources[w.index * sources.len() / count..(w.index + 1) * sources.len() / count];
            let free = in_use.free(own).available();
            if w.clients as u64 > free {
                return Err(format!(
                    "worker {}'s {} clients need as many local ports, but its {} source address(es) have {free} free",
                    w.index,
                    w.clients,
                    own.len()
                ));
            }
            w.sources = own.to_vec();
        }
    } else {
        let clients: usize = workers.iter().map(|w| w.clients).sum();
        let free = in_use.free(sources).available();
        if clients as u64 > free {
            return Err(format!(
                "{clients} clients need as many local ports, but the {} source address(es) have {free} free",
                sources.len()
            ));
        }
        for w in workers.iter_mut() {
            w.sources = sources.to_vec();
        }
    }
    Ok(())
}

/// Addresses as `--source-addrs` reads them, runs of IPv4 addresses as
/// ranges: `127.0.0.2-127.0.0.9,::1`.
pub fn format_sources(sources: &[IpAddr]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sources.len() {
        let mut j = i;
        while let (IpAddr::V4(a), Some(IpAddr::V4(b))) = (sources[j], sources.get(j + 1)) {
            if u32::from(a).checked_add(1) != Some(u32::from(*b)) {
                break;
            }
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", sources[i], sources[j])
        } else {
            sources[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(clients: usize) -> SwarmConfig {
        SwarmConfig {
            clients,
            ..SwarmConfig::default()
        }
    }

    const MACHINE: Machine = Machine {
        file_limit: 20_000,
        mem_available: Some(24 << 30),
    };

    fn server() -> Option<SocketAddr> {
        Some("127.0.0.1:8898".parse().unwrap())
    }

    fn ports(taken: &[(&str, u64)]) -> InUse {
        InUse {
            range_size: 28_232,
            by_source: taken
                .iter()
                .map(|(ip, n)| (ip.parse().unwrap(), *n))
                .collect(),
        }
    }

    #[test]
    fn clients_are_split_evenly_with_their_phases_and_the_connect_rate() {
        let plan = plan(&config(1003), Workers::Count(4), &MACHINE, None, None).unwrap();
        let shares: Vec<_> = plan.workers.iter().map(|w| (w.clients, w.first)).collect();
        assert_eq!(shares, [(251, 0), (251, 251), (251, 502), (250, 753)]);
        let rates: Vec<_> = plan.workers.iter().map(|w| w.connect_rate).collect();
        assert_eq!(rates, [500, 500, 500, 498]);
        assert!(plan.workers.iter().all(|w| w.sources.is_empty()));
        let unpaced = SwarmConfig {
            connect_rate: 0,
            ..config(10)
        };
        let plan = super::plan(&unpaced, Workers::Count(3), &MACHINE, None, None).unwrap();
        assert!(plan.workers.iter().all(|w| w.connect_rate == 0));
        let slow = SwarmConfig {
            connect_rate: 1,
            ..config(10)
        };
        let plan = super::plan(&slow, Workers::Count(3), &MACHINE, None, None).unwrap();
        assert!(
            plan.workers.iter().all(|w| w.connect_rate == 1),
            "never unpaced"
        );
    }

    #[test]
    fn auto_takes_as_few_workers_as_the_file_limit_allows_with_room() {
        let count = |clients| {
            plan(&config(clients), Workers::Auto, &MACHINE, None, None)
                .unwrap()
                .workers
                .len()
        };
        assert_eq!(count(1), 1);
        assert_eq!(count(18_000), 1);
        // 19,900 would fit one process exactly; auto leaves room.
        assert_eq!(count(19_900), 2);
        assert_eq!(count(100_000), 6);
    }

    #[test]
    fn a_plan_the_machine_cannot_hold_is_refused_in_one_line() {
        let refused = |config: &SwarmConfig, workers, machine: &Machine, in_use: Option<&InUse>| {
            let e = plan(config, workers, machine, server(), in_use).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            e
        };
        let e = refused(&config(30_000), Workers::Count(1), &MACHINE, None);
        assert!(
            e.starts_with(
                "30000 clients per worker need 30100 open files, but a process may hold 20000"
            ),
            "{e}"
        );
        let e = refused(&config(3), Workers::Count(4), &MACHINE, None);
        assert_eq!(e, "4 workers for 3 clients: each needs at least one");
        let e = refused(&config(10), Workers::Count(0), &MACHINE, None);
        assert!(e.starts_with("must be 1 ..= 1024"), "{e}");
        // 10 million loopback clients: 11 KiB each, far past 24 GiB.
        let e = refused(&config(10_000_000), Workers::Auto, &MACHINE, None);
        assert!(e.contains("MiB are available (MemAvailable)"), "{e}");
        assert!(e.contains("both ends on this machine"), "{e}");
        // Ports: a remote server with too few from the kernel's address.
        let remote = "10.1.2.3:80".parse().ok();
        let e = plan(
            &config(30_000),
            Workers::Count(2),
            &MACHINE,
            remote,
            Some(&ports(&[])),
        )
        .unwrap_err();
        assert!(e.contains("give --source-addrs"), "{e}");
        // Addresses given, one per worker, one of them short of ports.
        let given = SwarmConfig {
            sources: vec!["127.0.0.5".parse().unwrap(), "127.0.0.6".parse().unwrap()],
            ..config(36_000)
        };
        let e = refused(
            &given,
            Workers::Count(2),
            &MACHINE,
            Some(&ports(&[("127.0.0.6", 12_000)])),
        );
        assert!(e.starts_with("worker 1's 18000 clients need as many local ports, but its 1 source address(es) have 16232 free towards 127.0.0.1:8898"), "{e}");
    }

    #[test]
    fn given_sources_are_split_between_workers_or_shared() {
        let given = |n: u8| SwarmConfig {
            sources: (0..n)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, i)))
                .collect(),
            ..config(30_000)
        };
        let plan = plan(
            &given(5),
            Workers::Count(2),
            &MACHINE,
            server(),
            Some(&ports(&[])),
        )
        .unwrap();
        assert_eq!(
            format_sources(&plan.workers[0].sources),
            "127.0.1.0-127.0.1.1"
        );
        assert_eq!(
            format_sources(&plan.workers[1].sources),
            "127.0.1.2-127.0.1.4"
        );
        assert_eq!(plan.picked_sources, None);
        let plan = super::plan(
            &given(2),
            Workers::Count(3),
            &MACHINE,
            server(),
            Some(&ports(&[])),
        )
        .unwrap();
        assert!(plan.workers.iter().all(|w| w.sources.len() == 2));
    }

    #[test]
    fn on_loopback_the_plan_picks_source_addresses_when_one_has_too_few_ports() {
        // Fits the cheap part of the kernel's one address: nothing picked.
        let plan = plan(
            &config(11_000),
            Workers::Count(2),
            &MACHINE,
            server(),
            Some(&ports(&[])),
        )
        .unwrap();
        assert_eq!(plan.picked_sources, None);
        // 28,000 fit one range, but not its cheap part: four addresses.
        let plan = super::plan(
            &config(28_000),
            Workers::Count(2),
            &MACHINE,
            server(),
            Some(&ports(&[])),
        )
        .unwrap();
        assert_eq!(
            format_sources(&plan.picked_sources.unwrap()),
            "127.0.0.2-127.0.0.5"
        );
        // 60,000 in four workers of 15,000: each needs two addresses.
        let plan = super::plan(
            &config(60_000),
            Workers::Auto,
            &MACHINE,
            server(),
            Some(&ports(&[])),
        )
        .unwrap();
        assert_eq!(plan.workers.len(), 4);
        let picked = plan.picked_sources.unwrap();
        assert_eq!(format_sources(&picked), "127.0.0.2-127.0.0.9");
        assert_eq!(
            format_sources(&plan.workers[3].sources),
            "127.0.0.8-127.0.0.9"
        );
        // Ports taken on the first address: its worker takes two more (the
        // next one's cheap part is gone, and it is passed over).
        let busy = ports(&[("127.0.0.2", 10_000), ("127.0.0.4", 14_116)]);
        let plan = super::plan(
            &config(60_000),
            Workers::Auto,
            &MACHINE,
            server(),
            Some(&busy),
        )
        .unwrap();
        assert_eq!(
            format_sources(&plan.workers[0].sources),
            "127.0.0.2-127.0.0.3,127.0.0.5"
        );
        assert_eq!(
            format_sources(&plan.workers[1].sources),
            "127.0.0.6-127.0.0.7"
        );
        assert_eq!(
            format_sources(&plan.picked_sources.unwrap()),
            "127.0.0.2-127.0.0.3,127.0.0.5-127.0.0.11"
        );
    }

    #[test]
    fn sources_are_written_as_ranges_where_they_run_on() {
        let ips: Vec<IpAddr> = [
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.9",
            "::1",
            "10.0.0.255",
            "10.0.1.0",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let text = format_sources(&ips);
        assert_eq!(
            text,
            "127.0.0.2-127.0.0.4,127.0.0.9,::1,10.0.0.255-10.0.1.0"
        );
        assert_eq!(crate::swarm::parse_sources(&text).unwrap(), ips);
    }
}
