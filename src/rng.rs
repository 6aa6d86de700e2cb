//! A tiny seeded pseudo-random generator for jitter and heartbeat phase.
//!
//! Backoff jitter and spreading heartbeats need numbers that are cheap,
//! reproducible in tests (same seed, same sequence) and different between
//! clients; they do not need cryptographic strength. SplitMix64 (Steele, Lea
//! and Flood, "Fast splittable pseudorandom number generators", 2014) gives
//! that in eight bytes of state and a handful of instructions, so lubdub does
//! not pull in `rand` for it.

use std::hash::{BuildHasher, Hasher};

/// SplitMix64: 8 bytes of state, never allocates.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// A generator seeded from the OS's randomness, through the per-process
    /// random keys std already draws for `HashMap` (no extra dependency).
    pub fn from_entropy() -> Rng {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::process::id() as u64);
        Rng::new(hasher.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0), by Lemire's
    /// multiply-shift; its bias is below 2⁻³² for any bound under 2³², far
    /// below anything jitter could notice.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((self.next_u64() as u128 * bound as u128) >> 64) as u64
    }

    /// A number in `low..=high` (`low` when `high <= low`).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A fresh generator for a child (a client in a swarm), so clients seeded
    /// from one parent still get unrelated sequences.
    pub fn split(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_known_first_value() {
        let mut a = Rng::new(1234567);
        let mut b = Rng::new(1234567);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Reference value of SplitMix64 for seed 1234567 (from the C reference).
        assert_eq!(Rng::new(1234567).next_u64(), 6457827717110365317);
    }

    #[test]
    fn between_stays_inside_and_reaches_both_ends() {
        let mut rng = Rng::new(7);
        let (mut saw_low, mut saw_high) = (false, false);
        for _ in 0..10_000 {
            let v = rng.between(10, 20);
            assert!((10..=20).contains(&v), "{v}");
            saw_low |= v == 10;
            saw_high |= v == 20;
        }
        assert!(saw_low && saw_high);
        assert_eq!(rng.between(5, 5), 5);
        assert_eq!(rng.between(9, 3), 9);
        assert_eq!(rng.below(0), 0);
        let _ = rng.between(0, u64::MAX);
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = Rng::new(99);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[rng.below(10) as usize] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!((9_000..11_000).contains(n), "bucket {i}: {n}");
        }
    }

    #[test]
    fn entropy_seeds_differ() {
        assert_ne!(
            Rng::from_entropy().next_u64(),
            Rng::from_entropy().next_u64()
        );
    }
}
