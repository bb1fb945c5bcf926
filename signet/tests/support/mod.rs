//! Shared pieces of the CLI tests: running `signet` in a temporary data directory, and a real
//! authoritative DNS server (Knot) on loopback serving customer zones.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh installation directory and a way to run `signet` against it.
pub struct Signet {
    pub dir: tempfile::TempDir,
}

/// What one `signet` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "signet failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts failure with one error line containing `why`; returns stderr.
    #[track_caller]
    pub fn refused(&self, why: &str) -> &str {
        assert_ne!(
            self.code, 0,
            "signet succeeded but should not have: {}",
            self.stdout
        );
        assert!(
            self.stderr.contains(why),
            "expected {why:?} in:\n{}",
            self.stderr
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        &self.stderr
    }
}

impl Signet {
    pub fn new() -> Signet {
        Signet {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, b"")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("SIGNET_MASTER_KEY")
            .env_remove("SIGNET_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the signet binary runs");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// A free UDP+TCP port on 127.0.0.1 (best effort: another process could take it meanwhile).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Knot DNS serving the given zones (name, master-file text) on 127.0.0.1; killed on drop.
pub struct Knot {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Knot {
    pub fn start(zones: &[(&str, String)]) -> Knot {
        let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("knotd is not installed: run .ci/setup (Debian package knot)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = dir.path().display().to_string();
        let mut conf = format!(
            "server:\n  listen: 127.0.0.1@{port}\n  rundir: {root}\n  user: root:root\n\
             database:\n  storage: {root}/db\n\
             template:\n  - id: default\n    storage: {root}\n    file: \"%s.zone\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n\
             zone:\n"
        );
        for (name, text) in zones {
            std::fs::write(dir.path().join(format!("{name}.zone")), text).unwrap();
            let _ = writeln!(conf, "  - domain: {name}");
        }
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd starts");
        let knot = Knot {
            port,
            child,
            _dir: dir,
        };
        knot.wait_until_serving(zones[0].0);
        knot
    }

    fn wait_until_serving(&self, zone: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "+short",
                    "+time=1",
                    "+tries=1",
                    "SOA",
                    zone,
                ])
                .output()
                .expect("dig is not installed: run .ci/setup (Debian package dnsutils)");
            if !out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("knotd did not start serving {zone} on port {}", self.port);
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A customer zone with the given records (relative owner, type, value).
pub fn customer_zone(origin: &str, records: &[(&str, &str, &str)]) -> String {
    let mut text = format!(
        "$ORIGIN {origin}.\n$TTL 60\n@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60\n@ NS ns.{origin}.\nns A 127.0.0.1\n"
    );
    for (owner, kind, value) in records {
        let _ = writeln!(text, "{owner} {kind} {value}");
    }
    text
}
