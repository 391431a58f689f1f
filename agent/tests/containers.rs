//! The container runtime alone on a real Podman (scripts/container-engine.sh starts one and
//! builds the test image): output, exit codes, stops, hard limits, the OOM killer, a failed
//! pull, exec, and adoption by a new runtime after the old one died (its tasks gone with
//! its tokio runtime, as when the agent process dies), with its orphaned networks swept,
//! also between two agents sharing an engine; an end while the engine was away is still
//! reported once it is back.

use gpuspot_agent::runtime::container::{LABEL_AGENT, container_name};
use gpuspot_agent::runtime::{ExecSpec, RuntimeEvent, WorkloadRuntime};
use gpuspot_common::protocol::{ExecInput, WorkloadState};
use gpuspot_common::{FailureKind, InstanceId};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

#[path = "containers/harness.rs"]
mod harness;

use harness::*;

#[test]
fn output_exit_code_environment_and_mounts() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, mut events) = host.runtime(&rt);
    let spec = host.spec(
        "echo $GREETING from $GPUSPOT_INSTANCE_ID; echo to-stderr >&2; \
         echo DATA=$GPUSPOT_DATA_DIR SOCKET=$GPUSPOT_METADATA_SOCKET CUDA=$CUDA_VISIBLE_DEVICES; \
         echo kept > /data/file; ls /run/gpuspot; exit 3",
    );
    let _socket = std::os::unix::net::UnixListener::bind(&spec.metadata_socket).unwrap();
    runtime.start(spec.clone()).expect("start");
    let started = raw_event(&rt, &mut events);
    assert_eq!(started.state, WorkloadState::Running, "said when it runs: {started:?}");
    let event = next_event(&rt, &mut events);
    assert_eq!(
        event,
        RuntimeEvent {
            instance_id: spec.instance_id.clone(),
            state: WorkloadState::Exited { code: Some(3) }
        }
    );
    let log = log_of(&spec);
    assert!(log.contains(&format!("hello from {}\n", spec.instance_id)), "{log}");
    assert!(log.contains("to-stderr\n"), "{log}");
    assert!(
        log.contains("DATA=/data SOCKET=/run/gpuspot/metadata.sock CUDA=GPU-fake-1\n"),
        "{log}"
    );
    assert!(log.contains("metadata.sock\n"), "the socket dir shows the socket: {log}");
    assert_eq!(std::fs::read_to_string(spec.data_dir.join("file")).unwrap(), "kept\n");
    wait_removed(&rt, &spec.instance_id);
    assert!(runtime.running().is_empty());
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_timeout() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, mut events) = host.runtime(&rt);
    let polite =
        host.spec("trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.1; done");
    let stubborn = host.spec("trap '' TERM; echo ready; while :; do sleep 0.1; done");
    runtime.start(polite.clone()).expect("start");
    runtime.start(stubborn.clone()).expect("start");
    wait_log(&polite, "ready");
    wait_log(&stubborn, "ready");

    let asked = Instant::now();
    runtime.stop(&polite.instance_id, Duration::from_secs(20));
    assert_eq!(next_event(&rt, &mut events).state, WorkloadState::Stopped);
    assert!(asked.elapsed() < Duration::from_secs(10), "SIGTERM took {:?}", asked.elapsed());
    assert!(log_of(&polite).contains("got-term"), "{}", log_of(&polite));

    let asked = Instant::now();
    runtime.stop(&stubborn.instance_id, Duration::from_secs(1));
    let event = next_event(&rt, &mut events);
    assert_eq!(
        event,
        RuntimeEvent { instance_id: stubborn.instance_id.clone(), state: WorkloadState::Stopped }
    );
    assert!(asked.elapsed() >= Duration::from_secs(1), "killed before the timeout");
    wait_removed(&rt, &stubborn.instance_id);
}

#[test]
fn a_container_over_its_memory_limit_is_killed_and_reported() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, mut events) = host.runtime(&rt);
    // Doubles a string until it passes 1 GiB.
    let hog =
        host.spec("echo start; exec awk 'BEGIN { s = \"0123456789abcdef\"; while (1) s = s s }'");
    runtime.start(hog.clone()).expect("start");
    let event = next_event(&rt, &mut events);
    let WorkloadState::Failed(failure) = &event.state else { panic!("not failed: {event:?}") };
    assert_eq!(failure.kind, FailureKind::OutOfMemory, "{failure}");
    assert!(failure.to_string().contains("memory limit of 1 GiB"), "{failure}");
    // The host (this test, the engine) is fine: the next container runs normally.
    let after = host.spec("echo still-fine");
    runtime.start(after.clone()).expect("start");
    assert_eq!(next_event(&rt, &mut events).state, WorkloadState::Exited { code: Some(0) });
    assert!(log_of(&after).contains("still-fine"));
}

#[test]
fn cpu_memory_and_pids_limits_are_in_the_containers_cgroup() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, mut events) = host.runtime(&rt);
    let mut spec = host.spec(
        "cd /sys/fs/cgroup; echo PIDS=$(cat pids/pids.max 2>/dev/null || cat pids.max); \
         echo MEM=$(cat memory/memory.limit_in_bytes 2>/dev/null || cat memory.max); \
         echo CPU=$(cat cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 cpu.max); \
         echo NOFILE=$(ulimit -n); ip -o link | grep -c ': eth'",
    );
    spec.cpu_cores = 2;
    runtime.start(spec.clone()).expect("start");
    assert_eq!(next_event(&rt, &mut events).state, WorkloadState::Exited { code: Some(0) });
    let log = log_of(&spec);
    assert!(log.contains("PIDS=4096\n"), "{log}");
    assert!(log.contains(&format!("MEM={}\n", 1u64 << 30)), "{log}");
    assert!(log.contains("CPU=200000\n"), "2 cores are 200 ms per 100 ms period: {log}");
    assert!(log.contains("NOFILE=1024\n"), "{log}");
    assert!(log.ends_with("1\n"), "its own network namespace with one interface: {log}");
}

#[test]
fn an_image_that_cannot_be_pulled_fails_the_workload() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, mut events) = host.runtime(&rt);
    let mut spec = host.spec("true");
    spec.image = Some("127.0.0.1:1/gpuspot/no-such-image:1".into());
    runtime.start(spec.clone()).expect("start");
    let event = next_event(&rt, &mut events);
    let WorkloadState::Failed(failure) = &event.state else { panic!("not failed: {event:?}") };
    assert_eq!(failure.kind, FailureKind::ImagePull, "{failure}");
    let text = failure.to_string();
    assert!(text.starts_with("image_pull_failed: 127.0.0.1:1/gpuspot/no-such-image:1"), "{text}");
    assert!(runtime.running().is_empty());
}

/// A guest printing `tick N` every 100 ms.
const TICKER: &str = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done";

/// The ticks in a log; panics unless they are 0, 1, 2, … each once.
fn ticks(log: &str) -> u32 {
    let seen: Vec<u32> =
        log.lines().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).collect();
    let expected: Vec<u32> = (0..seen.len() as u32).collect();
    assert_eq!(seen, expected, "every tick once, in order");
    seen.len() as u32
}

#[test]
fn a_new_runtime_adopts_running_and_ended_containers_and_logs_continue() {
    let host = Host::new();
    let first = Runtime::new().unwrap();
    let (runtime, _events) = host.runtime(&first);
    let ticker = host.spec(TICKER);
    let quitter =
        host.spec("echo before; while [ ! -e /data/go ]; do sleep 0.05; done; echo after; exit 4");
    runtime.start(ticker.clone()).expect("start");
    runtime.start(quitter.clone()).expect("start");
    wait_log(&ticker, "tick 5");
    wait_log(&quitter, "before");
    // The agent dies: its tasks go with its runtime; the containers stay.
    drop(runtime);
    first.shutdown_timeout(Duration::from_secs(5));
    let rt = Runtime::new().unwrap();
    std::fs::write(quitter.data_dir.join("go"), "").unwrap();
    wait_for(SOON, "the quitter to exit while no agent runs", || {
        match container_state(&rt, &quitter.instance_id) {
            (true, false) => Ok(()),
            state => Err(format!("{state:?}")),
        }
    });
    assert_eq!(container_state(&rt, &ticker.instance_id), (true, true));

    // A network the dead agent made for a container it never created.
    let orphan = format!("gpuspot-i-orphan-{}-{}", std::process::id(), nanos());
    let labels = HashMap::from([
        (LABEL_AGENT.to_owned(), host.label()),
        ("gpuspot.instance".to_owned(), "i-orphan".to_owned()),
    ]);
    let request = bollard::models::NetworkCreateRequest {
        name: orphan.clone(),
        labels: Some(labels),
        ..Default::default()
    };
    rt.block_on(docker().create_network(request)).expect("create a network");
    assert_eq!(networks(&rt, &host.label()).len(), 3, "ticker, quitter and the orphan");

    let (runtime, mut events) = host.runtime(&rt);
    let restarted = Instant::now();
    let mut adopted = runtime.adopt();
    adopted.sort();
    let mut expected = vec![ticker.instance_id.clone(), quitter.instance_id.clone()];
    expected.sort();
    assert_eq!(adopted, expected);
    let mut left = networks(&rt, &host.label());
    left.sort();
    let mut needed: Vec<String> = expected.iter().map(container_name).collect();
    needed.sort();
    assert_eq!(left, needed, "the orphaned network is swept, the adopted ones' stay");
    eprintln!("adopted {} containers in {:?}", adopted.len(), restarted.elapsed());
    let ended = next_event(&rt, &mut events);
    assert_eq!(
        ended,
        RuntimeEvent {
            instance_id: quitter.instance_id.clone(),
            state: WorkloadState::Exited { code: Some(4) }
        }
    );
    assert_eq!(log_of(&quitter).matches("before").count(), 1, "{}", log_of(&quitter));
    assert!(log_of(&quitter).contains("after\n"), "{}", log_of(&quitter));

    let now = ticks(&log_of(&ticker));
    wait_log(&ticker, &format!("tick {}\n", now + 10));
    runtime.stop(&ticker.instance_id, Duration::from_secs(1));
    assert_eq!(next_event(&rt, &mut events).state, WorkloadState::Stopped);
    ticks(&log_of(&ticker));
    wait_for(SOON, "the ended containers' networks to go", || {
        let left = networks(&rt, &host.label());
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    });
}

/// The networks labelled with agent `label`.
fn networks(rt: &Runtime, label: &str) -> Vec<String> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{LABEL_AGENT}={label}")])]);
    let options = bollard::query_parameters::ListNetworksOptions { filters: Some(filters) };
    let listed = rt.block_on(docker().list_networks(Some(options))).expect("list networks");
    listed.into_iter().filter_map(|n| n.name).collect()
}

/// The terminal's size once the engine has set it (it starts at 0x0 until the resize that
/// follows the exec's start lands; busybox's stty fails on 0x0).
const TTY_SIZE: &str =
    "until stty size 2>/dev/null | grep -qv '^0 0$'; do sleep 0.05; done; stty size";

#[test]
fn exec_returns_output_and_exit_code_takes_stdin_and_a_tty_and_cancels() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let (runtime, _events) = host.runtime(&rt);
    let spec = host.spec("echo up; exec sleep 300");
    runtime.start(spec.clone()).expect("start");
    wait_log(&spec, "up");
    let id = &spec.instance_id;
    let exec = |command: &str, tty: bool, stdin: bool| {
        let command = vec!["sh".into(), "-c".into(), command.into()];
        runtime
            .exec(id, ExecSpec { command, tty, size: tty.then_some((100, 30)), stdin })
            .expect("exec")
    };
    let collect = |mut session: gpuspot_agent::runtime::ExecSession, input: Vec<ExecInput>| {
        rt.block_on(async move {
            for frame in input {
                session.input.send(frame).await.expect("stdin");
            }
            let mut output = Vec::new();
            while let Some(chunk) =
                tokio::time::timeout(SOON, session.output.recv()).await.expect("output")
            {
                output.extend(chunk);
            }
            let exit = tokio::time::timeout(SOON, session.exit).await.expect("exit").expect("sent");
            (String::from_utf8_lossy(&output).into_owned(), exit)
        })
    };
    let (output, exit) = collect(
        exec("echo out; echo err >&2; echo $GPUSPOT_INSTANCE_ID; exit 5", false, false),
        vec![],
    );
    // stdout and stderr are two pipes: merged, but not ordered between them.
    let mut lines: Vec<&str> = output.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["err", id.as_str(), "out"], "{output:?}");
    assert_eq!(exit, Ok(Some(5)));

    let input = vec![ExecInput::Stdin(b"from stdin\n".to_vec()), ExecInput::Eof];
    let (output, exit) = collect(exec("cat", false, true), input);
    assert_eq!((output.as_str(), exit), ("from stdin\n", Ok(Some(0))));

    let (output, exit) = collect(exec(TTY_SIZE, true, true), vec![]);
    assert_eq!((output.trim(), exit), ("30 100", Ok(Some(0))));

    let session = exec("echo started; exec sleep 300", false, false);
    let asked = Instant::now();
    let exit = rt.block_on(async move {
        let mut output = session.output;
        output.recv().await.expect("started");
        drop(session.cancel);
        tokio::time::timeout(SOON, session.exit).await.expect("exit").expect("sent")
    });
    assert_eq!(exit, Ok(None));
    assert!(asked.elapsed() < Duration::from_secs(10));
    assert!(
        runtime
            .exec(
                &InstanceId::from("i-none"),
                ExecSpec { command: vec!["true".into()], tty: false, size: None, stdin: false }
            )
            .is_err()
    );
}

#[test]
fn agents_sharing_an_engine_adopt_only_their_own_containers() {
    let (mine, theirs) = (Host::new(), Host::new());
    let first = Runtime::new().unwrap();
    let other = Runtime::new().unwrap();
    let (my_runtime, _my_events) = mine.runtime(&first);
    let (their_runtime, mut their_events) = theirs.runtime(&other);
    let my_spec = mine.spec(TICKER);
    let their_spec = theirs.spec(TICKER);
    my_runtime.start(my_spec.clone()).expect("start");
    their_runtime.start(their_spec.clone()).expect("start");
    wait_log(&my_spec, "tick 1");
    wait_log(&their_spec, "tick 1");
    drop(my_runtime);
    first.shutdown_timeout(Duration::from_secs(5));

    let rt = Runtime::new().unwrap();
    let (again, _events) = mine.runtime(&rt);
    assert_eq!(again.adopt(), vec![my_spec.instance_id.clone()]);
    assert_eq!(container_state(&rt, &their_spec.instance_id), (true, true));
    assert_eq!(their_runtime.running(), vec![their_spec.instance_id.clone()]);
    their_runtime.stop(&their_spec.instance_id, Duration::from_secs(1));
    assert_eq!(next_event(&other, &mut their_events).state, WorkloadState::Stopped);
}

/// A Podman service of the test's own on `socket` (the shared one's storage): its pid.
fn private_engine(socket: &Path) -> u32 {
    engine();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/container-engine.sh");
    let output = std::process::Command::new(&script)
        .arg("--socket")
        .arg(socket)
        .args(["--idle", "120"])
        .output()
        .expect("run container-engine.sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let wanted = format!("unix://{}", socket.display());
    let pids = std::fs::read_dir("/proc").expect("/proc").flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.contains(&wanted.as_bytes()).then_some(pid)
    });
    pids.into_iter().next().expect("the private service's pid")
}

fn kill(pid: u32) {
    // SAFETY: kill has no memory preconditions; a stale pid yields ESRCH.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

#[test]
fn an_end_while_the_engine_was_away_is_reported_once_it_is_back() {
    let rt = Runtime::new().unwrap();
    let host = Host::new();
    let socket = host.dir.path().join("engine").join("podman.sock");
    let pid = private_engine(&socket);
    let url = format!("unix://{}", socket.display());
    let (runtime, mut events) = host.runtime_on(&rt, &url);
    let spec = host.spec("sleep 4; exit 5");
    runtime.start(spec.clone()).expect("start");
    assert_eq!(raw_event(&rt, &mut events).state, WorkloadState::Running);
    // The engine goes away (its containers live on), and the container ends meanwhile.
    kill(pid);
    wait_for(SOON, "the container to end", || match container_state(&rt, &spec.instance_id) {
        (true, false) => Ok(()),
        state => Err(format!("{state:?}")),
    });
    let pid = private_engine(&socket);
    let event = next_event(&rt, &mut events);
    assert_eq!(event.state, WorkloadState::Exited { code: Some(5) }, "{event:?}");
    wait_removed(&rt, &spec.instance_id);
    kill(pid);
}
