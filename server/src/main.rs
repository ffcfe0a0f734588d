//! The `server` binary: everything happens in [`server::cli`].

/// mimalloc: the request path allocates a lot of small, short-lived objects (GraphQL documents,
/// query builders, rows), which glibc's allocator served markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    server::cli::main()
}
