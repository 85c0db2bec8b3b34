# Types for the compiled data plane (Cython pure Python mode: call.py is the source).
cdef class CallCounters:
    cdef public long long ws_frames_in, ws_bytes_in, ws_frames_out, ws_bytes_out
    cdef public long long rtp_packets_out, rtp_bytes_out, rtp_packets_in, rtp_bytes_in
    cdef public object rtp_dropped, ignored_commands
    cdef public long long return_queue_dropped_bytes, policed_bytes, heartbeats_sent


cdef class FrameSink:
    cpdef send_frame(self, bytes frame, double now)
    cpdef mark_settled(self, long long mark_id, long long timestamp, bint played)


cdef class CallOutput:
    cpdef send_command(self, bytes message)
    cpdef send_audio(self, bytes pcm)
    cpdef send_rtp(self, bytes packet)
    cpdef send_rtcp(self, bytes packet)
    cpdef bint admit(self)
    cpdef answered(self, connect, long sample_rate)
    cpdef close(self, long code, str reason)
    cpdef mark_settled(self, long long mark_id, long long timestamp, str outcome)
    cpdef dtmf(self, str digit, double seconds)
