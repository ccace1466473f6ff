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
