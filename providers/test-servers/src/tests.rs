use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use super::*;

/// Whether a process with this id exists (our children are reaped, so no zombies linger).
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn redis_call(server: &RedisServer, args: &[&str]) -> String {
    String::from_utf8_lossy(&redis::command(server.port(), args).unwrap()).into_owned()
}

fn psql(server: &PostgresServer, sql: &str) -> String {
    let bin = postgres::find_bin_dir().unwrap();
    let output = Command::new(bin.join("psql"))
        .args(["-h", server.host(), "-p", &server.port().to_string()])
        .args(["-U", server.user(), "-d", server.database()])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", server.password())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Sends one NATS request over the raw protocol and returns the reply's payload: enough for
/// the JetStream API without a client library.
fn nats_request(server: &NatsServer, subject: &str, payload: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "CONNECT {{\"verbose\":false}}\r\nSUB reply 1\r\nPUB {subject} reply {}\r\n{payload}\r\n",
        payload.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap();
        assert!(
            read > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&received);
        // MSG <subject> <sid> <size>\r\n<payload>\r\n
        let Some(start) = text.find("MSG reply 1 ") else {
            continue;
        };
        let Some(header_len) = text[start..].find("\r\n") else {
            continue;
        };
        let header = &text[start..start + header_len];
        let size: usize = header.rsplit(' ').next().unwrap().parse().unwrap();
        let body = start + header_len + 2;
        if text.len() >= body + size {
            return text[body..body + size].to_owned();
        }
    }
}

#[test]
fn redis_starts_restarts_with_its_data_and_cleans_up() {
    let mut server = RedisServer::start().unwrap();
    assert!(redis_call(&server, &["PING"]).starts_with("+PONG"));
    assert!(redis_call(&server, &["SET", "k", "v"]).starts_with("+OK"));
    let port = server.port();
    let dir: PathBuf = server.dir().to_owned();

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert!(
        redis_call(&server, &["GET", "k"]).contains("v"),
        "data kept"
    );

    server.kill();
    assert!(!server.is_running());
    assert!(
        redis::command(port, &["PING"]).is_err(),
        "nothing listens after kill"
    );
    server.start_again().unwrap();
    assert!(redis_call(&server, &["PING"]).starts_with("+PONG"));

    let pid = server.pid().unwrap();
    drop(server);
    assert!(!alive(pid), "redis-server survived its guard");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn nats_starts_restarts_with_its_streams_and_cleans_up() {
    let mut server = NatsServer::start().unwrap();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let info = nats::info(server.port()).unwrap();
    assert!(info.contains("\"jetstream\":true"), "{info}");
    let created = nats_request(
        &server,
        "$JS.API.STREAM.CREATE.KEPT",
        r#"{"name":"KEPT","subjects":["kept.>"],"storage":"file"}"#,
    );
    assert!(!created.contains("\"error\""), "{created}");
    let ack = nats_request(&server, "kept.one", "hello");
    assert!(ack.contains("\"seq\":1"), "{ack}");
    let port = server.port();
    let dir: PathBuf = server.dir().to_owned();

    server.stop().unwrap();
    assert!(!server.is_running());
    assert!(nats::info(port).is_err(), "nothing listens after stop");
    server.start_again().unwrap();
    assert_eq!(server.port(), port);
    assert!(nats::info(port).unwrap().starts_with("INFO {"));
    let kept = nats_request(&server, "$JS.API.STREAM.INFO.KEPT", "");
    assert!(kept.contains("\"messages\":1"), "stream kept: {kept}");

    let pid = server.pid().unwrap();
    drop(server);
    assert!(!alive(pid), "nats-server survived its guard");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn postgres_starts_with_password_auth_restarts_with_its_data_and_cleans_up() {
    let mut server = PostgresServer::start().unwrap();
    assert!(server.url().contains(server.password()));
    psql(
        &server,
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')",
    );
    let port = server.port();
    let data = server.data_dir();

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(psql(&server, "SELECT v FROM t"), "kept");

    server.kill();
    assert!(!server.is_running());
    server.start_again().unwrap();
    assert_eq!(
        psql(&server, "SELECT v FROM t"),
        "kept",
        "recovered after a crash"
    );

    let pid = server.pid().unwrap();
    drop(server);
    assert!(!alive(pid), "postgres survived its guard");
    assert!(!data.exists(), "{} left behind", data.display());
}

#[test]
fn wrong_password_is_refused() {
    let server = PostgresServer::start().unwrap();
    let bin = postgres::find_bin_dir().unwrap();
    let output = Command::new(bin.join("psql"))
        .args(["-h", server.host(), "-p", &server.port().to_string()])
        .args([
            "-U",
            server.user(),
            "-d",
            server.database(),
            "-X",
            "-c",
            "SELECT 1",
        ])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!output.status.success());
}

#[test]
fn missing_binaries_are_named_with_a_hint() {
    let err = process::find_program(
        "no-such-server-binary",
        "NEONGRID_TEST_NO_SUCH_VAR",
        &[PathBuf::from("/nonexistent")],
        "install it",
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no-such-server-binary"), "{message}");
    assert!(message.contains("install it"), "{message}");
}
