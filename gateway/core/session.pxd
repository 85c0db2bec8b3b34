# Types for the compiled data plane (Cython pure Python mode: session.py is the source).
from gateway.core.call cimport CallCounters, CallOutput, FrameSink
from gateway.core.codec cimport UpstreamEncoder
from gateway.core.policing cimport UpstreamBudget
from gateway.core.return_path cimport ReturnPath
from gateway.core.rtp cimport RtpPacket, RtpPacketizer


cdef class CallSession(FrameSink):
    cdef public CallOutput output
    cdef public object config, route, url_rate, state, close_code, outcome, format
    cdef public double unix_offset, started_at, answered_at, ended_at
    cdef public str expected_call_id, call_id, close_reason
    cdef public CallCounters counters
    cdef public bint closed_by_peer
    cdef public ReturnPath return_path
    cdef public RtpPacketizer packetizer
    cdef double _connect_deadline, _max_end, _next_rtcp, _last_sent_to_sinch, _policed_bytes_limit
    cdef bytes _odd_byte
    cdef bint _output_paused
    cdef bytearray _upstream
    cdef UpstreamEncoder _encoder
    cdef UpstreamBudget _budget
    cdef object _dtmf
    cdef long _packet_bytes, _packet_samples

    cpdef on_text(self, bytes text, double now)
    cpdef on_audio(self, pcm, double now)
    cpdef on_closed(self, long code, str reason, double now, bint by_peer=*)
    cpdef on_rtp(self, bytes data, double now)
    cpdef on_rtcp(self, bytes data, double now)
    cpdef on_pacing_tick(self, double now)
    cpdef on_tick(self, double now)
    cpdef set_output_paused(self, bint paused, double now)
    cpdef clear(self, double now, through=*)
    cpdef mark_settled(self, long long mark_id, long long timestamp, bint played)
    cdef _on_app(self, bytes name, long subtype, bytes data, double now)
    cpdef shutdown(self, long code, str reason, double now)
    cpdef bint pacing_pending(self)
    cpdef restart_stream(self, double now)
    cdef _new_stream(self, double now)
    cdef _police(self, long size, double now)
    cdef bytes _keep_whole_samples(self, pcm)
    cdef _send_rtp(self, payload, double now)
    cdef _send_packet(self, bytes packet)
    cdef _relay_dtmf(self, pcm)
    cdef _send_sender_report(self, double now)
    cpdef send_frame(self, bytes frame, double now)
    cdef _send_command(self, bytes message, double now)
    cdef _close(self, long code, str reason, double now)
    cdef _end(self, long code, str reason, double now)
