//! `twinrt`: everything happens in [`runtime::cli::main_entry`], so that the
//! `tests` crate can build the same binary for its multi-process tests.

/// jemalloc: a million small actors allocate and free at a high rate from
/// every core; it doubles ingest throughput over the system allocator (figures
/// in docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(runtime::cli::main_entry())
}
