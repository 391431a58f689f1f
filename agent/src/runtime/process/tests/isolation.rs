//! Real-process tests of what docs/contracts.md#guests promises about process guests: own uids that
//! cannot reach each other, nothing outliving its instance, adoption by a restarted agent
//! (a second runtime on the same instances dir), and exec inside a guest.

use super::*;
use crate::runtime::record;
use gpuspot_common::protocol::ExecInput;

/// A harness whose guests get their own uids, or `None` (the reason printed) when the
/// test does not run as root.
fn isolated() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("tempdir");
    let isolation = Isolation::detect(crate::config::DEFAULT_UID_RANGE);
    if matches!(isolation, Isolation::Shared) {
        println!("not root: guests cannot get their own uids here");
        return None;
    }
    Some(Harness::with_options(ProcessOptions { isolation, ..shared_options(dir.path()) }, dir))
}

fn uid_of(pid: u32) -> u32 {
    crate::runtime::procfs::process_uids(pid as i32).expect("uids")[0]
}

#[tokio::test]
async fn isolated_guests_cannot_read_or_signal_each_other() {
    let Some(mut h) = isolated() else { return };
    let socket = h.spec("i-a", "").metadata_socket;
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let mut a = h.spec("i-a", "echo secret > secret; echo $$ > pid; exec sleep 300");
    a.env.insert("API_KEY".into(), "hunter2".into());
    h.runtime.start(a.clone()).expect("start a");
    let a_pid: u32 = read_when_written(&a.data_dir.join("pid")).await.trim().parse().unwrap();
    let a_pid = host_pid(&a.data_dir, a_pid);

    let probe = format!(
        "id -u > uid; cat {data}/secret > r-data 2>&1; cat /proc/{a_pid}/environ > r-env 2>&1; \
         kill -9 {a_pid} > r-kill 2>&1; echo $? >> r-kill; \
         curl -s --max-time 2 --unix-socket {sock} http://x/ > r-sock 2>&1; echo $? >> r-sock; \
         ls {data} > r-ls 2>&1; echo done > done",
        data = a.data_dir.display(),
        sock = socket.display(),
    );
    h.start("i-b", &probe);
    let done = h.data_dir("i-b").join("done");
    read_when_written(&done).await;
    let read = |name: &str| std::fs::read_to_string(h.data_dir("i-b").join(name)).unwrap();
    let (a_uid, b_uid) = (uid_of(a_pid), read("uid").trim().parse::<u32>().unwrap());
    assert!(a_uid >= 200_000 && b_uid >= 200_000 && a_uid != b_uid, "{a_uid} {b_uid}");
    // Another guest's dirs are out of its view (namespaces) and closed to it (modes).
    let hidden = |text: String| text.contains("Permission denied") || text.contains("No such file");
    assert!(hidden(read("r-data")), "{}", read("r-data"));
    assert!(!read("r-env").contains("hunter2"), "{}", read("r-env"));
    assert!(!read("r-kill").trim().ends_with("\n0") && read("r-kill").trim() != "0");
    assert!(!read("r-sock").trim().ends_with("\n0"), "socket reached: {}", read("r-sock"));
    assert!(hidden(read("r-ls")), "{}", read("r-ls"));
    assert!(process_alive(a_pid), "guest b killed guest a");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&a.data_dir).unwrap().uid(), a_uid);
    assert_eq!(std::fs::metadata(&socket).unwrap().uid(), a_uid);
    assert_eq!(std::fs::metadata(&socket).unwrap().mode() & 0o777, 0o600);
    h.runtime.stop(&InstanceId::from("i-a"), Duration::from_secs(2));
    let ends: Vec<_> = [h.next_event().await, h.next_event().await].into();
    assert!(ends.iter().any(|e| e.state == WorkloadState::Stopped), "{ends:?}");
}

#[tokio::test]
async fn a_detached_child_dies_with_its_instance() {
    let Some(mut h) = isolated() else { return };
    // setsid + a double fork: neither its process group nor its session is the workload's.
    let script = "setsid sh -c 'sleep 300 & echo $! > escaped' & sleep 0.2; \
                  while [ ! -s escaped ]; do sleep 0.05; done; \
                  touch /tmp/gpuspot-test-scratch-$$; \
                  while [ ! -e go ]; do sleep 0.05; done; exit 4";
    h.start("i-detach", script);
    let escaped = h.data_dir("i-detach").join("escaped");
    let pid: u32 = read_when_written(&escaped).await.trim().parse().unwrap();
    let pid = host_pid(&h.data_dir("i-detach"), pid);
    std::fs::write(h.data_dir("i-detach").join("go"), "").unwrap();
    let event = h.next_event().await;
    assert_eq!(event.state, WorkloadState::Exited { code: Some(4) });
    assert!(!process_alive(pid), "the detached child outlived its instance");
    let scratch: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("gpuspot-test-scratch-"))
        .collect();
    assert!(scratch.is_empty(), "the guest's /tmp files stayed: {scratch:?}");
}

/// Runs `start` in a runtime of its own that is then shut down, as a crashed agent's.
fn in_a_dying_agent(
    dir: &Path,
    isolation: Isolation,
    start: impl FnOnce(&ProcessRuntime) + Send + 'static,
) {
    let options = ProcessOptions { isolation, ..shared_options(dir) };
    std::thread::spawn(move || {
        let agent = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        agent.block_on(async {
            let (tx, _events) = mpsc::unbounded_channel();
            start(&ProcessRuntime::with_options(tx, options));
        });
        drop(agent); // its supervising tasks die; the workloads do not
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn a_restarted_agent_adopts_running_and_ended_workloads() {
    let h = Harness::new();
    let isolation = Isolation::detect(crate::config::DEFAULT_UID_RANGE);
    let running = h.spec("i-run", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; exit 7");
    let ended = h.spec("i-end", "echo $$ > pid; while [ ! -e go ]; do sleep 0.05; done; exit 5");
    let stopped = h.spec("i-stop", "echo $$ > pid; exec sleep 300");
    let specs = [running.clone(), ended.clone(), stopped.clone()];
    in_a_dying_agent(h.dir.path(), isolation.clone(), move |runtime| {
        for spec in specs {
            runtime.start(spec).expect("start");
        }
    });
    let pid = read_when_written(&running.data_dir.join("pid")).await.trim().parse().unwrap();
    let pid = host_pid(&running.data_dir, pid);
    // One ends while no agent runs: its watcher keeps the exit code.
    std::fs::write(ended.data_dir.join("go"), "").unwrap();
    let status = record::instance_dir(&ended.data_dir).join(record::STATUS);
    assert!(
        eventually(EVENT_DEADLINE, || record::read_status(&status).wait_status.is_some()).await
    );
    assert!(process_alive(pid), "a workload died with its agent");

    let (tx, mut events) = mpsc::unbounded_channel();
    let restarted = ProcessRuntime::with_options(
        tx,
        ProcessOptions { isolation, ..shared_options(h.dir.path()) },
    );
    let began = Instant::now();
    let mut adopted = restarted.adopt();
    println!("adopted 3 workloads in {:?}", began.elapsed());
    adopted.sort();
    assert_eq!(adopted, ["i-end", "i-run", "i-stop"].map(InstanceId::from));
    let mut next =
        async || tokio::time::timeout(EVENT_DEADLINE, events.recv()).await.unwrap().unwrap();
    let first = next().await;
    assert_eq!(
        (first.instance_id.as_str(), first.state),
        ("i-end", WorkloadState::Exited { code: Some(5) })
    );

    std::fs::write(running.data_dir.join("go"), "").unwrap();
    let second = next().await;
    assert_eq!(
        (second.instance_id.as_str(), second.state),
        ("i-run", WorkloadState::Exited { code: Some(7) })
    );
    let sleeper: u32 =
        read_when_written(&stopped.data_dir.join("pid")).await.trim().parse().unwrap();
    let sleeper = host_pid(&stopped.data_dir, sleeper);
    restarted.stop(&InstanceId::from("i-stop"), Duration::from_secs(2));
    let third = next().await;
    assert_eq!((third.instance_id.as_str(), third.state), ("i-stop", WorkloadState::Stopped));
    assert!(eventually(EVENT_DEADLINE, || !process_alive(sleeper)).await);
    assert!(restarted.running().is_empty());
    // Released data dirs mean "over": nothing is adopted twice.
    for spec in [&running, &ended, &stopped] {
        std::fs::remove_dir_all(&spec.data_dir).unwrap();
    }
    assert!(restarted.adopt().is_empty());
}

/// Runs `command` in `id` and collects (output, exit).
pub(super) async fn exec(
    h: &Harness,
    id: &str,
    spec: ExecSpec,
    input: Vec<ExecInput>,
) -> (String, Option<i32>) {
    let mut session = h.runtime.exec(&InstanceId::from(id), spec).expect("exec");
    for frame in input {
        session.input.send(frame).await.expect("input");
    }
    let mut output = Vec::new();
    let collect = async {
        while let Some(chunk) = session.output.recv().await {
            output.extend(chunk);
        }
    };
    tokio::time::timeout(EVENT_DEADLINE, collect).await.expect("output closes");
    let exit = tokio::time::timeout(EVENT_DEADLINE, session.exit).await.expect("exit");
    (String::from_utf8_lossy(&output).into_owned(), exit.expect("exit sent").expect("followed"))
}

pub(super) fn command(args: &[&str]) -> ExecSpec {
    ExecSpec {
        command: args.iter().map(|a| a.to_string()).collect(),
        tty: false,
        size: None,
        stdin: false,
    }
}

#[tokio::test]
async fn exec_runs_as_the_guest_with_its_environment_input_and_terminal() {
    let h = isolated().unwrap_or_else(Harness::new);
    h.start("i-x", "echo $$ > pid; exec sleep 300");
    let pid: u32 = read_when_written(&h.data_dir("i-x").join("pid")).await.trim().parse().unwrap();
    let pid = host_pid(&h.data_dir("i-x"), pid);
    let script = "id -u; pwd; echo $GPUSPOT_INSTANCE_ID; echo oops >&2; exit 3";
    let (output, code) = exec(&h, "i-x", command(&["sh", "-c", script]), vec![]).await;
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0].parse::<u32>().unwrap(), uid_of(pid), "{output}");
    assert_eq!(lines[1..], [h.data_dir("i-x").to_str().unwrap(), "i-x", "oops"], "{output}");
    assert_eq!(code, Some(3));

    let mut cat = command(&["cat"]);
    cat.stdin = true;
    let input = vec![ExecInput::Stdin(b"piped in\n".to_vec()), ExecInput::Eof];
    assert_eq!(exec(&h, "i-x", cat, input).await, ("piped in\n".into(), Some(0)));

    let mut tty = command(&["sh", "-c", "tty; stty size; read line; stty size; echo got $line"]);
    (tty.tty, tty.stdin, tty.size) = (true, true, Some((100, 30)));
    let mut session = h.runtime.exec(&InstanceId::from("i-x"), tty).expect("exec tty");
    let mut seen = String::new();
    let mut expect = async |needle: &str, seen: &mut String| {
        while !seen.contains(needle) {
            let chunk = tokio::time::timeout(EVENT_DEADLINE, session.output.recv()).await;
            let chunk =
                chunk.expect("terminal output").unwrap_or_else(|| panic!("closed: {seen:?}"));
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    expect("30 100", &mut seen).await;
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    session.input.send(ExecInput::Resize { cols: 120, rows: 40 }).await.unwrap();
    session.input.send(ExecInput::Stdin(b"hi\n".to_vec())).await.unwrap();
    expect("got hi", &mut seen).await;
    assert!(seen.contains("40 120"), "{seen:?}");
    let exit = tokio::time::timeout(EVENT_DEADLINE, session.exit).await.expect("exit");
    assert_eq!(exit.expect("sent"), Ok(Some(0)));

    let missing = h.runtime.exec(&InstanceId::from("i-none"), command(&["true"]));
    assert!(matches!(missing, Err(RuntimeError::NotRunning(_))));
}

#[tokio::test]
async fn dropping_the_cancel_kills_the_command() {
    let h = Harness::new();
    h.start("i-c", "exec sleep 300");
    let session =
        h.runtime.exec(&InstanceId::from("i-c"), command(&["sleep", "300"])).expect("exec");
    let began = Instant::now();
    drop(session.cancel);
    let exit =
        tokio::time::timeout(EVENT_DEADLINE, session.exit).await.expect("exit").expect("sent");
    assert_eq!(exit, Ok(None), "killed by a signal");
    assert!(began.elapsed() < Duration::from_secs(5));
}
