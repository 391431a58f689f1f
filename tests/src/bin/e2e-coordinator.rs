//! The coordinator binary, built inside this package so that the scenarios get
//! `CARGO_BIN_EXE_e2e-coordinator`; same code path as `gpuspot-coordinator`.

fn main() -> std::process::ExitCode {
    gpuspot_coordinator::cli::main()
}
