//! The JetStream messaging capability provider, as started by a wasmCloud host.

fn main() -> anyhow::Result<()> {
    messaging_jetstream::main()
}
