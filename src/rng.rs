//! A xoshiro256++ generator (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
//! 2021) whose state can be checkpointed.
//!
//! [`SnapshotRng`] produces exactly the stream of `rand::rngs::Xoshiro256PlusPlus` (same
//! SplitMix64 `seed_from_u64`, same `next_u64`, `next_u32` = upper 32 bits, `fill_bytes` from
//! little-endian `next_u64` words), so an env that switches to it keeps its episodes. We own the
//! type because rand only serializes its generator under its `serde` feature, and turning that on
//! would change the feature set of `rand`, which burn shares (and so rebuild burn).
//!
//! Serialized as `{"s": [s0, s1, s2, s3]}` (JSON integers are exact for `u64`); deserializing the
//! all-zero state, on which xoshiro only ever yields zeros, is an error.

use std::convert::Infallible;

use rand::rand_core::utils;
use rand::{SeedableRng, TryRng};
use serde::{Deserialize, Serialize};

/// A serializable xoshiro256++ generator, stream-identical to `rand::rngs::Xoshiro256PlusPlus`.
///
/// It implements `rand::TryRng<Error = Infallible>`, hence `rand::Rng` and `rand::RngExt`
/// (`random`, `random_range`, …), and `SeedableRng`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawState")]
pub struct SnapshotRng {
    s: [u64; 4],
}

/// The serialized form, checked before it becomes a generator.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    s: [u64; 4],
}

impl TryFrom<RawState> for SnapshotRng {
    type Error = String;

    fn try_from(raw: RawState) -> Result<Self, Self::Error> {
        if raw.s == [0; 4] {
            return Err("the all-zero xoshiro256++ state is invalid (it only yields zeros)".into());
        }
        Ok(Self { s: raw.s })
    }
}

impl SeedableRng for SnapshotRng {
    type Seed = [u8; 32];

    /// The state read from `seed` as four little-endian words; the all-zero seed maps to
    /// `seed_from_u64(0)`, as rand's generator does.
    fn from_seed(seed: [u8; 32]) -> Self {
        let s: [u64; 4] = utils::read_words(&seed);
        if s == [0; 4] {
            return Self::seed_from_u64(0);
        }
        Self { s }
    }

    /// The state filled by SplitMix64 from `state` (rand_core's default would use PCG32, which
    /// rand's xoshiro overrides; so do we).
    fn seed_from_u64(mut state: u64) -> Self {
        const PHI: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut s = [0; 4];
        for word in &mut s {
            state = state.wrapping_add(PHI);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *word = z ^ (z >> 31);
        }
        Self { s }
    }
}

impl TryRng for SnapshotRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        // The lowest bits have linear dependencies: keep the upper half.
        self.try_next_u64().map(|word| (word >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        Ok(result)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        utils::fill_bytes_via_next_word(dst, || self.try_next_u64())
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{Rng, RngExt};
    use rand_distr::Distribution;

    use super::*;

    #[test]
    fn reference_vector_of_the_c_implementation() {
        // From rand's own test, produced with http://xoshiro.di.unimi.it/xoshiro256plusplus.c.
        let mut seed = [0u8; 32];
        for (k, word) in [1u8, 2, 3, 4].into_iter().enumerate() {
            seed[8 * k] = word;
        }
        let mut rng = SnapshotRng::from_seed(seed);
        let expected: [u64; 10] = [
            41943041,
            58720359,
            3588806011781223,
            3591011842654386,
            9228616714210784205,
            9973669472204895162,
            14011001112246962877,
            12406186145184390807,
            15849039046786891736,
            10450023813501588000,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn zero_seed_maps_to_seed_from_u64_zero() {
        // rand's expected stream for seed_from_u64(0).
        let expected: [u64; 3] = [
            5987356902031041503,
            7051070477665621255,
            6633766593972829180,
        ];
        let mut a = SnapshotRng::from_seed([0; 32]);
        let mut b = SnapshotRng::seed_from_u64(0);
        for e in expected {
            assert_eq!(a.next_u64(), e);
            assert_eq!(b.next_u64(), e);
        }
    }

    const SEEDS: [u64; 5] = [0, 1, 42, 0xdead_beef, u64::MAX];

    #[test]
    fn words_match_rands_xoshiro() {
        for seed in SEEDS {
            let mut ours = SnapshotRng::seed_from_u64(seed);
            let mut theirs = Xoshiro256PlusPlus::seed_from_u64(seed);
            for k in 0..1000 {
                assert_eq!(ours.next_u64(), theirs.next_u64(), "seed {seed} u64 {k}");
                assert_eq!(ours.next_u32(), theirs.next_u32(), "seed {seed} u32 {k}");
            }
        }
    }

    #[test]
    fn derived_values_match_rands_xoshiro() {
        for seed in SEEDS {
            let mut ours = SnapshotRng::seed_from_u64(seed);
            let mut theirs = Xoshiro256PlusPlus::seed_from_u64(seed);
            for k in 0..1000 {
                let (a, b): (f64, f64) = (ours.random(), theirs.random());
                assert_eq!(a.to_bits(), b.to_bits(), "seed {seed} f64 {k}");
                let (a, b): (f32, f32) = (ours.random(), theirs.random());
                assert_eq!(a.to_bits(), b.to_bits(), "seed {seed} f32 {k}");
                assert_eq!(
                    ours.random_range(0..7usize),
                    theirs.random_range(0..7usize),
                    "seed {seed} range {k}"
                );
                let (a, b) = (
                    ours.random_range(-0.05..0.05f64),
                    theirs.random_range(-0.05..0.05f64),
                );
                assert_eq!(a.to_bits(), b.to_bits(), "seed {seed} float range {k}");
                let z_ours: f32 = rand_distr::StandardNormal.sample(&mut ours);
                let z_theirs: f32 = rand_distr::StandardNormal.sample(&mut theirs);
                assert_eq!(
                    z_ours.to_bits(),
                    z_theirs.to_bits(),
                    "seed {seed} normal {k}"
                );
            }
        }
    }

    #[test]
    fn bytes_match_rands_xoshiro_for_every_tail_length() {
        let mut ours = SnapshotRng::seed_from_u64(9);
        let mut theirs = Xoshiro256PlusPlus::seed_from_u64(9);
        for len in 0..40 {
            let mut a = vec![0u8; len];
            let mut b = vec![0u8; len];
            ours.fill_bytes(&mut a);
            theirs.fill_bytes(&mut b);
            assert_eq!(a, b, "length {len}");
        }
        assert_eq!(ours.next_u64(), theirs.next_u64());
    }

    #[test]
    fn json_round_trip_continues_the_stream() {
        let mut rng = SnapshotRng::seed_from_u64(5);
        for _ in 0..17 {
            rng.next_u64();
        }
        let text = serde_json::to_string(&rng).unwrap();
        let mut restored: SnapshotRng = serde_json::from_str(&text).unwrap();
        assert_eq!(restored, rng);
        for _ in 0..100 {
            assert_eq!(restored.next_u64(), rng.next_u64());
        }
    }

    #[test]
    fn the_zero_state_and_malformed_states_are_rejected() {
        for text in [
            r#"{"s":[0,0,0,0]}"#,
            r#"{"s":[1,2,3]}"#,
            r#"{"s":[1,2,3,-4]}"#,
            r#"{"s":[1,2,3,4],"t":0}"#,
        ] {
            assert!(serde_json::from_str::<SnapshotRng>(text).is_err(), "{text}");
        }
        let err = serde_json::from_str::<SnapshotRng>(r#"{"s":[0,0,0,0]}"#).unwrap_err();
        assert!(err.to_string().contains("all-zero"), "{err}");
    }
}
