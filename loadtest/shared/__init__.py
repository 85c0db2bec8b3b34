"""What every part of the harness shares: the scenario, the test audio and its frame marker, the latency
histogram, minimal RTP/RTCP and UDP helpers, child processes and /proc readings. Imports nothing above it."""
