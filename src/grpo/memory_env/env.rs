//! The environment: applies one memory operation per incoming message to a real store, grades
//! the requests, and pays a terminal reward.

use std::collections::{BTreeMap, BTreeSet};

use burn::config::Config;

use crate::error::{Error, Result};

#[cfg(doc)]
use super::embedder::NgramEmbedder;
use super::embedder::TextEmbedder;
use super::store::{MemoryEntry, MemoryStore};
use super::task::{Attribute, Fact, FactKey, MemoryTask, Message, Payload, SUBJECTS};
use super::{NUM_MEMORY_OPS, OP_ADD, OP_DELETE, OP_RETRIEVE, OP_SUMMARY, OP_UPDATE};

/// The memory environment's settings.
#[derive(Config, Debug)]
pub struct MemoryEnvConfig {
    /// The most entries the store holds; inserting into a full store evicts the oldest.
    #[config(default = 5)]
    pub capacity: usize,
    /// Entries a retrieval returns (queries, recaps, the final question).
    #[config(default = 3)]
    pub top_k: usize,
    /// Smallest cosine similarity between a message and its closest entry for `update` and
    /// `delete` to act on that entry. Calibrated for [`NgramEmbedder::default`]: corrections
    /// and retractions of a stored fact score ≥ 0.54 against it, small talk ≤ 0.39 and recap
    /// requests ≤ 0.51 against any entry; another embedder needs its own value.
    #[config(default = 0.5)]
    pub match_threshold: f64,
    /// Fewest notes (new facts) per task.
    #[config(default = 2)]
    pub min_notes: usize,
    /// Most notes per task; at most `capacity`, so that a perfect policy can keep every fact.
    #[config(default = 4)]
    pub max_notes: usize,
    /// Fewest small-talk messages per task.
    #[config(default = 1)]
    pub min_chatter: usize,
    /// Most small-talk messages per task.
    #[config(default = 2)]
    pub max_chatter: usize,
    /// Probability that a task corrects one of its facts.
    #[config(default = 0.5)]
    pub correction_prob: f64,
    /// Probability that a task retracts one of its facts.
    #[config(default = 0.3)]
    pub retraction_prob: f64,
    /// Probability of a mid-stream query.
    #[config(default = 0.4)]
    pub query_prob: f64,
    /// Probability of a recap request.
    #[config(default = 0.3)]
    pub recap_prob: f64,
    /// Weight of the recall term; the term lies in `[0, recall_weight]`.
    #[config(default = 0.5)]
    pub recall_weight: f64,
    /// Weight of the memory penalty; the term lies in `[−memory_penalty_weight, 0]`.
    #[config(default = 0.2)]
    pub memory_penalty_weight: f64,
}

impl MemoryEnvConfig {
    /// The longest task, in steps (one step per message).
    pub fn max_steps(&self) -> usize {
        // Notes, a correction, a retraction, chatter, a query and a recap.
        self.max_notes + 2 + self.max_chatter + 2
    }

    /// The range of the total reward: `[−memory_penalty_weight, 1 + recall_weight]`.
    pub fn reward_range(&self) -> (f32, f32) {
        (
            -self.memory_penalty_weight as f32,
            1.0 + self.recall_weight as f32,
        )
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        // Distinct facts with at most two attributes per person.
        let num_keys = SUBJECTS.len() * 2.min(Attribute::ALL.len());
        let checks = [
            (
                self.capacity >= 1,
                "capacity",
                "must be at least 1".to_string(),
            ),
            (self.top_k >= 1, "top_k", "must be at least 1".to_string()),
            (
                (-1.0..=1.0).contains(&self.match_threshold),
                "match_threshold",
                format!(
                    "{} (must be a cosine similarity, in [-1, 1])",
                    self.match_threshold
                ),
            ),
            (
                self.min_notes >= 1 && self.min_notes <= self.max_notes,
                "min_notes",
                format!("{} (must be in 1..=max_notes)", self.min_notes),
            ),
            (
                self.max_notes <= self.capacity && self.max_notes <= num_keys,
                "max_notes",
                format!(
                    "{} (must be at most capacity {} and at most {num_keys})",
                    self.max_notes, self.capacity
                ),
            ),
            (
                self.min_chatter <= self.max_chatter
                    && self.max_chatter <= super::task::CHATTER.len(),
                "max_chatter",
                format!(
                    "{} (must be in min_chatter {}..={})",
                    self.max_chatter,
                    self.min_chatter,
                    super::task::CHATTER.len()
                ),
            ),
            (
                (0.0..=1.0).contains(&self.recall_weight),
                "recall_weight",
                format!("{} (must be in [0, 1])", self.recall_weight),
            ),
            (
                (0.0..=1.0).contains(&self.memory_penalty_weight),
                "memory_penalty_weight",
                format!("{} (must be in [0, 1])", self.memory_penalty_weight),
            ),
        ];
        for (ok, name, reason) in checks {
            if !ok {
                return Err(Error::invalid(name, reason));
            }
        }
        for (name, p) in [
            ("correction_prob", self.correction_prob),
            ("retraction_prob", self.retraction_prob),
            ("query_prob", self.query_prob),
            ("recap_prob", self.recap_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(name, format!("{p} (must be in [0, 1])")));
            }
        }
        Ok(())
    }
}

/// The terminal reward, term by term. `total = answer + recall + memory_penalty`, in
/// `[−w_penalty, 1 + w_recall]` with the config's `memory_penalty_weight` and `recall_weight`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryReward {
    /// Fraction of the episode's requests answered correctly, in `[0, 1]`: mid-stream queries
    /// (answered only by `retrieve`), recaps (answered only by `summary`) and the final question
    /// (answered from the final store).
    pub answer: f32,
    /// `w_recall ·` the fraction of currently true facts that the final store states with their
    /// right value and no other value, in `[0, w_recall]` (all of it when nothing is true).
    pub recall: f32,
    /// `−w · junk / capacity`, in `[−w, 0]`: junk entries are those that do not state a
    /// currently true fact (small talk, requests, stale or retracted facts, duplicates).
    pub memory_penalty: f32,
    /// Requests answered correctly.
    pub requests_correct: usize,
    /// Requests in the episode (at least 1: the final question).
    pub requests_total: usize,
}

impl MemoryReward {
    /// The reward broadcast to every step of the episode.
    pub fn total(&self) -> f32 {
        self.answer + self.recall + self.memory_penalty
    }

    /// Every request, the final question included, was answered correctly.
    pub fn success(&self) -> bool {
        self.requests_correct == self.requests_total
    }
}

/// What [`MemoryEnv::step`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum MemoryStep {
    /// The next decision: the text of the next state.
    Next {
        /// What the policy reads for its next decision.
        state_text: String,
    },
    /// The last message was processed and the final question answered.
    Done {
        /// The terminal reward (broadcast to every step of the episode).
        reward: MemoryReward,
    },
}

/// An answer read from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Value(&'static str),
    Unknown,
    Conflict,
}

/// The state of the episode in progress.
#[derive(Debug, Clone)]
struct Episode {
    task: MemoryTask,
    cursor: usize,
    store: MemoryStore,
    /// What is true now, as the messages say (independent of what the agent keeps).
    truth: BTreeMap<FactKey, &'static str>,
    requests_correct: usize,
    requests_total: usize,
}

/// The tools: what the operations do, given the settings and the embedder.
#[derive(Debug, Clone)]
struct Tools<E> {
    config: MemoryEnvConfig,
    embedder: E,
}

/// The text memory environment (see `docs/grpo.md`): one decision per incoming message, one of
/// the six memory operations (indices [`OP_ADD`](super::OP_ADD) …
/// [`OP_FILTER`](super::OP_FILTER)), applied to a real store; the reward comes at the end.
///
/// The state text shows the incoming message and the store as it is before the decision —
/// never the operation being chosen or any earlier one (SPEC §9).
#[derive(Debug, Clone)]
pub struct MemoryEnv<E> {
    tools: Tools<E>,
    episode: Option<Episode>,
}

impl<E: TextEmbedder> MemoryEnv<E> {
    /// An environment with no episode yet.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming a config field out of range.
    pub fn new(config: MemoryEnvConfig, embedder: E) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            tools: Tools { config, embedder },
            episode: None,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &MemoryEnvConfig {
        &self.tools.config
    }

    /// Starts `task` and returns the first state text.
    pub fn reset(&mut self, task: MemoryTask) -> String {
        let episode = Episode {
            task,
            cursor: 0,
            store: MemoryStore::new(self.tools.config.capacity),
            truth: BTreeMap::new(),
            requests_correct: 0,
            requests_total: 0,
        };
        let text = state_text(&episode);
        self.episode = Some(episode);
        text
    }

    /// The store of the current (or last) episode.
    pub fn store(&self) -> Option<&MemoryStore> {
        self.episode.as_ref().map(|e| &e.store)
    }

    /// Applies memory operation `op` to the current message.
    ///
    /// # Errors
    /// [`Error::ActionOutOfRange`] (head `memory_op`, row = the step) for `op ≥ 6`;
    /// [`Error::Invalid`] before [`reset`](Self::reset) or after the episode ended; the
    /// embedder's errors, and [`Error::ShapeMismatch`] / [`Error::NonFinite`] naming the text
    /// whose embedding has the wrong length or a non-finite value.
    pub fn step(&mut self, op: usize) -> Result<MemoryStep> {
        let Some(episode) = self.episode.as_mut() else {
            return Err(Error::invalid("memory env", "step before reset"));
        };
        if episode.cursor >= episode.task.num_steps() {
            return Err(Error::invalid(
                "memory env",
                "the episode is over; reset with a new task",
            ));
        }
        if op >= NUM_MEMORY_OPS {
            return Err(Error::ActionOutOfRange {
                head: "memory_op".into(),
                row: episode.cursor,
                action: op,
                size: NUM_MEMORY_OPS,
            });
        }
        self.tools.process(episode, op)?;
        episode.cursor += 1;
        if episode.cursor < episode.task.num_steps() {
            return Ok(MemoryStep::Next {
                state_text: state_text(episode),
            });
        }
        Ok(MemoryStep::Done {
            reward: self.tools.final_reward(episode)?,
        })
    }
}

impl<E: TextEmbedder> Tools<E> {
    /// Applies `op` to the current message, then updates the truth and grades a request.
    fn process(&self, episode: &mut Episode, op: usize) -> Result<()> {
        let message = &episode.task.messages()[episode.cursor];
        let payload = message.payload;
        let stated_fact = match payload {
            Payload::Assert(fact) => Some(fact),
            _ => None,
        };
        match op {
            OP_ADD => {
                let entry = self.entry(&episode.store, message, stated_fact)?;
                episode.store.insert(entry);
            }
            OP_UPDATE | OP_DELETE => {
                let entry = self.entry(&episode.store, message, stated_fact)?;
                // Both act on the closest entry, and only when it is close enough to be what the
                // message is about: a message about nothing stored changes nothing.
                let threshold = self.config.match_threshold as f32;
                match episode.store.nearest(entry.embedding()) {
                    Some((index, similarity)) if similarity >= threshold => {
                        if op == OP_UPDATE {
                            episode.store.replace(index, entry);
                        } else {
                            episode.store.remove(index);
                        }
                    }
                    _ => {}
                }
            }
            // retrieve / summary answer requests (below); filter discards the message.
            _ => {}
        }
        match payload {
            Payload::Assert(fact) => {
                episode.truth.insert(fact.key, fact.value);
            }
            Payload::Retract(fact) => {
                episode.truth.remove(&fact.key);
            }
            Payload::Ask(key) => {
                episode.requests_total += 1;
                if op == OP_RETRIEVE {
                    let answer = self.read_answer(&episode.store, key, message.content())?;
                    if answer == truth_answer(&episode.truth, key) {
                        episode.requests_correct += 1;
                    }
                }
            }
            Payload::Recap(subject) => {
                episode.requests_total += 1;
                if op == OP_SUMMARY {
                    let digest = self.read_digest(&episode.store, subject, message.content())?;
                    let truth: BTreeMap<Attribute, &'static str> = episode
                        .truth
                        .iter()
                        .filter(|(k, _)| k.subject == subject)
                        .map(|(k, &v)| (k.attribute, v))
                        .collect();
                    if digest == Some(truth) {
                        episode.requests_correct += 1;
                    }
                }
            }
            Payload::Chatter => {}
        }
        Ok(())
    }

    /// Answers the final question from the store and pays the reward.
    fn final_reward(&self, episode: &Episode) -> Result<MemoryReward> {
        let key = episode.task.question();
        let answer = self.read_answer(&episode.store, key, &episode.task.question_text())?;
        let final_correct = answer == truth_answer(&episode.truth, key);
        let requests_correct = episode.requests_correct + usize::from(final_correct);
        let requests_total = episode.requests_total + 1;
        // The values the final store states for each fact.
        let mut stored: BTreeMap<FactKey, BTreeSet<&'static str>> = BTreeMap::new();
        for fact in episode.store.entries().iter().filter_map(MemoryEntry::fact) {
            stored.entry(fact.key).or_default().insert(fact.value);
        }
        // One entry per true fact is useful; every other entry is junk.
        let useful = episode
            .truth
            .iter()
            .filter(|(key, value)| {
                stored
                    .get(*key)
                    .is_some_and(|values| values.contains(*value))
            })
            .count();
        let junk = episode.store.len() - useful;
        let recalled = episode
            .truth
            .iter()
            .filter(|(key, value)| stored.get(*key) == Some(&BTreeSet::from([**value])))
            .count();
        let recall_fraction = if episode.truth.is_empty() {
            1.0
        } else {
            recalled as f32 / episode.truth.len() as f32
        };
        Ok(MemoryReward {
            answer: requests_correct as f32 / requests_total as f32,
            recall: self.config.recall_weight as f32 * recall_fraction,
            memory_penalty: -(self.config.memory_penalty_weight as f32) * junk as f32
                / self.config.capacity as f32,
            requests_correct,
            requests_total,
        })
    }

    /// Embeds the message's content into a store entry.
    fn entry(
        &self,
        store: &MemoryStore,
        message: &Message,
        fact: Option<Fact>,
    ) -> Result<MemoryEntry> {
        let text = message.content();
        Ok(MemoryEntry::new(
            text.to_string(),
            self.embed(store, text)?,
            fact,
        ))
    }

    /// Embeds `text`, checking that it is finite and as long as the stored embeddings.
    fn embed(&self, store: &MemoryStore, text: &str) -> Result<Vec<f32>> {
        let embedding = self.embedder.embed(text)?;
        if let Some(row) = embedding.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                name: format!("embedding of `{text}`"),
                row,
            });
        }
        match store.entries().first().map(|e| e.embedding().len()) {
            Some(len) if len != embedding.len() => Err(Error::ShapeMismatch {
                name: format!("embedding of `{text}`"),
                expected: vec![len],
                found: vec![embedding.len()],
            }),
            _ => Ok(embedding),
        }
    }

    /// Retrieves the `top_k` entries closest to `question` and reads the value of `key` from
    /// those that state it: none → unknown, one value → it, several → a conflict.
    fn read_answer(&self, store: &MemoryStore, key: FactKey, question: &str) -> Result<Answer> {
        let query = self.embed(store, question)?;
        let values: BTreeSet<&'static str> = store
            .top_k(&query, self.config.top_k)
            .into_iter()
            .filter_map(|i| store.entries()[i].fact())
            .filter(|f| f.key == key)
            .map(|f| f.value)
            .collect();
        Ok(match values.len() {
            0 => Answer::Unknown,
            1 => Answer::Value(values.into_iter().next().expect("one value")),
            _ => Answer::Conflict,
        })
    }

    /// Retrieves the `top_k` entries closest to the recap request and collects what they state
    /// about `subject`; `None` when two entries disagree.
    fn read_digest(
        &self,
        store: &MemoryStore,
        subject: &str,
        request: &str,
    ) -> Result<Option<BTreeMap<Attribute, &'static str>>> {
        let query = self.embed(store, request)?;
        let mut digest = BTreeMap::new();
        for fact in store
            .top_k(&query, self.config.top_k)
            .into_iter()
            .filter_map(|i| store.entries()[i].fact())
            .filter(|f| f.key.subject == subject)
        {
            if let Some(previous) = digest.insert(fact.key.attribute, fact.value)
                && previous != fact.value
            {
                return Ok(None);
            }
        }
        Ok(Some(digest))
    }
}

fn truth_answer(truth: &BTreeMap<FactKey, &'static str>, key: FactKey) -> Answer {
    truth
        .get(&key)
        .map_or(Answer::Unknown, |&v| Answer::Value(v))
}

/// The text the policy reads: the incoming message, then the store. Nothing about the operation
/// to be chosen (or any earlier operation) appears in it.
fn state_text(episode: &Episode) -> String {
    let message = &episode.task.messages()[episode.cursor];
    let entries = if episode.store.is_empty() {
        "(empty)".to_string()
    } else {
        episode
            .store
            .entries()
            .iter()
            .map(MemoryEntry::text)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    format!(
        "Message: {}\nMemory {}/{}: {entries}",
        message.text(),
        episode.store.len(),
        episode.store.capacity()
    )
}
