//! Writing and reading the checkpoints of envs ([`Env::snapshot`](super::Env::snapshot)) and of
//! the [`VecEnv`](super::VecEnv): JSON objects tagged with the env's name, whose floats are bit
//! patterns ([`crate::float_bits`]) so that a string round trip is exact.
//!
//! Snapshots are read field by field rather than through a derived `Deserialize`, because serde's
//! own messages do not say which field held a value of the wrong type; every error here names the
//! env and the field's path (`slots[1].alpha`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{ConditionalMask, validate_masks};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};
use crate::float_bits::FloatBits;

/// The key holding the name of the env a snapshot was taken from.
const KIND_KEY: &str = "env";

/// The error of an env without checkpoint support.
pub(crate) fn unsupported(env: &str) -> Error {
    Error::invalid(format!("env `{env}`"), "does not support checkpoints")
}

/// Builds a snapshot object.
pub(crate) struct SnapshotWriter {
    subject: String,
    fields: Map<String, Value>,
}

impl SnapshotWriter {
    /// A snapshot of `subject` (e.g. "env `cartpole`"), tagged with the env name `kind`.
    pub(crate) fn new(subject: impl Into<String>, kind: &str) -> Self {
        let mut fields = Map::new();
        fields.insert(KIND_KEY.into(), Value::String(kind.into()));
        Self {
            subject: subject.into(),
            fields,
        }
    }

    /// An untagged object nested in a snapshot of `subject`.
    pub(crate) fn nested(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            fields: Map::new(),
        }
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field when `value` cannot be represented in JSON.
    pub(crate) fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        let value = serde_json::to_value(value).map_err(|e| {
            Error::invalid(
                format!("{} snapshot field `{key}`", self.subject),
                e.to_string(),
            )
        })?;
        self.fields.insert(key.into(), value);
        Ok(())
    }

    /// Stores floats under `key` as their bit patterns.
    ///
    /// # Errors
    /// As [`field`](Self::field).
    pub(crate) fn floats<T: FloatBits>(&mut self, key: &str, value: &T) -> Result<()> {
        self.field(key, &value.to_bits_repr())
    }

    /// Stores an already built JSON value under `key`.
    pub(crate) fn value(&mut self, key: &str, value: Value) {
        self.fields.insert(key.into(), value);
    }

    /// The finished object.
    pub(crate) fn finish(self) -> Value {
        Value::Object(self.fields)
    }
}

/// Reads a snapshot object field by field, with errors naming the subject and the field.
pub(crate) struct SnapshotReader<'a> {
    subject: &'a str,
    /// The path of this object inside the snapshot, with a trailing `.` (empty at the root).
    prefix: String,
    fields: &'a Map<String, Value>,
    read: Vec<String>,
}

impl<'a> SnapshotReader<'a> {
    /// Opens the snapshot of `subject` (e.g. "env `cartpole`"), which must be an object tagged
    /// with the env name `kind`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `subject` when the snapshot is not an object or was taken from
    /// another env kind.
    pub(crate) fn open(snapshot: &'a Value, subject: &'a str, kind: &str) -> Result<Self> {
        let fields = snapshot.as_object().ok_or_else(|| {
            Error::invalid(
                format!("{subject} snapshot"),
                format!("expected a JSON object, found {}", json_type(snapshot)),
            )
        })?;
        let mut reader = Self {
            subject,
            prefix: String::new(),
            fields,
            read: Vec::new(),
        };
        let found: String = reader.field(KIND_KEY)?;
        if found != kind {
            return Err(Error::invalid(
                subject,
                format!("cannot restore a snapshot of env `{found}` into env `{kind}`"),
            ));
        }
        Ok(reader)
    }

    /// A reader of the nested object `value` found at `path`.
    fn child(&self, path: String, value: &'a Value) -> Result<Self> {
        let fields = value.as_object().ok_or_else(|| {
            self.error_at(
                &path,
                format!("expected a JSON object, found {}", json_type(value)),
            )
        })?;
        Ok(Self {
            subject: self.subject,
            prefix: format!("{path}."),
            fields,
            read: Vec::new(),
        })
    }

    fn error_at(&self, path: &str, reason: impl Into<String>) -> Error {
        Error::invalid(format!("{} snapshot field `{path}`", self.subject), reason)
    }

    /// An error naming the field `key` of this object.
    pub(crate) fn error(&self, key: &str, reason: impl Into<String>) -> Error {
        self.error_at(&format!("{}{key}", self.prefix), reason)
    }

    fn raw(&mut self, key: &str) -> Result<&'a Value> {
        let value = self
            .fields
            .get(key)
            .ok_or_else(|| self.error(key, "missing"))?;
        self.read.push(key.into());
        Ok(value)
    }

    /// The field `key`, deserialized.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field when it is missing or of the wrong type.
    pub(crate) fn field<T: DeserializeOwned>(&mut self, key: &str) -> Result<T> {
        let value = self.raw(key)?;
        T::deserialize(value).map_err(|e| self.error(key, e.to_string()))
    }

    /// The floats stored under `key` as bit patterns; all must be finite.
    ///
    /// # Errors
    /// As [`field`](Self::field); [`Error::Invalid`] naming the field for a wrong length or a
    /// non-finite value.
    pub(crate) fn floats<T: FloatBits>(&mut self, key: &str) -> Result<T> {
        let bits: T::Bits = self.field(key)?;
        let value = T::from_bits_repr(bits).map_err(|reason| self.error(key, reason))?;
        if !value.all_finite() {
            return Err(self.error(key, "holds a non-finite value"));
        }
        Ok(value)
    }

    /// The index stored under `key`, which must be below `bound`.
    ///
    /// # Errors
    /// As [`field`](Self::field); [`Error::Invalid`] naming the field when it is out of range.
    pub(crate) fn index(&mut self, key: &str, bound: usize) -> Result<usize> {
        let index: usize = self.field(key)?;
        if index >= bound {
            return Err(self.error(key, format!("{index} is out of range 0..{bound}")));
        }
        Ok(index)
    }

    /// The nested object under `key`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field when it is missing or not an object.
    pub(crate) fn object(&mut self, key: &str) -> Result<SnapshotReader<'a>> {
        let value = self.raw(key)?;
        self.child(format!("{}{key}", self.prefix), value)
    }

    /// The array under `key`, which must have `len` entries, each `null` or an object: a reader
    /// for every object.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field or the entry for anything else.
    pub(crate) fn optional_objects(
        &mut self,
        key: &str,
        len: usize,
    ) -> Result<Vec<Option<SnapshotReader<'a>>>> {
        let items = self.array(key, len)?;
        items
            .iter()
            .enumerate()
            .map(|(k, item)| {
                if item.is_null() {
                    Ok(None)
                } else {
                    self.child(format!("{}{key}[{k}]", self.prefix), item)
                        .map(Some)
                }
            })
            .collect()
    }

    /// The raw entries of the array under `key`, which must have `len` of them.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field when it is missing, not an array or of another length.
    pub(crate) fn array(&mut self, key: &str, len: usize) -> Result<&'a [Value]> {
        let value = self.raw(key)?;
        let items = value.as_array().ok_or_else(|| {
            self.error(
                key,
                format!("expected an array, found {}", json_type(value)),
            )
        })?;
        if items.len() != len {
            return Err(self.error(
                key,
                format!("expected {len} entries, found {}", items.len()),
            ));
        }
        Ok(items)
    }

    /// The field `key` holding the settings the snapshot was taken with, which must equal
    /// `current`.
    ///
    /// # Errors
    /// As [`field`](Self::field); [`Error::Invalid`] naming the subject and the first setting
    /// that differs, with both values.
    pub(crate) fn config<C>(&mut self, key: &str, current: &C) -> Result<()>
    where
        C: Serialize + DeserializeOwned + PartialEq,
    {
        let theirs: C = self.field(key)?;
        if &theirs == current {
            return Ok(());
        }
        let (theirs, ours) = (serde_json::to_value(&theirs), serde_json::to_value(current));
        let difference = match (theirs, ours) {
            (Ok(Value::Object(theirs)), Ok(Value::Object(ours))) => ours
                .iter()
                .find(|&(name, value)| theirs.get(name) != Some(value))
                .map(|(name, value)| {
                    let snapshot = theirs.get(name).map_or("nothing".into(), Value::to_string);
                    format!("`{name}` is {snapshot} in the snapshot but {value} here")
                }),
            _ => None,
        };
        Err(Error::invalid(
            self.subject,
            format!(
                "the snapshot was taken with other settings: {}",
                difference.unwrap_or_else(|| format!("`{key}` differs"))
            ),
        ))
    }

    /// The per-head masks under `key` with the conditional masks under `conditional_key`,
    /// checked against `space` (shapes, and no empty row under any allowed op).
    ///
    /// # Errors
    /// As [`field`](Self::field); [`Error::Invalid`] naming the field, with the check's message,
    /// for masks that do not fit `space`.
    pub(crate) fn masks(
        &mut self,
        key: &str,
        conditional_key: Option<&str>,
        space: &ActionSpace,
    ) -> Result<(Vec<Vec<bool>>, Vec<ConditionalMask>)> {
        let masks: Vec<Vec<bool>> = self.field(key)?;
        let conditional: Vec<ConditionalMask> = match conditional_key {
            Some(k) => self.field(k)?,
            None => Vec::new(),
        };
        validate_masks(space, &masks, &conditional, 0).map_err(|e| {
            let key = match conditional_key {
                Some(k) => format!("{key}` / `{}{k}", self.prefix),
                None => key.into(),
            };
            self.error(&key, e.to_string())
        })?;
        Ok((masks, conditional))
    }

    /// Checks that every field of this object was read.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first unknown field.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.fields.keys().find(|k| !self.read.contains(k)) {
            Some(unknown) => Err(self.error(unknown, "unknown field")),
            None => Ok(()),
        }
    }
}

/// The JSON type of `value`, for messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
