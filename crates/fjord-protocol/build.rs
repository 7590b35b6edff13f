//! Compiles `proto/cluster.proto` (the node-to-node RPCs) with the protoc that
//! `protoc-bin-vendored` ships, so building needs no protobuf compiler on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cluster.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // A follower decodes replicated records as a slice of the received buffer rather than a
    // copy of it (tonic hands prost a `Bytes`-backed buffer).
    config.bytes([".fjord.cluster.v1.ReplicaFetchPartitionResponse.records"]);
    tonic_prost_build::configure().compile_with_config(config, &["proto/cluster.proto"], &["proto"])?;
    Ok(())
}
