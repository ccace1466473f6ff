//! Every committed manifest passes wash's own validation, with no warnings.

use std::process::Command;

use anyhow::{ensure, Context, Result};
use neongrid_e2e::repo_root;
use serde_json::Value;

const MANIFESTS: &[&str] = &[
    "wadm.dev.yaml",
    "wadm.pipeline.dev.yaml",
    "tests/e2e/manifests/kv-conformance.yaml",
];

#[test]
fn manifests_pass_wash_app_validate() -> Result<()> {
    for name in MANIFESTS {
        let out = Command::new("wash")
            .args(["app", "validate", name, "--output", "json"])
            .current_dir(repo_root())
            .output()
            .context("running wash (is it on PATH? run scripts/setup.sh)")?;
        let report: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("wash printed no JSON for {name}: {out:?}"))?;
        ensure!(
            out.status.success() && report["valid"] == true,
            "{name} is invalid: {report}"
        );
        ensure!(
            report["warnings"].as_array().is_some_and(Vec::is_empty),
            "{name} has warnings: {report}"
        );
    }
    Ok(())
}
