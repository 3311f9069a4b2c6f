//! The `twinrt` binary, built again inside the `tests` crate: cargo sets
//! `CARGO_BIN_EXE_<name>` only for a package's own binaries, and the
//! multi-process tests in `tests/tests/` need the real executable.
//!
//! Named apart from `runtime`'s `twinrt`: two binaries of one name in one
//! workspace collide in `target/` (cargo warns, and means to make it an
//! error, rust-lang/cargo#6313). It parses its arguments as `twinrt`.

fn main() {
    std::process::exit(runtime::cli::main_entry())
}
