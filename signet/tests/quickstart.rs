//! `examples/quickstart.sh`, the README's quick start run whole on loopback (Knot for the
//! customer's zone, Unbound as the resolver, smtp-sink as the smart host, dkimpy verifying what
//! arrives), run against this build, so the quick start cannot rot unnoticed.

use std::process::Command;

#[test]
fn the_quick_start_script_runs_every_step() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("bash")
        .arg(format!("{root}/examples/quickstart.sh"))
        .env("SIGNET", env!("CARGO_BIN_EXE_signet"))
        .env_remove("SIGNET_DATA_DIR")
        .env_remove("SIGNET_MASTER_KEY")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
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
