"""Load-test harness for the stream gateway: a Sinch simulator driving many calls, media simulators as the
downstream RTP services, a lossy relay, reports that merge, and a benchmark against a naive bridge."""
