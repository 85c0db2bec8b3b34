"""One run: the generators and the media simulator as processes on one clock, the gateway sampled from
/proc, live progress, and everything gathered for the report."""
