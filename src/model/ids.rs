//! Object ids.

/// `prefix_<ULID>`: unique, and sorting by id sorts by creation time.
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}
