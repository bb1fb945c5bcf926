//! `examples/quickstart.sh`, the README's quick start run whole on loopback (Knot for the
//! customer's zone, Unbound as the resolver, smtp-sink as the smart host, dkimpy verifying what
//! arrives), run against this build, so the quick start cannot rot unnoticed.

use std::process::{Command, Stdio};

#[test]
fn the_quick_start_script_runs_every_step() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = tempfile::tempdir().unwrap();
    let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
    // Files, not pipes: a process the script failed to stop must not keep the test waiting.
    let status = Command::new("bash")
        .arg(format!("{root}/examples/quickstart.sh"))
        .env("SIGNET", env!("CARGO_BIN_EXE_signet"))
        .env_remove("SIGNET_DATA_DIR")
        .env_remove("SIGNET_MASTER_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .status()
        .expect("bash runs");
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        status.success(),
        "quickstart.sh failed ({status}):\n{stdout}\n{stderr}"
    );
    for step in [
        "status Valid, signing as d=contoso.com s=selector1",
        "(d=contoso.com; s=selector1): pass",
        "(d=contoso.com; s=selector2): pass",
        "quickstart: all steps passed",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}
