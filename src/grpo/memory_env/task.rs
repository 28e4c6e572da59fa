//! Tasks of the memory environment: a stream of incoming messages and a final question.

use std::fmt;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, RngExt};

use super::env::MemoryEnvConfig;
use crate::error::Result;

/// The people facts are about.
pub const SUBJECTS: [&str; 8] = [
    "Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hiro",
];

/// Small talk: messages that carry no fact and should not be kept.
pub const CHATTER: [&str; 12] = [
    "By the way, the weather is lovely today.",
    "Lunch was great, thanks!",
    "That meeting ran long again.",
    "Did you watch the match last night?",
    "Good morning, hope you slept well.",
    "The coffee machine is broken again.",
    "Traffic was terrible this morning.",
    "I think it might rain later.",
    "Thanks for your help earlier!",
    "What a busy week it has been.",
    "The new office plants look nice.",
    "Happy Friday, everyone!",
];

/// What a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attribute {
    /// "… lives in {city}".
    City,
    /// "… works at {company}".
    Employer,
    /// "… plays {sport}".
    Sport,
    /// "… has a pet {animal}".
    Pet,
}

impl Attribute {
    /// All attributes.
    pub const ALL: [Attribute; 4] = [
        Attribute::City,
        Attribute::Employer,
        Attribute::Sport,
        Attribute::Pet,
    ];

    /// The values a fact of this attribute can take.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Attribute::City => &[
                "Rome", "Oslo", "Lima", "Cairo", "Kyoto", "Quito", "Perth", "Dakar",
            ],
            Attribute::Employer => &[
                "Acme",
                "Globex",
                "Initech",
                "Hooli",
                "Umbrella",
                "Vandelay",
                "Wonka",
                "Cyberdyne",
            ],
            Attribute::Sport => &[
                "chess", "tennis", "rugby", "hockey", "golf", "cricket", "polo", "squash",
            ],
            Attribute::Pet => &[
                "cat", "dog", "parrot", "rabbit", "turtle", "hamster", "ferret", "goldfish",
            ],
        }
    }

    /// The verb phrase before the value.
    fn phrase(self) -> &'static str {
        match self {
            Attribute::City => "lives in",
            Attribute::Employer => "works at",
            Attribute::Sport => "plays",
            Attribute::Pet => "has a pet",
        }
    }

    /// The question asking for the value, without the leading capital.
    fn question(self, subject: &str) -> String {
        match self {
            Attribute::City => format!("where does {subject} live?"),
            Attribute::Employer => format!("where does {subject} work?"),
            Attribute::Sport => format!("what does {subject} play?"),
            Attribute::Pet => format!("what pet does {subject} have?"),
        }
    }
}

/// Which fact: a subject and an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FactKey {
    /// The person.
    pub subject: &'static str,
    /// What about them.
    pub attribute: Attribute,
}

impl FactKey {
    /// The question that asks for this fact, e.g. "where does Alice live?".
    pub fn question(self) -> String {
        self.attribute.question(self.subject)
    }
}

/// A fact: a key and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fact {
    /// Which fact.
    pub key: FactKey,
    /// Its value.
    pub value: &'static str,
}

impl fmt::Display for Fact {
    /// The statement, e.g. "Alice lives in Rome".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.key.subject,
            self.key.attribute.phrase(),
            self.value
        )
    }
}

/// The kinds of incoming message. Each has one right memory operation (see `docs/grpo.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// "Remember: Alice lives in Rome." — a new fact (right op: add).
    Note,
    /// "Correction: Alice now lives in Oslo, not Rome." — a changed fact (right op: update).
    Correction,
    /// "Forget: Alice no longer lives in Oslo." — a fact that stopped being true (right op:
    /// delete).
    Retraction,
    /// "Question: where does Alice live?" — a request answered from memory (right op:
    /// retrieve).
    Query,
    /// "Recap: tell me all about Alice." — a request for everything about someone (right op:
    /// summary).
    Recap,
    /// Small talk without a fact (right op: filter).
    Chatter,
}

/// What a message means to the environment's ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Payload {
    /// A note or correction: the fact is now true.
    Assert(Fact),
    /// A retraction: the fact is no longer true.
    Retract(Fact),
    /// A query for one fact.
    Ask(FactKey),
    /// A recap of everything about a subject.
    Recap(&'static str),
    /// Nothing.
    Chatter,
}

/// One incoming message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    kind: MessageKind,
    text: String,
    content: String,
    pub(super) payload: Payload,
}

impl Message {
    fn new(kind: MessageKind, tag: &str, content: String, end: &str, payload: Payload) -> Self {
        Self {
            kind,
            text: format!("{tag}{content}{end}"),
            content,
            payload,
        }
    }

    pub(super) fn note(fact: Fact) -> Self {
        Self::new(
            MessageKind::Note,
            "Remember: ",
            fact.to_string(),
            ".",
            Payload::Assert(fact),
        )
    }

    /// "Correction: Alice now lives in Oslo, not Rome." — naming the old value too, as people
    /// do, is what lets the closest-entry search find the entry to update rather than another
    /// person's entry that shares the new value.
    pub(super) fn correction(old: Fact, value: &'static str) -> Self {
        let fact = Fact { value, ..old };
        let content = format!(
            "{} now {} {}, not {}",
            fact.key.subject,
            fact.key.attribute.phrase(),
            fact.value,
            old.value
        );
        Self::new(
            MessageKind::Correction,
            "Correction: ",
            content,
            ".",
            Payload::Assert(fact),
        )
    }

    pub(super) fn retraction(fact: Fact) -> Self {
        let content = format!(
            "{} no longer {} {}",
            fact.key.subject,
            fact.key.attribute.phrase(),
            fact.value
        );
        Self::new(
            MessageKind::Retraction,
            "Forget: ",
            content,
            ".",
            Payload::Retract(fact),
        )
    }

    pub(super) fn query(key: FactKey) -> Self {
        Self::new(
            MessageKind::Query,
            "Question: ",
            key.question(),
            "",
            Payload::Ask(key),
        )
    }

    pub(super) fn recap(subject: &'static str) -> Self {
        let content = format!("tell me all about {subject}");
        Self::new(
            MessageKind::Recap,
            "Recap: ",
            content,
            ".",
            Payload::Recap(subject),
        )
    }

    pub(super) fn chatter(text: &'static str) -> Self {
        Self::new(
            MessageKind::Chatter,
            "",
            text.to_string(),
            "",
            Payload::Chatter,
        )
    }

    /// Its kind (ground truth; the policy only sees [`text`](Self::text)).
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The message as the agent receives it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The message without its tag ("Remember: ", …): what `add` and `update` store.
    pub fn content(&self) -> &str {
        &self.content
    }
}

/// One episode: messages to process one by one, then a question about a fact that was noted.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTask {
    messages: Vec<Message>,
    question: FactKey,
}

impl MemoryTask {
    /// Draws a task:
    ///
    /// 1. `min_notes..=max_notes` notes about distinct facts (at most two per person);
    /// 2. with `correction_prob` a correction of one noted fact (a new value), and with
    ///    `retraction_prob` a retraction of another, in random order;
    /// 3. with `query_prob` a query about a noted fact, and with `recap_prob` a recap of a noted
    ///    person, in random order;
    /// 4. `min_chatter..=max_chatter` small-talk messages at random places.
    ///
    /// The final question asks for a noted fact: one that was corrected or retracted with
    /// probability 1/2 when there is one (so that update and delete matter), else any.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) naming a config field out of range.
    pub fn sample<R: Rng + ?Sized>(config: &MemoryEnvConfig, rng: &mut R) -> Result<Self> {
        config.validate()?;
        let num_notes = rng.random_range(config.min_notes..=config.max_notes);
        let mut keys: Vec<FactKey> = Vec::with_capacity(num_notes);
        while keys.len() < num_notes {
            let key = FactKey {
                subject: SUBJECTS.choose(rng).expect("subjects"),
                attribute: *Attribute::ALL.choose(rng).expect("attributes"),
            };
            let same_subject = keys.iter().filter(|k| k.subject == key.subject).count();
            if !keys.contains(&key) && same_subject < 2 {
                keys.push(key);
            }
        }
        let notes: Vec<Fact> = keys
            .iter()
            .map(|&key| Fact {
                key,
                value: key.attribute.values().choose(rng).expect("values"),
            })
            .collect();
        let mut messages: Vec<Message> = notes.iter().copied().map(Message::note).collect();

        let mut changes = Vec::new();
        let mut changed_keys = Vec::new();
        let mut order: Vec<usize> = (0..notes.len()).collect();
        order.shuffle(rng);
        let mut unchanged = order.into_iter();
        if rng.random_bool(config.correction_prob)
            && let Some(i) = unchanged.next()
        {
            let old = notes[i];
            let value = *old
                .key
                .attribute
                .values()
                .iter()
                .filter(|&&v| v != old.value)
                .collect::<Vec<_>>()
                .choose(rng)
                .expect("at least two values");
            changes.push(Message::correction(old, value));
            changed_keys.push(old.key);
        }
        if rng.random_bool(config.retraction_prob)
            && let Some(i) = unchanged.next()
        {
            changes.push(Message::retraction(notes[i]));
            changed_keys.push(notes[i].key);
        }
        changes.shuffle(rng);
        messages.extend(changes);

        let mut requests = Vec::new();
        if rng.random_bool(config.query_prob) {
            requests.push(Message::query(*keys.choose(rng).expect("notes")));
        }
        if rng.random_bool(config.recap_prob) {
            requests.push(Message::recap(keys.choose(rng).expect("notes").subject));
        }
        requests.shuffle(rng);
        messages.extend(requests);

        let num_chatter = rng.random_range(config.min_chatter..=config.max_chatter);
        for text in CHATTER.sample(rng, num_chatter) {
            let at = rng.random_range(0..=messages.len());
            messages.insert(at, Message::chatter(text));
        }

        let question = if !changed_keys.is_empty() && rng.random_bool(0.5) {
            *changed_keys.choose(rng).expect("changed")
        } else {
            *keys.choose(rng).expect("notes")
        };
        Ok(Self { messages, question })
    }

    /// A task from given messages (tests build situations by hand).
    #[cfg(test)]
    pub(super) fn from_parts(messages: Vec<Message>, question: FactKey) -> Self {
        Self { messages, question }
    }

    /// The messages, in arrival order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The fact the final question asks for.
    pub fn question(&self) -> FactKey {
        self.question
    }

    /// The final question as text, e.g. "Where does Alice live?".
    pub fn question_text(&self) -> String {
        let question = self.question.question();
        let mut chars = question.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => question,
        }
    }

    /// The number of decisions: one per message.
    pub fn num_steps(&self) -> usize {
        self.messages.len()
    }
}
