//! Edge adapters.
