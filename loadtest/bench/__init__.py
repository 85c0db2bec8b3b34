"""Benchmarks: the gateway against a naive bridge in the same run, call-setup churn, the per-frame cost."""
