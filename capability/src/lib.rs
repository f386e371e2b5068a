//! The rules of the storage capability, written once for both places that
//! supply it: the host (`host/src/storage.rs`, over its own connections)
//! and the standalone plug (`plug/`, SQLite inside a component). Each runs
//! the component's statements on a rusqlite connection, and each must hold
//! them to the same fence and the same limits; a rule that changed in one
//! and not the other would be a hole in the fence.
//!
//! What the component sends is untrusted in size and content: its
//! statements are checked against [`MAX_STATEMENT_BYTES`] before SQLite
//! parses them, [`authorize`] refuses what reaches past the store's own
//! tables, and a query returns one row at most ([`query_row`]).

use rusqlite::hooks::{AuthAction, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Params, Statement};

/// Longest statement text accepted. The component's statements are a few
/// hundred bytes; the limit keeps a runaway guest from making SQLite parse
/// and cache megabytes of SQL.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;

/// Why a statement was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// SQLite's extended result code, when SQLite produced the error;
    /// `None` when these rules refused the statement.
    pub code: Option<i32>,
    /// What went wrong, in words.
    pub message: String,
}

impl Failure {
    /// A statement these rules refuse.
    pub fn refused(message: impl Into<String>) -> Self {
        Failure {
            code: None,
            message: message.into(),
        }
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure {
            code: error.sqlite_error().map(|e| e.extended_code),
            message: error.to_string(),
        }
    }
}

/// Refuses a statement text over [`MAX_STATEMENT_BYTES`], before it is
/// prepared.
pub fn check_statement(statement: &str) -> Result<(), Failure> {
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(Failure::refused(format!(
            "statement is {} bytes; the limit is {MAX_STATEMENT_BYTES}",
            statement.len()
        )));
    }
    Ok(())
}

/// What the component's statements may do: read and write tables, and read
/// or set the schema version. Transaction control belongs to whoever runs
/// the component's calls (the host wraps each in a transaction; the plug
/// commits each statement), and attaching other files or changing other
/// settings would reach past the one database that was chosen for it.
pub fn authorize(action: &AuthAction<'_>) -> Authorization {
    match action {
        AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Attach { .. }
        | AuthAction::Detach { .. } => Authorization::Deny,
        AuthAction::Pragma { pragma_name, .. }
            if !pragma_name.eq_ignore_ascii_case("user_version") =>
        {
            Authorization::Deny
        }
        _ => Authorization::Allow,
    }
}

/// Runs a prepared statement that returns no rows; returns how many rows it
/// inserted, updated or deleted. A statement that returns rows is refused
/// unrun: its rows would be lost.
pub fn execute(prepared: &mut Statement<'_>, params: impl Params) -> Result<u64, Failure> {
    if prepared.column_count() > 0 {
        return Err(Failure::refused(
            "execute runs statements that return no rows; use query-row",
        ));
    }
    Ok(prepared.execute(params)? as u64)
}

/// Runs a prepared statement that returns at most one row, and returns that
/// row, each column made a value by `lift`, or `None` when it returns none.
/// A second row is refused: the caller meant one.
pub fn query_row<T>(
    prepared: &mut Statement<'_>,
    params: impl Params,
    mut lift: impl FnMut(ValueRef<'_>) -> T,
) -> Result<Option<Vec<T>>, Failure> {
    let width = prepared.column_count();
    let mut rows = prepared.query(params)?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let columns = (0..width)
        .map(|i| row.get_ref(i).map(&mut lift))
        .collect::<Result<_, _>>()?;
    if rows.next()?.is_some() {
        return Err(Failure::refused(
            "query-row's statement returned more than one row",
        ));
    }
    Ok(Some(columns))
}

/// A text column as a string. SQLite does not check that text is UTF-8,
/// and a file edited by hand may hold bytes that are not, while the
/// component takes strings: such bytes become U+FFFD.
pub fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests;
