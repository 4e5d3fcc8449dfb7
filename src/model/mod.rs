//! Domain types. Values of these types are valid by construction: requests are parsed into them
//! at the API boundary, and deeper code never re-validates.

pub mod alert;
pub mod call;
pub mod condition;
pub mod event;
pub(crate) mod event_data;
pub mod event_kind;
pub mod fields;
pub mod ids;
pub mod integration;
pub mod portal;
pub mod profile;
pub mod settings;
pub mod stats;
pub mod template;
pub mod tenancy;
pub mod write_only;

/// A value derived from settings on first use and kept with them (a list turned into a set),
/// invisible to serialisation and comparison: two settings are equal when their fields are.
#[derive(Clone)]
pub struct Memo<T>(std::sync::OnceLock<T>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(std::sync::OnceLock::new())
    }
}

impl<T> Memo<T> {
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(f)
    }
}

impl<T> PartialEq for Memo<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Memo")
    }
}
