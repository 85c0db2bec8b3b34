# Types for the compiled data plane (Cython pure Python mode: return_path.py is the source).
cimport cython

from gateway.core.call cimport CallCounters, FrameSink
from gateway.core.codec cimport DownstreamDecoder
from gateway.core.rtp cimport JitterBuffer, ReceiveStats, RtpPacket, SourceLatch, ts_distance


cdef class ReturnPath:
    cdef double _credit, _credit_at
    cdef DownstreamDecoder _decoder
    cdef long long _frame_ts, _head_ts, _played_until, _received_until, _discard_until
    cdef list _marks
    cdef long _frame_bytes, _lead, _queue_cap, _stall_frames, _hold_offset
    cdef object _on_played_out
    cdef bytearray _queue
    cdef bytes _hold_sound
    cdef FrameSink _sink
    cdef bint _waiting_for_gap, _done, _holding
    cdef public CallCounters counters
    cdef public JitterBuffer jitter_buffer
    cdef public ReceiveStats receive_stats
    cdef public SourceLatch source
    cdef public bint paused, pending
    cdef public long wire_bytes_per_sample
    @cython.locals(timestamp="long long", samples=long, end="long long")
    cpdef receive(self, RtpPacket packet, long size, double now)
    cpdef play_out_then(self, on_played_out, double now)
    cpdef on_tick(self, double now)
    cpdef set_paused(self, bint paused, double now)
    cpdef clear_received(self)
    cpdef clear_through(self, long long through)
    cpdef add_mark(self, long long mark_id, long long timestamp)
    cpdef hold(self, bytes sound)
    cpdef stop(self)
    cdef _play_now(self, bytes payload, long long timestamp, long samples, double now)
    cdef _settle_marks(self, long long cleared_through)
    cdef _play_out(self, double now, bint flush=*)
    cdef _trim_queue(self)
    cdef _accrue_credit(self, double now, long extra_frames)
    cdef inline bint _earned_frame(self)
    @cython.locals(frame_bytes=long)
    cdef _send_due(self, double now)
    @cython.locals(frame_bytes=long, start=long, sound=bytes)
    cdef _send_hold(self, double now)
