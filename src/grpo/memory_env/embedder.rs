//! Text embeddings for the memory store: the [`TextEmbedder`] trait the environment depends on
//! (the OLMoE encoder implements it too) and a small deterministic [`NgramEmbedder`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// Remembers every embedding `inner` computed, so that a text is embedded once: the memory tools
/// embed the same message contents and questions over and over, and a neural encoder is slow.
/// Thread-safe; clones of an `Arc<CachedEmbedder<_>>` share the cache. The cache holds one vector
/// per distinct text seen (the environment's texts come from a finite vocabulary).
#[derive(Debug)]
pub struct CachedEmbedder<E> {
    inner: E,
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

impl<E> CachedEmbedder<E> {
    /// An empty cache in front of `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The embedder behind the cache.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Distinct texts embedded so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was embedded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<f32>>> {
        // A panic while holding the lock cannot leave a half-written entry (insert is the only
        // write), so a poisoned cache is still consistent.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<E: TextEmbedder> TextEmbedder for CachedEmbedder<E> {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        if let Some(embedding) = self.lock().get(text) {
            return Ok(embedding.clone());
        }
        // Errors are not cached: the next call tries again.
        let embedding = self.inner.embed(text)?;
        self.lock().insert(text.to_string(), embedding.clone());
        Ok(embedding)
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
    fn the_cache_embeds_each_text_once_and_returns_the_same_vector() {
        struct Counting(std::sync::atomic::AtomicUsize);
        impl TextEmbedder for Counting {
            fn embed(&self, text: &str) -> Result<Vec<f32>> {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                NgramEmbedder::default().embed(text)
            }
        }
        let cached = CachedEmbedder::new(Counting(0.into()));
        assert!(cached.is_empty());
        let first = cached.embed("Alice lives in Rome").unwrap();
        assert_eq!(cached.embed("Alice lives in Rome").unwrap(), first);
        cached.embed("Bruno works at Acme").unwrap();
        assert_eq!(
            cached.inner().0.load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        assert_eq!(cached.len(), 2);
        assert_eq!(
            first,
            NgramEmbedder::default()
                .embed("Alice lives in Rome")
                .unwrap()
        );
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
