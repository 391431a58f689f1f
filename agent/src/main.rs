fn main() -> std::process::ExitCode {
    gpuspot_agent::cli::main()
}
