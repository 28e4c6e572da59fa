//! Exact serialization of floats as their IEEE-754 bit patterns, for checkpoints that must resume
//! bit for bit.
//!
//! serde_json writes the shortest decimal of a float but, without its `float_roundtrip` feature
//! (which would change a feature set that burn shares), parses decimals only to within an ulp.
//! JSON integers are exact, so a checkpointed float is stored as `f32::to_bits` (`u32`) or
//! `f64::to_bits` (`u64`). Use it as `#[serde(with = "factored_rl::float_bits")]` on an `f32`,
//! `f64`, `Vec<_>` or array field, or through [`FloatBits`] directly.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A float, or a collection of floats, with an exact integer representation.
pub trait FloatBits: Sized {
    /// The integer form: `u32` for `f32`, `u64` for `f64`, a `Vec` of those for collections.
    type Bits: Serialize + DeserializeOwned;

    /// The bit patterns.
    fn to_bits_repr(&self) -> Self::Bits;

    /// The value back from its bit patterns.
    ///
    /// # Errors
    /// A message when `bits` does not fit (an array of the wrong length).
    fn from_bits_repr(bits: Self::Bits) -> Result<Self, String>;

    /// Whether every float is finite.
    fn all_finite(&self) -> bool;
}

impl FloatBits for f32 {
    type Bits = u32;

    fn to_bits_repr(&self) -> u32 {
        self.to_bits()
    }

    fn from_bits_repr(bits: u32) -> Result<Self, String> {
        Ok(f32::from_bits(bits))
    }

    fn all_finite(&self) -> bool {
        self.is_finite()
    }
}

impl FloatBits for f64 {
    type Bits = u64;

    fn to_bits_repr(&self) -> u64 {
        self.to_bits()
    }

    fn from_bits_repr(bits: u64) -> Result<Self, String> {
        Ok(f64::from_bits(bits))
    }

    fn all_finite(&self) -> bool {
        self.is_finite()
    }
}

impl<T: FloatBits> FloatBits for Vec<T> {
    type Bits = Vec<T::Bits>;

    fn to_bits_repr(&self) -> Self::Bits {
        self.iter().map(FloatBits::to_bits_repr).collect()
    }

    fn from_bits_repr(bits: Self::Bits) -> Result<Self, String> {
        bits.into_iter().map(T::from_bits_repr).collect()
    }

    fn all_finite(&self) -> bool {
        self.iter().all(FloatBits::all_finite)
    }
}

impl<T: FloatBits, const N: usize> FloatBits for [T; N] {
    // serde only implements arrays of fixed small lengths, so the integer form is a Vec whose
    // length is checked on the way back.
    type Bits = Vec<T::Bits>;

    fn to_bits_repr(&self) -> Self::Bits {
        self.iter().map(FloatBits::to_bits_repr).collect()
    }

    fn from_bits_repr(bits: Self::Bits) -> Result<Self, String> {
        let found = bits.len();
        let values = Vec::<T>::from_bits_repr(bits)?;
        values
            .try_into()
            .map_err(|_| format!("expected {N} values, found {found}"))
    }

    fn all_finite(&self) -> bool {
        self.iter().all(FloatBits::all_finite)
    }
}

/// Serializes `value` as its bit patterns (for `#[serde(with = "...")]`).
///
/// # Errors
/// The serializer's.
pub fn serialize<T: FloatBits, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    value.to_bits_repr().serialize(serializer)
}

/// Deserializes a value written by [`serialize`] (for `#[serde(with = "...")]`).
///
/// # Errors
/// The deserializer's, or a custom error for an array of the wrong length.
pub fn deserialize<'de, T: FloatBits, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    let bits = T::Bits::deserialize(deserializer)?;
    T::from_bits_repr(bits).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct Floats {
        #[serde(with = "super")]
        single: f32,
        #[serde(with = "super")]
        double: f64,
        #[serde(with = "super")]
        many: Vec<f32>,
        #[serde(with = "super")]
        fixed: [f64; 3],
    }

    #[test]
    fn awkward_values_survive_a_string_round_trip_exactly() {
        let value = Floats {
            single: 0.1 + 0.2,
            double: std::f64::consts::PI * 1e-300,
            many: vec![f32::MIN_POSITIVE / 3.0, -0.0, f32::NAN, 1.0e38, 0.3],
            fixed: [f64::from(0.1f32), 5e-324, -1.0 / 3.0],
        };
        let text = serde_json::to_string(&value).unwrap();
        let back: Floats = serde_json::from_str(&text).unwrap();
        assert_eq!(back.single.to_bits(), value.single.to_bits());
        assert_eq!(back.double.to_bits(), value.double.to_bits());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.many), bits(&value.many));
        for (a, b) in back.fixed.iter().zip(&value.fixed) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn an_array_of_the_wrong_length_is_an_error() {
        let text = r#"{"single":0,"double":0,"many":[],"fixed":[1,2]}"#;
        let err = serde_json::from_str::<Floats>(text).unwrap_err();
        assert!(
            err.to_string().contains("expected 3 values, found 2"),
            "{err}"
        );
    }
}
