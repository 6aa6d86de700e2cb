//! Decoder throughput: a stream of heartbeats and a stream of mixed frames,
//! each fed to a `Decoder` in chunks cut at seeded random points (as reads
//! would cut them). Each stream is measured twice, once with
//! `Throughput::Bytes` and once with `Throughput::Elements` (frames), so
//! criterion prints both bytes/s and frames/s.
//!
//! Defaults keep the whole run near 15 s; command-line flags such as
//! `--measurement-time` still override them.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lubdub::protocol::{
    encode_frame, Decoder, FrameType, DEFAULT_MAX_FRAME, HEADER_LEN, HEARTBEAT_REQUEST,
};

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A byte stream, the number of frames in it, and the read sizes to cut it
/// into (random, 1..=`max_read` bytes, so cuts land inside headers too).
struct Workload {
    bytes: Vec<u8>,
    frames: u64,
    reads: Vec<usize>,
}

impl Workload {
    fn new(bytes: Vec<u8>, frames: u64, max_read: usize, rng: &mut Rng) -> Workload {
        let mut reads = Vec::new();
        let mut left = bytes.len();
        while left > 0 {
            let n = (1 + rng.below(max_read)).min(left);
            reads.push(n);
            left -= n;
        }
        Workload {
            bytes,
            frames,
            reads,
        }
    }

    /// Feeds the whole stream; returns the frame count (checked by the caller
    /// once, and black-boxed in the loop).
    fn decode(&self) -> u64 {
        let mut dec = Decoder::new();
        let mut frames = 0u64;
        let mut rest = &self.bytes[..];
        for &n in &self.reads {
            let (read, tail) = rest.split_at(n);
            rest = tail;
            dec.feed(black_box(read), DEFAULT_MAX_FRAME, |f| {
                frames += 1;
                black_box(f.payload);
            })
            .expect("valid stream");
        }
        frames
    }
}

fn heartbeats(rng: &mut Rng) -> Workload {
    const BEATS: usize = 16_384;
    let bytes = HEARTBEAT_REQUEST.repeat(BEATS);
    // Reads of up to 4 KiB: a busy connection's share of a readiness event.
    Workload::new(bytes, BEATS as u64, 4096, rng)
}

fn mixed(rng: &mut Rng) -> Workload {
    let mut bytes = Vec::new();
    let mut frames = 0;
    while bytes.len() < 1 << 20 {
        match rng.below(10) {
            0..=5 => bytes.extend_from_slice(&HEARTBEAT_REQUEST),
            6 => encode_frame(FrameType::HeartbeatResponse, &[], &mut bytes).unwrap(),
            7 => encode_frame(FrameType::Data, &vec![0x42; rng.below(256)], &mut bytes).unwrap(),
            8 => encode_frame(
                FrameType::Data,
                &vec![0x17; rng.below(16 * 1024)],
                &mut bytes,
            )
            .unwrap(),
            _ => {
                let body = rng.below(512);
                bytes.extend_from_slice(&7i32.to_le_bytes());
                bytes.extend_from_slice(&((HEADER_LEN + body) as i32).to_le_bytes());
                bytes.resize(bytes.len() + body, 0);
            }
        }
        frames += 1;
    }
    Workload::new(bytes, frames, 4096, rng)
}

fn codec(c: &mut Criterion) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (name, work) in [
        ("heartbeats", heartbeats(&mut rng)),
        ("mixed", mixed(&mut rng)),
    ] {
        assert_eq!(
            work.decode(),
            work.frames,
            "{name}: workload decodes wrongly"
        );
        let mut group = c.benchmark_group(format!("decode/{name}"));
        group.throughput(Throughput::Bytes(work.bytes.len() as u64));
        group.bench_function("bytes", |b| b.iter(|| work.decode()));
        group.throughput(Throughput::Elements(work.frames));
        group.bench_function("frames", |b| b.iter(|| work.decode()));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = codec
}
criterion_main!(benches);
