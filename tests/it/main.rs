//! Integration tests: the real server on 127.0.0.1:0 with real receivers.

mod alerts;
mod brokers;
mod charts;
mod cluster;
mod commands;
mod console;
mod crash;
mod delivery;
mod faults;
mod hostile;
mod input;
mod integrations;
mod partners;
mod portal;
mod profiles;
mod rate_limit;
mod receivers;
mod retries;
mod seeds;
mod store;
mod store_faults;
mod support;
mod telephony;
mod templates;
mod tenancy;
pub(crate) mod tls;
mod upgrade;
