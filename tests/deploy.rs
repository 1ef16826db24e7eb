//! The systemd unit in deploy/ is one systemd accepts, with the hardening
//! docs/deployment.md claims: `systemd-analyze verify` finds nothing, and
//! `systemd-analyze security` rates its exposure low.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::process::Command;

/// The unit with ExecStart pointing at the binary just built (verify
/// checks that the command exists and is executable).
fn unit_for_this_build(dir: &std::path::Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/tlsdiag.service"
    ))
    .unwrap();
    let unit: String = unit
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                format!("ExecStart={}", env!("CARGO_BIN_EXE_tlsdiag"))
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("tlsdiag.service");
    std::fs::write(&path, unit + "\n").unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warns:\n{said}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for tlsdiag.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // 0 is fully locked down, 10 is unprotected; docs/deployment.md quotes 1.7.
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    // Never CAP_SYS_ADMIN.
    let line = "CapabilityBoundingSet=~CAP_SYS_ADMIN";
    assert!(
        text.lines().any(|l| l.starts_with('✓') && l.contains(line)),
        "{line} not satisfied:\n{text}"
    );
    // The three capabilities it needs, and only those: ports below 1024, raw
    // ICMP for the ICMP test and the packet socket for each connection's
    // packets, and forgetting a learned path MTU before a run
    // (docs/probes.md#what-our-kernel-remembers).
    let unit = std::fs::read_to_string(&unit).unwrap();
    for key in ["AmbientCapabilities=", "CapabilityBoundingSet="] {
        let caps: Vec<&str> = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the unit"))
            .split_whitespace()
            .collect();
        assert_eq!(
            caps,
            ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_NET_ADMIN"],
            "{key}"
        );
    }
}
