"""Reference implementations the gateway is benchmarked against."""
