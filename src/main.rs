//! The `idpsync` command. All argument handling, output and exit codes live in `cli`; the work
//! is done by the library crates.

mod cli;

// The server allocates many small, short-lived buffers on every request (bodies, JSON
// documents, responses) from several threads; mimalloc serves them with less contention and
// fragmentation than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
