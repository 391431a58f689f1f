//! Exec streams over in-memory pipes, with a runtime whose execs are real `sh` processes.

use super::*;
use crate::runtime::{RuntimeError, WorkloadSpec};
use gpuspot_common::protocol::GuestRuntime;
use std::process::Stdio;
use tokio::io::{DuplexStream, duplex};
use tokio::process::Command;
use tokio::sync::oneshot;

/// Runs execs as real processes for the one instance it "runs".
struct ShellRuntime {
    running: InstanceId,
}

impl WorkloadRuntime for ShellRuntime {
    fn start(&self, _spec: WorkloadSpec) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn stop(&self, _id: &InstanceId, _kill_timeout: Duration) {}
    fn running(&self) -> Vec<InstanceId> {
        vec![self.running.clone()]
    }
    fn adopt(&self) -> Vec<InstanceId> {
        Vec::new()
    }
    fn runtimes(&self) -> Vec<GuestRuntime> {
        vec![GuestRuntime::Process]
    }
    fn exec(&self, id: &InstanceId, spec: ExecSpec) -> Result<ExecSession, RuntimeError> {
        if *id != self.running {
            return Err(RuntimeError::NotRunning(id.clone()));
        }
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$@\" 2>&1")
            .arg("sh")
            .args(&spec.command)
            .stdin(if spec.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuntimeError::Spawn { program: spec.command[0].clone(), source })?;
        let (output_tx, output) = mpsc::channel(8);
        let (input, mut input_rx) = mpsc::channel::<ExecInput>(8);
        let (exit_tx, exit) = oneshot::channel();
        let (cancel, mut cancelled) = oneshot::channel::<()>();
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stdin = child.stdin.take();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf).await {
                if output_tx.send(buf[..n].to_vec()).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(frame) = input_rx.recv().await {
                match (frame, stdin.as_mut()) {
                    (ExecInput::Stdin(data), Some(pipe)) => drop(pipe.write_all(&data).await),
                    (ExecInput::Eof, _) => stdin = None,
                    _ => {}
                }
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => drop(exit_tx.send(Ok(status.ok().and_then(|s| s.code())))),
                _ = &mut cancelled => drop(child.kill().await),
            }
        });
        Ok(ExecSession { output, input, exit, cancel })
    }
}

const ID: &str = "i-exec";

/// The coordinator's ends of one stream, and the agent serving the other.
struct Stream {
    to_agent: DuplexStream,
    from_agent: DuplexStream,
    served: tokio::task::JoinHandle<Result<(), Closed>>,
}

fn open(slots: &Slots) -> Stream {
    let runtime: Arc<dyn WorkloadRuntime> = Arc::new(ShellRuntime { running: ID.into() });
    let (to_agent, agent_recv) = duplex(1 << 20);
    let (agent_send, from_agent) = duplex(1 << 20);
    let served = tokio::spawn(serve(agent_send, agent_recv, runtime, slots.clone()));
    Stream { to_agent, from_agent, served }
}

fn request(command: &[&str], stdin: bool, timeout_ms: u64) -> ExecRequest {
    ExecRequest {
        instance_id: ID.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        tty: false,
        size: None,
        stdin,
        timeout_ms,
    }
}

impl Stream {
    async fn send(&mut self, frame: &impl serde::Serialize) {
        codec::write_frame(&mut self.to_agent, frame).await.unwrap();
    }

    /// Reads frames up to the last one: (all output, last frame).
    async fn finish(&mut self) -> (String, ExecOutput) {
        let mut output = Vec::new();
        loop {
            let read = codec::read_frame::<_, ExecOutput>(&mut self.from_agent);
            let frame = tokio::time::timeout(Duration::from_secs(10), read).await;
            match frame.expect("an answer in time").expect("a frame") {
                Some(ExecOutput::Data(data)) => output.extend(data),
                Some(last) => return (String::from_utf8_lossy(&output).into_owned(), last),
                None => panic!("stream ended without a last frame"),
            }
        }
    }
}

#[tokio::test]
async fn output_and_exit_code_come_back() {
    let mut s = open(&Slots::default());
    s.send(&request(&["sh", "-c", "echo hi; echo err >&2; exit 3"], false, 10_000)).await;
    let (output, last) = s.finish().await;
    assert_eq!(output, "hi\nerr\n");
    assert_eq!(last, ExecOutput::Exit { code: Some(3), timed_out: false });
    assert_eq!(s.served.await.unwrap(), Ok(()));
}

#[tokio::test]
async fn stdin_reaches_the_command_and_eof_ends_it() {
    let mut s = open(&Slots::default());
    s.send(&request(&["cat"], true, 10_000)).await;
    s.send(&ExecInput::Stdin(b"typed\n".to_vec())).await;
    s.send(&ExecInput::Eof).await;
    let (output, last) = s.finish().await;
    assert_eq!(output, "typed\n");
    assert_eq!(last, ExecOutput::Exit { code: Some(0), timed_out: false });
}

#[tokio::test]
async fn the_timeout_kills_the_command_and_says_so() {
    let mut s = open(&Slots::default());
    let started = Instant::now();
    s.send(&request(&["sh", "-c", "echo $$; exec sleep 30"], false, 300)).await;
    let (output, last) = s.finish().await;
    assert_eq!(last, ExecOutput::Exit { code: None, timed_out: true });
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: i32 = output.trim().parse().expect("the shell's pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: signal 0 only asks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "process {pid} survived its timeout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_runtime_refusal_is_an_error_frame() {
    let mut s = open(&Slots::default());
    let mut other = request(&["true"], false, 1000);
    other.instance_id = "i-elsewhere".into();
    s.send(&other).await;
    let (_, last) = s.finish().await;
    assert!(matches!(&last, ExecOutput::Error { reason } if reason.contains("does not run here")));
    let mut empty = open(&Slots::default());
    empty.send(&request(&[], false, 1000)).await;
    assert!(matches!(empty.finish().await.1, ExecOutput::Error { .. }));
}

#[tokio::test]
async fn a_malformed_input_frame_closes_only_its_stream() {
    let slots = Slots::default();
    let mut bad = open(&slots);
    bad.send(&request(&["sleep", "30"], true, 10_000)).await;
    bad.to_agent.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).await.unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), bad.served).await.unwrap();
    assert!(matches!(served.unwrap(), Err(Closed::Bad(_))));
    let mut good = open(&slots);
    good.send(&request(&["echo", "still fine"], false, 10_000)).await;
    assert_eq!(good.finish().await.0, "still fine\n");
}

#[tokio::test]
async fn oversize_frames_are_refused_before_reading_them() {
    let mut s = open(&Slots::default());
    s.to_agent.write_all(&((MAX_FRAME + 1) as u32).to_be_bytes()).await.unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), s.served).await.unwrap();
    assert!(matches!(served.unwrap(), Err(Closed::Bad(reason)) if reason.contains("exceeds")));
}

#[tokio::test]
async fn execs_per_instance_are_bounded() {
    let slots = Slots::default();
    let mut held = Vec::new();
    for _ in 0..MAX_PER_INSTANCE {
        let mut s = open(&slots);
        s.send(&request(&["sleep", "30"], false, 10_000)).await;
        held.push(s);
    }
    // Each of them holds its slot once its request is read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slots.0.lock().unwrap().get(&InstanceId::from(ID)).copied() != Some(MAX_PER_INSTANCE) {
        assert!(Instant::now() < deadline, "the execs did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut one_more = open(&slots);
    one_more.send(&request(&["true"], false, 10_000)).await;
    let (_, last) = one_more.finish().await;
    assert!(matches!(&last, ExecOutput::Error { reason } if reason.contains("already runs")));
    // Closing one stream (the coordinator went) kills its command and frees its slot.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    while slots.0.lock().unwrap().get(&InstanceId::from(ID)).copied() != Some(MAX_PER_INSTANCE - 1)
    {
        assert!(Instant::now() < deadline, "the slot was not given back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
