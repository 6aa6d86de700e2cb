//! What one chaos run does, drawn from its seed: how many peers of each
//! kind, when each dying peer goes quiet, and the fault schedule. Everything
//! random in a run is drawn from here (each peer gets a generator split from
//! the seed's), so a seed replays the same schedule and mix; only the
//! machine's timing differs between replays.

use std::time::Duration;

use lubdub::rng::Rng;

/// The liveness rule the server runs with: `--interval 200ms --misses 3`.
pub const INTERVAL: Duration = Duration::from_millis(200);
pub const LIMIT: Duration = Duration::from_millis(600);
/// The server's default tick for that interval (interval / 20).
pub const TICK: Duration = Duration::from_millis(10);

/// How hard a run pushes.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub name: &'static str,
    /// Peers keep running this long; faults end `QUIET_END` before.
    pub duration: Duration,
    pub steady: u64,
    pub split: u64,
    pub dying: u64,
    pub tricklers: u64,
    pub flooders: u64,
    pub churners: u64,
    /// Faults wanted (fewer if they do not fit).
    pub faults: u64,
    /// Stop pairs whose second stop comes 0.1–0.3 s after the first, with
    /// a connect burst and the flooders' writes landing inside: the
    /// conditions of the one live-peer eviction seen so far, made common.
    pub hunt: bool,
}

/// About 150 peers and 10 faults in 40 s: the run `cargo test` does.
pub const SHORT: Profile = Profile {
    name: "short",
    duration: Duration::from_secs(40),
    steady: 45,
    split: 40,
    dying: 25,
    tricklers: 8,
    flooders: 4,
    churners: 25,
    faults: 10,
    hunt: false,
};

/// More split writers, stop pairs close together, flooders and bursts
/// around the stops: for hunting a live-peer eviction over many seeds.
pub const HUNT: Profile = Profile {
    name: "hunt",
    duration: Duration::from_secs(60),
    steady: 60,
    split: 200,
    dying: 20,
    tricklers: 8,
    flooders: 12,
    churners: 30,
    faults: 20,
    hunt: true,
};

/// Faults stop this long before the peers do, so the last evictions they
/// delayed still happen inside the run.
pub const QUIET_END: Duration = Duration::from_secs(5);
/// No fault before this: every peer is connected and heartbeating.
pub const FIRST_FAULT: Duration = Duration::from_secs(2);

/// One fault, timed from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// SIGSTOP the server, SIGCONT it `len` later.
    Stop { at: Duration, len: Duration },
    /// Two stops, the second `gap` after the first ended: it falls inside
    /// the window in which the first used up the one excuse. `burst` is a
    /// connect burst begun inside the second stop (0: none).
    Pair {
        at: Duration,
        first: Duration,
        gap: Duration,
        second: Duration,
        burst: u64,
    },
    /// `threads` busy threads and the server pinned to one core.
    Hog {
        at: Duration,
        len: Duration,
        threads: u64,
        core: u64,
    },
    /// `connects` short connections (connect, close) as fast as they go.
    Burst { at: Duration, connects: u64 },
}

impl Fault {
    pub fn at(&self) -> Duration {
        match *self {
            Fault::Stop { at, .. }
            | Fault::Pair { at, .. }
            | Fault::Hog { at, .. }
            | Fault::Burst { at, .. } => at,
        }
    }

    /// How long the fault lasts (a burst: a guess, for spacing only).
    pub fn len(&self) -> Duration {
        match *self {
            Fault::Stop { len, .. } | Fault::Hog { len, .. } => len,
            Fault::Pair {
                first, gap, second, ..
            } => first + gap + second,
            Fault::Burst { .. } => Duration::from_millis(300),
        }
    }
}

/// One dying peer: its kind (split or not) and when it goes quiet.
#[derive(Debug, Clone, Copy)]
pub struct Death {
    pub split: bool,
    pub at: Duration,
}

/// A run, drawn from a seed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub profile: Profile,
    pub faults: Vec<Fault>,
    pub deaths: Vec<Death>,
    /// Seeds for the peer threads' own generators (phases, splits, churn).
    pub peer_seeds: [u64; 4],
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Plan {
    pub fn new(seed: u64, profile: Profile, ncpu: u64) -> Plan {
        let mut rng = Rng::new(seed);
        let mut faults = Vec::new();
        let end = profile.duration - QUIET_END;
        let mut t = FIRST_FAULT;
        while (faults.len() as u64) < profile.faults {
            t += ms(rng.between(300, if profile.hunt { 1500 } else { 2500 }));
            let roll = rng.below(100);
            let fault = if profile.hunt {
                match roll {
                    0..=59 => pair(&mut rng, t, true),
                    60..=74 => stop(&mut rng, t),
                    75..=84 => hog(&mut rng, t, ncpu),
                    _ => burst(&mut rng, t),
                }
            } else {
                match roll {
                    0..=29 => stop(&mut rng, t),
                    30..=54 => pair(&mut rng, t, false),
                    55..=74 => hog(&mut rng, t, ncpu),
                    _ => burst(&mut rng, t),
                }
            };
            if t + fault.len() > end {
                break;
            }
            t += fault.len();
            faults.push(fault);
        }
        // Deaths early enough that the eviction, however delayed by the
        // faults, falls inside the run.
        let deaths = (0..profile.dying)
            .map(|_| Death {
                split: rng.below(2) == 0,
                at: ms(rng.between(1_000, (end - ms(1_000)).as_millis() as u64)),
            })
            .collect();
        let peer_seeds = [
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ];
        Plan {
            seed,
            profile,
            faults,
            deaths,
            peer_seeds,
        }
    }

    /// One line: the mix and the schedule, for the log of a run.
    pub fn describe(&self) -> String {
        let p = &self.profile;
        let mut s = format!(
            "seed={} profile={} duration={}s peers: steady={} split={} dying={} tricklers={} \
             flooders={} churners={}; faults:",
            self.seed,
            p.name,
            p.duration.as_secs(),
            p.steady,
            p.split,
            p.dying,
            p.tricklers,
            p.flooders,
            p.churners
        );
        for f in &self.faults {
            s += &match *f {
                Fault::Stop { at, len } => {
                    format!(" stop@{}ms/{}ms", at.as_millis(), len.as_millis())
                }
                Fault::Pair {
                    at,
                    first,
                    gap,
                    second,
                    burst,
                } => format!(
                    " pair@{}ms/{}ms+{}ms+{}ms{}",
                    at.as_millis(),
                    first.as_millis(),
                    gap.as_millis(),
                    second.as_millis(),
                    if burst > 0 {
                        format!("(burst {burst})")
                    } else {
                        String::new()
                    }
                ),
                Fault::Hog {
                    at,
                    len,
                    threads,
                    core,
                } => format!(
                    " hog@{}ms/{}ms x{threads} cpu{core}",
                    at.as_millis(),
                    len.as_millis()
                ),
                Fault::Burst { at, connects } => format!(" burst@{}ms x{connects}", at.as_millis()),
            };
        }
        s
    }
}

fn stop(rng: &mut Rng, at: Duration) -> Fault {
    Fault::Stop {
        at,
        len: ms(rng.between(100, 2_500)),
    }
}

fn pair(rng: &mut Rng, at: Duration, hunt: bool) -> Fault {
    Fault::Pair {
        at,
        first: ms(rng.between(300, 1_500)),
        // Inside the excuse window the first stop opened (limit + interval
        // + threshold = 850 ms of watched time): the second is not excused.
        gap: ms(if hunt {
            rng.between(100, 300)
        } else {
            rng.between(100, 700)
        }),
        second: ms(rng.between(if hunt { 700 } else { 100 }, 1_500)),
        burst: if hunt || rng.below(3) == 0 {
            rng.between(200, 600)
        } else {
            0
        },
    }
}

fn hog(rng: &mut Rng, at: Duration, ncpu: u64) -> Fault {
    Fault::Hog {
        at,
        len: ms(rng.between(1_000, 4_000)),
        threads: rng.between(1, 3),
        core: rng.below(ncpu.max(1)),
    }
}

fn burst(rng: &mut Rng, at: Duration) -> Fault {
    Fault::Burst {
        at,
        connects: rng.between(200, 500),
    }
}
