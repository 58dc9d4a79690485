"""Protobuf descriptor sets and .proto files as contracts for recorded gRPC calls."""
