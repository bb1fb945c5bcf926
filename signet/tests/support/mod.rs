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

    /// An installation for key zone `dkim.example.net` asking `resolver`, with tenant `contoso`.
    pub fn with_tenant(resolver: &str) -> Signet {
        let signet = Signet::new();
        signet
            .run(&[
                "init",
                "--key-zone",
                "dkim.example.net",
                "--resolver",
                resolver,
            ])
            .ok();
        signet.run(&["tenant", "add", "contoso"]).ok();
        signet
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
    dir: tempfile::TempDir,
}

impl Knot {
    /// Knot as the primary of the given zones.
    pub fn start(zones: &[(&str, String)]) -> Knot {
        Self::start_on(free_port(), zones)
    }

    /// As [`Knot::start`], on `port` (e.g. the port of a Knot just dropped, so that a running
    /// signet's resolver setting now reaches different zones).
    pub fn start_on(port: u16, zones: &[(&str, String)]) -> Knot {
        let dir = tempfile::tempdir().unwrap();
        let mut zone_list = String::new();
        for (name, text) in zones {
            std::fs::write(dir.path().join(format!("{name}.zone")), text).unwrap();
            let _ = writeln!(zone_list, "  - domain: {name}");
        }
        Self::spawn(
            dir,
            port,
            "",
            "    zonefile-load: whole\n",
            &zone_list,
            zones[0].0,
        )
    }

    /// Knot as a secondary of `zone`, transferring from the primary on 127.0.0.1:`primary_port`
    /// and accepting its NOTIFY, listening on `port`.
    pub fn start_secondary_on(zone: &str, primary_port: u16, port: u16) -> Knot {
        let peers = format!(
            "remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n\
             acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        );
        let zone_list =
            format!("  - domain: {zone}\n    master: primary\n    acl: notify_from_primary\n");
        Self::spawn(
            tempfile::tempdir().unwrap(),
            port,
            &peers,
            "",
            &zone_list,
            zone,
        )
    }

    fn spawn(
        dir: tempfile::TempDir,
        port: u16,
        peers: &str,
        template_extra: &str,
        zones: &str,
        first: &str,
    ) -> Knot {
        let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("knotd is not installed: run .ci/setup (Debian package knot)");
        let root = dir.path().display().to_string();
        let conf = format!(
            "server:\n  listen: 127.0.0.1@{port}\n  rundir: {root}\n  user: root:root\n\
             database:\n  storage: {root}/db\n{peers}\
             template:\n  - id: default\n    storage: {root}\n    file: \"%s.zone\"\n    zonefile-sync: -1\n{template_extra}    journal-content: none\n\
             zone:\n{zones}"
        );
        let conf_path = dir.path().join("knot.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("knotd.log")).unwrap();
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("knotd starts");
        let knot = Knot { port, child, dir };
        knot.wait_until_serving(first);
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
        let log = std::fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_default();
        panic!(
            "knotd did not start serving {zone} on port {}; its log:\n{log}",
            self.port
        );
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

/// `dig @127.0.0.1 -p PORT ARGS… +time=1 +tries=1`, returning stdout.
pub fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=1", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is not installed: run .ci/setup (Debian package dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The TXT strings of `dig +short` joined into one value per record.
pub fn txt_values(short: &str) -> Vec<String> {
    short
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| l.split('"').skip(1).step_by(2).collect::<String>())
        .collect()
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Unbound as a recursive resolver that knows the given zones by stub (name, port); killed on
/// drop. Caches for one second at most, so tests see changes quickly.
pub struct Unbound {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Unbound {
    pub fn start(stubs: &[(&str, u16)]) -> Unbound {
        let unbound = ["/usr/sbin/unbound", "/usr/bin/unbound"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("unbound is not installed: run .ci/setup (Debian package unbound)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = dir.path().display();
        let mut conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-not-query-localhost: no\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{root}\"\n  pidfile: \"{root}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  \
             module-config: \"iterator\"\n  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n  \
             access-control: 127.0.0.0/8 allow\n  qname-minimisation: no\n  do-ip6: no\n  harden-referral-path: no\n"
        );
        for (zone, stub_port) in stubs {
            let _ = write!(
                conf,
                "stub-zone:\n  name: \"{zone}\"\n  stub-addr: 127.0.0.1@{stub_port}\n"
            );
        }
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(unbound)
            .args(["-d", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound starts");
        let resolver = Unbound {
            port,
            child,
            _dir: dir,
        };
        wait_for(Duration::from_secs(10), "unbound to answer", || {
            dig(port, &["+short", "SOA", stubs[0].0]).lines().count() > 0
        });
        resolver
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `signet serve`; stopped with SIGTERM on drop.
pub struct Server {
    child: Child,
    pub log: PathBuf,
}

impl Signet {
    /// Starts `signet serve` with its DNS server on `dns_port` and waits until it answers.
    pub fn serve(&self, dns_port: u16, zone: &str) -> Server {
        self.serve_with(dns_port, zone, &[])
    }

    /// As [`Signet::serve`], with more `serve` arguments.
    pub fn serve_with(&self, dns_port: u16, zone: &str, extra: &[&str]) -> Server {
        let log = self.dir.path().join(format!("serve-{dns_port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["serve", "--dns-listen", &format!("127.0.0.1:{dns_port}")])
            .args(extra)
            .args(gateway_ports(extra))
            .env_remove("SIGNET_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("signet serve starts");
        let server = Server { child, log };
        wait_for(
            Duration::from_secs(15),
            "signet serve to answer DNS",
            // dig +short prints its own errors (";; connection refused") to stdout too.
            || {
                dig(dns_port, &["+short", "SOA", zone])
                    .lines()
                    .any(|line| !line.is_empty() && !line.starts_with(";;"))
            },
        );
        server
    }
}

/// Free ports for the relay, submission and HTTP listeners unless `extra` names them, so that
/// tests running side by side never fight over the defaults (2525, 2587, 8080).
fn gateway_ports(extra: &[&str]) -> Vec<String> {
    let mut ports = Vec::new();
    for flag in ["--relay-listen", "--submission-listen", "--http-listen"] {
        if !extra.contains(&flag) {
            ports.push(flag.to_string());
            ports.push(format!("127.0.0.1:{}", free_port()));
        }
    }
    ports
}

impl Server {
    /// Sends SIGTERM and waits; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().ok()?;
        status.code()
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
