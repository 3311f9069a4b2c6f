//! The twinrt node.
