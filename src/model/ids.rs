//! Object ids.

/// `prefix_<ULID>`: unique, and sorting by id sorts by creation time.
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

/// The 128 bits of a `prefix_<ULID>` id in GUID form (`8-4-4-4-12` lower-case hex), as seed 002
/// shows a trigger id; `None` for an id that is not a ULID.
pub fn guid(id: &str) -> Option<String> {
    let (_, ulid) = id.split_once('_')?;
    let bits = u128::from(ulid::Ulid::from_string(ulid).ok()?);
    Some(guid_form(bits))
}

/// 128 bits as a GUID: `8-4-4-4-12` lower-case hex.
pub fn guid_form(bits: u128) -> String {
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The `prefix_<ULID>` id a GUID stands for; anything that is not a GUID is returned as it is,
/// so either form names the object.
pub fn from_guid(prefix: &str, id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let shaped = id.len() == 36
        && id
            .char_indices()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (c == '-'));
    match u128::from_str_radix(&hex, 16) {
        Ok(bits) if shaped && hex.len() == 32 => format!(
            "{prefix}_{}",
            ulid::Ulid::from(bits).to_string().to_ascii_lowercase()
        ),
        _ => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_and_its_guid_name_each_other() {
        let id = new_id("int");
        let g = guid(&id).unwrap_or_default();
        assert_eq!(g.len(), 36);
        assert_eq!(from_guid("int", &g), id);
        assert_eq!(from_guid("int", &g.to_ascii_uppercase()), id);
        assert_eq!(from_guid("int", &id), id, "the id itself passes unchanged");
        assert_eq!(from_guid("int", "not-a-guid"), "not-a-guid");
        assert_eq!(guid("int_golden"), None);
    }
}
