//! Domain types. Values of these types are valid by construction: requests are parsed into them
//! at the API boundary, and deeper code never re-validates.

pub mod event;
pub mod integration;
pub mod tenancy;
