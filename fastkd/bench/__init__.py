"""Benchmarks: pipeline throughput (`fastkd bench`) and the metrics' speed."""
