//! Text embeddings for the memory store: the [`TextEmbedder`] trait the environment depends on
//! (the OLMoE encoder implements it too) and a small deterministic [`NgramEmbedder`].

use std::sync::Arc;

use crate::error::{Error, Result};

/// Turns a text into a plain vector of floats; the memory store ranks entries by the cosine
/// similarity of these vectors. Every call of one embedder must return the same length.
pub trait TextEmbedder {
    /// The embedding of `text`.
    ///
    /// # Errors
    /// Whatever the embedder cannot do (tokenizing, a device error, …).
    fn embed(&self, text: &str) -> Result<Vec<f32>>;
}

impl<T: TextEmbedder + ?Sized> TextEmbedder for &T {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        (**self).embed(text)
    }
}

impl<T: TextEmbedder + ?Sized> TextEmbedder for Arc<T> {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        (**self).embed(text)
    }
}

/// A hashed bag of character n-grams, L2-normalized: lowercase the text, pad it with one space
/// on each side, and count each window of `ngram` characters in bucket `fnv1a(window) mod
/// d_embed`. Deterministic, instant, and good at what the memory tools need: texts that share
/// names and phrases ("Alice lives in Rome" / "where does Alice live?") are close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgramEmbedder {
    d_embed: usize,
    ngram: usize,
}

impl NgramEmbedder {
    /// An embedder with `d_embed` buckets over `ngram`-character windows.
    ///
    /// # Errors
    /// [`Error::Invalid`] when either is 0.
    pub fn new(d_embed: usize, ngram: usize) -> Result<Self> {
        if d_embed == 0 {
            return Err(Error::invalid("d_embed", "must be at least 1"));
        }
        if ngram == 0 {
            return Err(Error::invalid("ngram", "must be at least 1"));
        }
        Ok(Self { d_embed, ngram })
    }

    /// The embedding width.
    pub fn d_embed(&self) -> usize {
        self.d_embed
    }
}

impl Default for NgramEmbedder {
    /// 256 buckets of character trigrams.
    fn default() -> Self {
        Self {
            d_embed: 256,
            ngram: 3,
        }
    }
}

impl TextEmbedder for NgramEmbedder {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let chars: Vec<char> = std::iter::once(' ')
            .chain(text.chars().flat_map(char::to_lowercase))
            .chain(std::iter::once(' '))
            .collect();
        let mut counts = vec![0.0f32; self.d_embed];
        for window in chars.windows(self.ngram.min(chars.len())) {
            counts[(fnv1a(window) % self.d_embed as u64) as usize] += 1.0;
        }
        let norm = counts.iter().map(|c| c * c).sum::<f32>().sqrt();
        // The padding guarantees at least one window, so the norm is positive.
        counts.iter_mut().for_each(|c| *c /= norm);
        Ok(counts)
    }
}

fn fnv1a(chars: &[char]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in chars {
        for byte in u32::from(c).to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Cosine similarity of two vectors of the same length (the store checks lengths before it
/// compares); 0 when either vector is all zeros (never NaN).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norm_b = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm_a == 0.0 || norm_b == 0.0 {
        0.0
    } else {
        dot / (norm_a * norm_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ngram_embeddings_are_deterministic_unit_vectors() {
        let embedder = NgramEmbedder::default();
        for text in ["", "a", "Alice lives in Rome", "Ça va? 日本"] {
            let v = embedder.embed(text).unwrap();
            assert_eq!(v.len(), 256);
            assert_eq!(v, embedder.embed(text).unwrap());
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{text:?}: norm {norm}");
        }
    }

    #[test]
    fn shared_names_and_phrases_are_closer() {
        let embedder = NgramEmbedder::default();
        let e = |t: &str| embedder.embed(t).unwrap();
        let question = e("where does Alice live?");
        let right = cosine_similarity(&question, &e("Alice lives in Rome"));
        for other in ["Bruno works at Acme", "Lunch was great, thanks!"] {
            let wrong = cosine_similarity(&question, &e(other));
            assert!(right > wrong, "{right} vs {wrong} ({other})");
        }
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn zero_sizes_are_rejected() {
        assert!(
            matches!(NgramEmbedder::new(0, 3), Err(Error::Invalid { name, .. }) if name == "d_embed")
        );
        assert!(
            matches!(NgramEmbedder::new(8, 0), Err(Error::Invalid { name, .. }) if name == "ngram")
        );
    }
}
