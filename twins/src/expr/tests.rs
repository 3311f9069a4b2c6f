//! Checker, evaluator and condition tests.
