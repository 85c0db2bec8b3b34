"""The media simulators (echo, sink, talker: the downstream RTP service) and the lossy, delaying relay."""
