//! The memory store: a bounded list of texts with their embeddings, ranked by cosine similarity.

use super::embedder::cosine_similarity;
use super::task::Fact;

/// One stored memory.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    text: String,
    embedding: Vec<f32>,
    /// The fact the stored text states, when it states one (ground truth for grading; the
    /// tools never look at it).
    fact: Option<Fact>,
}

impl MemoryEntry {
    pub(super) fn new(text: String, embedding: Vec<f32>, fact: Option<Fact>) -> Self {
        Self {
            text,
            embedding,
            fact,
        }
    }

    /// The stored text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Its embedding.
    pub fn embedding(&self) -> &[f32] {
        &self.embedding
    }

    pub(super) fn fact(&self) -> Option<Fact> {
        self.fact
    }
}

/// A store of at most `capacity` entries, oldest first. Inserting into a full store evicts the
/// oldest entry, so whatever is kept needlessly can push out what matters.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryStore {
    capacity: usize,
    entries: Vec<MemoryEntry>,
}

impl MemoryStore {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::with_capacity(capacity),
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[MemoryEntry] {
        &self.entries
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn insert(&mut self, entry: MemoryEntry) {
        if self.entries.len() == self.capacity {
            self.entries.remove(0);
        }
        self.entries.push(entry);
    }

    pub(super) fn replace(&mut self, index: usize, entry: MemoryEntry) {
        self.entries[index] = entry;
    }

    pub(super) fn remove(&mut self, index: usize) {
        self.entries.remove(index);
    }

    /// The entry most similar to `query` and its cosine similarity; `None` when empty.
    pub fn nearest(&self, query: &[f32]) -> Option<(usize, f32)> {
        let index = *self.top_k(query, 1).first()?;
        Some((
            index,
            cosine_similarity(query, &self.entries[index].embedding),
        ))
    }

    /// Indices of the `k` entries most similar to `query` by cosine similarity, best first;
    /// ties go to the newer entry.
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, cosine_similarity(query, &e.embedding)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, embedding: Vec<f32>) -> MemoryEntry {
        MemoryEntry::new(text.into(), embedding, None)
    }

    #[test]
    fn full_store_evicts_the_oldest() {
        let mut store = MemoryStore::new(2);
        for text in ["a", "b", "c"] {
            store.insert(entry(text, vec![1.0]));
        }
        let texts: Vec<&str> = store.entries().iter().map(MemoryEntry::text).collect();
        assert_eq!(texts, ["b", "c"]);
    }

    #[test]
    fn top_k_ranks_by_cosine_and_prefers_newer_on_ties() {
        let mut store = MemoryStore::new(4);
        store.insert(entry("x", vec![1.0, 0.0]));
        store.insert(entry("y", vec![0.0, 1.0]));
        store.insert(entry("x again", vec![2.0, 0.0]));
        store.insert(entry("diagonal", vec![1.0, 1.0]));
        assert_eq!(store.top_k(&[1.0, 0.0], 3), vec![2, 0, 3]);
        assert_eq!(store.top_k(&[0.0, 1.0], 1), vec![1]);
        assert_eq!(store.top_k(&[0.0, 1.0], 10).len(), 4);
    }
}
