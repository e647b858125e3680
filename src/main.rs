//! The `idpsync` command. All argument handling, output and exit codes live in `cli`; the work
//! is done by the library crates.

mod cli;

// The server allocates many small, short-lived buffers on every request (bodies, JSON
// documents, responses) from several threads; mimalloc serves them with less contention and
// fragmentation than the system allocator. Built without transparent huge pages (`no_thp`):
// with them, each 2 MiB region mimalloc had released and took back was zeroed whole by the
// kernel, which was a fifth of the log committer's time under 64 writers. Without them,
// appends ran about 17 % faster, and on a 1M-event tenant loading took no longer with a peak
// 18 MB lower, and `log verify` 8.2 s instead of 9.7 s (benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    idpsync_allocator::configure();
    cli::main()
}
