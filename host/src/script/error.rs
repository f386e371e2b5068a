//! Why a script could not be loaded or did not finish.

use std::time::Duration;

/// What a script printed, as far as its caps allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes the script wrote to stdout, up to the output cap.
    pub stdout: Vec<u8>,
    /// The first bytes the script wrote to stderr, up to the output cap.
    pub stderr: Vec<u8>,
    /// Bytes written to stdout past the cap, dropped.
    pub stdout_dropped: u64,
    /// Bytes written to stderr past the cap, dropped.
    pub stderr_dropped: u64,
}

impl Captured {
    /// stdout as text, invalid UTF-8 replaced.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text, invalid UTF-8 replaced.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a script was refused, or stopped before it returned.
///
/// The variants that stop a run carry what the script printed until then.
/// Whatever the variant, the store is untouched: a script cannot write.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScriptError {
    /// The component imports something outside the script world; it was
    /// refused at load and never ran. `import` is the import's full name,
    /// e.g. `wasi:filesystem/types@0.2.6`.
    #[error("the script was refused: it imports `{import}`, {why}")]
    RefusedImport {
        /// The import's name, with its version.
        import: String,
        /// What the import would reach, and what is allowed instead.
        why: String,
    },

    /// The file could not be read, is not a component, or does not export
    /// the script world's `run`.
    #[error("cannot load the script: {0}")]
    Load(String),

    /// The run passed its wall-clock deadline and was stopped.
    #[error("the script was stopped at its deadline of {}", humantime::format_duration(*timeout))]
    Deadline {
        /// The deadline the run had.
        timeout: Duration,
        /// Its output until then.
        output: Captured,
    },

    /// The run tried to grow its memory past the cap and was stopped.
    #[error("the script was stopped at its memory cap of {limit} bytes")]
    Memory {
        /// The cap, in bytes.
        limit: usize,
        /// Its output until then.
        output: Captured,
    },

    /// The script trapped: a panic, an `unreachable`, a call of `exit`.
    /// `message` has wasmtime's description of the trap.
    #[error("the script trapped: {message}")]
    Trap {
        /// What trapped, with the guest's backtrace when there is one.
        message: String,
        /// Its output until then (a Rust panic message is on stderr).
        output: Captured,
    },

    /// The runner itself failed: the engine could not be built, or the
    /// instance could not be set up for a reason other than the script's
    /// limits.
    #[error("the script runner failed: {0}")]
    Runner(String),
}

impl ScriptError {
    /// What the script printed before it was stopped, for the variants that
    /// stop a run.
    pub fn output(&self) -> Option<&Captured> {
        match self {
            ScriptError::Deadline { output, .. }
            | ScriptError::Memory { output, .. }
            | ScriptError::Trap { output, .. } => Some(output),
            _ => None,
        }
    }
}
