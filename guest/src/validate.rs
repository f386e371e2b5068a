//! The input rules: each function checks one argument and returns it in the
//! form the store keeps, or an [`StoreError::InvalidInput`] naming the
//! argument and the rule it broke.

use crate::error::StoreError;
use crate::limits::{
    CUT_MARKER, HTTP_STATUS_RANGE, MAX_FIELD_BYTES, MAX_KIND_BYTES, MAX_LAST_ERROR_BYTES,
};
use crate::status::Status;

/// Parses an operation id and returns its canonical form: lowercase,
/// hyphenated. Any spelling of a UUID is accepted (upper case, braces,
/// `urn:uuid:`, no hyphens), so that two spellings of one id are one row.
pub fn operation_id(raw: &str) -> Result<String, StoreError> {
    // Checked before parsing so that a huge argument is refused cheaply and
    // never echoed back in full.
    if raw.len() > 64 {
        return Err(StoreError::invalid("id", "must be a UUID (it is too long)"));
    }
    uuid::Uuid::try_parse(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            StoreError::invalid(
                "id",
                format!("must be a UUID such as 0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b, got {raw:?}"),
            )
        })
}

/// Checks an operation kind: non-empty, at most [`MAX_KIND_BYTES`], no
/// control characters.
pub fn kind(raw: String) -> Result<String, StoreError> {
    if raw.trim().is_empty() {
        return Err(StoreError::invalid(
            "kind",
            "must not be empty or only whitespace",
        ));
    }
    if raw.len() > MAX_KIND_BYTES {
        return Err(StoreError::invalid(
            "kind",
            format!("must be at most {MAX_KIND_BYTES} bytes, got {}", raw.len()),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "kind",
            "must not contain control characters",
        ));
    }
    Ok(raw)
}

/// Checks one of the optional descriptive fields set at enqueue: at most
/// [`MAX_FIELD_BYTES`].
pub fn optional_field(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, StoreError> {
    match value {
        Some(text) if text.len() > MAX_FIELD_BYTES => Err(StoreError::invalid(
            field,
            format!(
                "must be at most {MAX_FIELD_BYTES} bytes, got {}",
                text.len()
            ),
        )),
        other => Ok(other),
    }
}

/// Checks an HTTP status: within [`HTTP_STATUS_RANGE`].
pub fn http_status(value: Option<u16>) -> Result<Option<u16>, StoreError> {
    match value {
        Some(code) if !HTTP_STATUS_RANGE.contains(&code) => Err(StoreError::invalid(
            "http-status",
            format!(
                "must be within {}..={}, got {code}",
                HTTP_STATUS_RANGE.start(),
                HTTP_STATUS_RANGE.end()
            ),
        )),
        other => Ok(other),
    }
}

/// Checks the status of an attempt: it must be in flight.
pub fn attempt_status(status: Status) -> Result<Status, StoreError> {
    if status.is_terminal() {
        return Err(StoreError::invalid(
            "status",
            format!("an attempt must be submitted or retrying, got {status}; use record-terminal"),
        ));
    }
    Ok(status)
}

/// Checks the status of a terminal write: it must be final.
pub fn terminal_status(status: Status) -> Result<Status, StoreError> {
    if !status.is_terminal() {
        return Err(StoreError::invalid(
            "status",
            format!(
                "a terminal write must be delivered, parked, failed or discarded, got {status}; \
                 use record-attempt"
            ),
        ));
    }
    Ok(status)
}

/// Cuts an over-long last error to [`MAX_LAST_ERROR_BYTES`], at a character
/// boundary, ending in [`CUT_MARKER`]. This never fails: losing the tail of
/// an error message is better than losing the attempt it belongs to.
pub fn last_error(value: Option<String>) -> Option<String> {
    let mut text = value?;
    if text.len() > MAX_LAST_ERROR_BYTES {
        let mut end = MAX_LAST_ERROR_BYTES - CUT_MARKER.len();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(CUT_MARKER);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field_of(error: StoreError) -> &'static str {
        match error {
            StoreError::InvalidInput { field, .. } => field,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn any_uuid_spelling_becomes_canonical_lowercase() {
        let canonical = "0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b";
        for spelling in [
            canonical,
            "0F8E2C1A-7B3D-4E5F-9A6B-1C2D3E4F5A6B",
            "0f8e2c1a7b3d4e5f9a6b1c2d3e4f5a6b",
            "{0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b}",
            "urn:uuid:0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b",
        ] {
            assert_eq!(operation_id(spelling).unwrap(), canonical, "{spelling}");
        }
    }

    #[test]
    fn malformed_ids_are_refused_naming_the_id() {
        for bad in [
            "",
            "not-a-uuid",
            "0f8e2c1a-7b3d-4e5f-9a6b",
            " 0f8e2c1a-7b3d-4e5f-9a6b-1c2d3e4f5a6b",
        ] {
            assert_eq!(field_of(operation_id(bad).unwrap_err()), "id", "{bad:?}");
        }
        let huge = "a".repeat(1 << 20);
        let error = operation_id(&huge).unwrap_err();
        assert!(
            error.to_string().len() < 200,
            "a huge id is not echoed back"
        );
    }

    #[test]
    fn kind_must_be_non_empty_bounded_and_printable() {
        assert_eq!(
            kind("ExternalSystem.CachedCall".into()).unwrap(),
            "ExternalSystem.CachedCall"
        );
        assert_eq!(field_of(kind(String::new()).unwrap_err()), "kind");
        assert_eq!(field_of(kind("   ".into()).unwrap_err()), "kind");
        assert_eq!(field_of(kind("a\nb".into()).unwrap_err()), "kind");
        assert!(kind("k".repeat(MAX_KIND_BYTES)).is_ok());
        assert_eq!(
            field_of(kind("k".repeat(MAX_KIND_BYTES + 1)).unwrap_err()),
            "kind"
        );
    }

    #[test]
    fn optional_fields_are_bounded_and_named() {
        assert_eq!(optional_field("source-node", None).unwrap(), None);
        assert!(optional_field("source-node", Some("n".repeat(MAX_FIELD_BYTES))).is_ok());
        let error =
            optional_field("source-node", Some("n".repeat(MAX_FIELD_BYTES + 1))).unwrap_err();
        assert_eq!(field_of(error), "source-node");
    }

    #[test]
    fn http_status_must_be_a_real_status_code() {
        for good in [100, 200, 429, 503, 599] {
            assert_eq!(http_status(Some(good)).unwrap(), Some(good));
        }
        for bad in [0, 99, 600, u16::MAX] {
            assert_eq!(field_of(http_status(Some(bad)).unwrap_err()), "http-status");
        }
        assert_eq!(http_status(None).unwrap(), None);
    }

    #[test]
    fn attempts_take_only_in_flight_statuses_and_terminal_writes_only_final_ones() {
        for status in Status::ALL {
            assert_eq!(attempt_status(status).is_ok(), !status.is_terminal());
            assert_eq!(terminal_status(status).is_ok(), status.is_terminal());
        }
        assert_eq!(
            field_of(attempt_status(Status::Delivered).unwrap_err()),
            "status"
        );
        assert_eq!(
            field_of(terminal_status(Status::Retrying).unwrap_err()),
            "status"
        );
    }

    #[test]
    fn a_last_error_within_the_limit_is_kept_whole() {
        let text = "e".repeat(MAX_LAST_ERROR_BYTES);
        assert_eq!(last_error(Some(text.clone())), Some(text));
        assert_eq!(last_error(None), None);
    }

    #[test]
    fn an_over_long_last_error_is_cut_at_a_character_boundary_and_marked() {
        // Three-byte characters, so the byte limit falls inside one of them.
        let text = "€".repeat(MAX_LAST_ERROR_BYTES);
        let cut = last_error(Some(text)).unwrap();
        assert!(cut.len() <= MAX_LAST_ERROR_BYTES);
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.trim_end_matches(CUT_MARKER).chars().all(|c| c == '€'));
    }

    proptest! {
        #[test]
        fn cut_last_errors_are_valid_bounded_prefixes(text in "\\PC{0,3000}", repeat in 1usize..4) {
            let text = text.repeat(repeat);
            let kept = last_error(Some(text.clone())).unwrap();
            prop_assert!(kept.len() <= MAX_LAST_ERROR_BYTES);
            if text.len() <= MAX_LAST_ERROR_BYTES {
                prop_assert_eq!(kept, text);
            } else {
                let prefix = kept.strip_suffix(CUT_MARKER).unwrap();
                prop_assert!(text.starts_with(prefix));
            }
        }
    }
}
