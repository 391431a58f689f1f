//! Guest networks where the host allows them, and the helper's protocol.

use super::*;

/// Own networks where this host allows them (root, `slirp4netns` installed).
fn networking() -> Option<Networking> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let networking = Networking::detect(root);
    networking.helper.is_some().then_some(networking)
}

#[tokio::test]
async fn a_port_held_on_the_host_is_refused_with_its_number_and_the_helper_ends() {
    let Some(networking) = networking() else { return };
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let error = networking.create(dir.path(), 200_001, &[port]).expect_err("refused");
    assert!(matches!(error, NetError::Publish { port: p, .. } if p == port), "{error}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
    let socket = dir.path().join(API_SOCKET);
    assert!(UnixStream::connect(socket).is_err(), "the helper still serves its API");
}

#[tokio::test]
async fn a_helper_serves_until_the_last_holder_of_its_exit_pipe_closes_it() {
    let Some(networking) = networking() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut net = networking.create(dir.path(), 200_001, &[]).unwrap().expect("a network");
    assert!(net.helper.alive());
    assert_eq!(std::fs::read_to_string(dir.path().join(RESOLV_CONF)).unwrap(), NAMESERVER);
    let joined = net.join(Path::new("/unused")).expect("once");
    assert!(net.join(Path::new("/unused")).is_none(), "handed over twice");
    drop(joined);
    let deadline = Instant::now() + GONE_WITHIN;
    while net.helper.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!net.helper.alive(), "the helper outlived its exit pipe");
}

extern "C" fn ignore_signal(_: libc::c_int) {}

#[test]
fn a_signal_while_waiting_for_the_helper_is_not_taken_for_its_failure() {
    // SAFETY: a handler that does nothing, installed without SA_RESTART, as a process
    // reaping children would have; SIGUSR2 is used by nothing else in this test binary.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore_signal as *const () as usize;
        libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut());
    }
    let (mut ready, mut writer) = std::io::pipe().unwrap();
    let (thread_tx, thread_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        thread_tx.send(unsafe { libc::pthread_self() }).unwrap();
        read_ready_byte(&mut ready)
    });
    let thread = thread_rx.recv().unwrap();
    // Signals paced over 100 ms: most land while the waiter sits in poll.
    for _ in 0..100 {
        // SAFETY: the waiter is alive until it has read the byte written below.
        unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.write_all(b"1").unwrap();
    let answer = waiter.join().unwrap();
    assert_eq!(answer.unwrap(), 1);
}
