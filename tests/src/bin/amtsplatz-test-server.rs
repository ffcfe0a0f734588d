//! The real server binary, built within the tests package so tests can run it as a process.

fn main() -> std::process::ExitCode {
    server::cli::main()
}
