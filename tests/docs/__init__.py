"""What ships beside the package runs as written: docs pages, README, examples, benchmarks."""
