//! The `idpsync` command. All argument handling, output and exit codes live in `cli`; the work
//! is done by the library crates.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
