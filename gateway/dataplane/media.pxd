# Types for the compiled data plane (Cython pure Python mode: media.py is the source). picows calls the
# listener's cpdef methods directly from C: no Python call per websocket frame.
cimport cython
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport

from gateway.core.call cimport CallOutput
from gateway.core.session cimport CallSession


cdef class _SessionOutput(CallOutput):
    cdef CallAdapter _adapter


cdef class CallAdapter(WSListener):
    cdef public object worker, route, target, url_rate, rtp, rtcp, telemetry, forks
    cdef public str expected_call_id
    cdef public long long rtp_inode
    cdef long _audio_frames
    cdef public WSTransport transport
    cdef public CallSession session
    cdef object _fragments, _fragments_type
    cdef bint _output_paused
    cdef object _clock
    cdef int _rtp_fd, _rtcp_fd
    cdef list _held_rtp
    cdef object _answer, _allocation

    cpdef on_ws_connected(self, WSTransport transport)
    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame)
    cpdef on_ws_disconnected(self, WSTransport transport)
    cpdef pause_writing(self)
    cpdef resume_writing(self)
    cpdef on_datagram(self, bytes data, bint rtcp, double now)
    cdef _watch_pacing(self)
    cpdef send_command(self, bytes message)
    cpdef send_audio(self, bytes pcm)
    @cython.locals(error=int)
    cpdef send_rtp(self, bytes packet)
    @cython.locals(error=int)
    cpdef send_rtcp(self, bytes packet)
    cdef _send_failed(self, str reason, int error)
    cdef _count_fork_drops(self, long missed)
    cpdef on_unreachable(self)
    cpdef bint admit(self)
    cpdef answered(self, connect, long sample_rate)
    cpdef close(self, long code, str reason)
    cpdef tick(self, double now, bint pacing_only=*)


@cython.locals(call=CallAdapter)
cpdef tick_calls(tuple calls, double now, bint pacing_only, set pacing)


cpdef int _sent(sock, int fd, bytes packet)
