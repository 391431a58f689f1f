//! The agent binary, built inside this package so that the scenarios get
//! `CARGO_BIN_EXE_e2e-agent`; same code path as `gpuspot-agent`.

fn main() -> std::process::ExitCode {
    gpuspot_agent::cli::main()
}
