fn main() -> std::process::ExitCode {
    gpuspot_coordinator::cli::main()
}
