//! The builtin NATS messaging provider is one manifest line away: `wadm.dev.yaml` with
//! only the `messaging` capability's image swapped to `wasmcloud+builtin://messaging-nats`
//! passes every check of `neongrid_e2e::pipeline` (the same checks `pipeline_dev` runs
//! on the JetStream provider), with no change to any component, and no stream is made.

use anyhow::{ensure, Result};
use neongrid_e2e::pipeline::{self, connect, runtime};
use neongrid_e2e::Lattice;

const MANIFEST: &str = "wadm.dev.yaml";
const BUILTIN: &str = "wasmcloud+builtin://messaging-nats";

#[test]
fn the_builtin_messaging_provider_is_a_one_line_swap() -> Result<()> {
    Lattice::run_test(&[], run)
}

fn run(lattice: &Lattice) -> Result<()> {
    let pipeline = pipeline::deploy(lattice, MANIFEST, &["keyvalue-memory.par.gz"], |m| {
        m.set_image("messaging", BUILTIN)?;
        Ok(())
    })?;
    pipeline::exercise(lattice, &pipeline)?;
    let rt = runtime()?;
    let js = async_nats::jetstream::new(rt.block_on(connect(&pipeline.nats_url))?);
    ensure!(
        rt.block_on(js.get_stream("NEONGRID_READINGS")).is_err(),
        "the builtin provider made no stream, yet NEONGRID_READINGS exists"
    );
    Ok(())
}
