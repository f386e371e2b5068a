//! Size limits on caller-supplied text.
//!
//! Every row is written by an at-least-once forwarder and read back by site
//! scripts, so one runaway caller must not be able to bloat the database,
//! the component's memory, or every script's result. Each limit is in UTF-8
//! bytes, the unit SQLite and the component's memory are charged in.

/// Longest `kind`, e.g. `ExternalSystem.CachedCall`. An identifier, not
/// prose: a longer value is a caller bug.
pub const MAX_KIND_BYTES: usize = 128;

/// Longest `target-summary`, `source-instance-id`, `source-script` or
/// `source-node`. These are set once per row and shown to operators, so a
/// kilobyte is plenty for a URL or a script path.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Longest `last-error` kept. Error text comes from remote systems and can
/// be a whole HTML page; a longer one is cut rather than refused, so that
/// the attempt it describes is still recorded.
pub const MAX_LAST_ERROR_BYTES: usize = 4096;

/// Appended to a `last-error` that was cut to [`MAX_LAST_ERROR_BYTES`], so a
/// reader knows the text is incomplete. It counts towards the limit.
pub const CUT_MARKER: &str = "…[cut]";

/// The range an `http-status` must fall in: the status codes HTTP defines.
pub const HTTP_STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=599;
