//! `twinrt`: everything happens in [`runtime::cli::main_entry`], so that the
//! `tests` crate can build the same binary for its multi-process tests.

fn main() {
    std::process::exit(runtime::cli::main_entry())
}
