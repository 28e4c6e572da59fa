//! The crate-wide error type.
//!
//! Every variant names what is wrong: the head, the batch row, the tensor key, the config field or
//! the file. Library code never panics on bad input and never substitutes a silent default.

use std::path::PathBuf;

/// Everything that can go wrong in factored-rl.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mask row allows no action at all.
    #[error("head `{head}`: mask row {row} allows no action")]
    EmptyMask {
        /// The head whose mask is empty.
        head: String,
        /// The batch row.
        row: usize,
    },
    /// An action that its mask forbids.
    #[error("head `{head}`: action {action} in row {row} is masked")]
    MaskedAction {
        /// The head.
        head: String,
        /// The batch row.
        row: usize,
        /// The forbidden action.
        action: usize,
    },
    /// An action outside `0..size`.
    #[error("head `{head}`: action {action} in row {row} is out of range (head size {size})")]
    ActionOutOfRange {
        /// The head.
        head: String,
        /// The batch row.
        row: usize,
        /// The offending action.
        action: usize,
        /// The head's number of actions.
        size: usize,
    },
    /// A head name that the action space does not have.
    #[error("unknown head `{name}` (heads: {known})")]
    UnknownHead {
        /// The unknown name.
        name: String,
        /// The heads that exist, comma-separated.
        known: String,
    },
    /// Two heads with the same name.
    #[error("head `{name}` is declared twice")]
    DuplicateHead {
        /// The repeated name.
        name: String,
    },
    /// A head with no actions.
    #[error("head `{head}` has size 0")]
    ZeroSizeHead {
        /// The head.
        head: String,
    },
    /// A table (relevance row, rule list, per-head weights, …) with the wrong number of entries.
    #[error("{what}: expected {expected} entries, found {found}")]
    WrongLength {
        /// What was measured, e.g. "relevance row for op 3".
        what: String,
        /// The length required.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// A tensor or array whose shape is not the one required.
    #[error("`{name}`: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// The field, tensor or key.
        name: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A NaN or infinite value where finite numbers are required.
    #[error("`{name}`: non-finite value in row {row}")]
    NonFinite {
        /// The field or tensor.
        name: String,
        /// The batch row (or flat index where rows do not apply).
        row: usize,
    },
    /// An argument, config field or value outside what is supported.
    #[error("invalid `{name}`: {reason}")]
    Invalid {
        /// The argument or field.
        name: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A weight file lacks a tensor the model needs.
    #[error("{file}: missing tensor `{key}`")]
    MissingTensor {
        /// The tensor key.
        key: String,
        /// The file (or folder) searched.
        file: PathBuf,
    },
    /// A weight tensor with a dtype the loader does not accept.
    #[error("{file}: tensor `{key}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The tensor key.
        key: String,
        /// The dtype found.
        dtype: String,
        /// The file.
        file: PathBuf,
    },
    /// A file that cannot be parsed (truncated, corrupt, wrong format).
    #[error("{file}: {reason}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The path read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint that does not fit the model it is loaded into.
    #[error("checkpoint {path}: {reason}")]
    CheckpointMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A model configuration field that is missing, malformed or not supported.
    #[error("{file}: config field `{field}`: {reason}")]
    InvalidConfig {
        /// The configuration file.
        file: PathBuf,
        /// The field, dotted for nested ones (e.g. `rope_parameters.rope_type`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A memory operation name that is not one of the six.
    #[error("unknown memory operation `{name}` (valid: {valid})")]
    UnknownMemoryOp {
        /// The name given.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// A policy without an action head was asked for action logits.
    #[error(
        "this policy has no action head: training with GRPO needs an action head (build the policy with one)"
    )]
    MissingActionHead,
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
