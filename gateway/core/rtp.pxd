# Types for the compiled data plane (Cython pure Python mode: rtp.py is the source).
cimport cython

cpdef long seq_distance(long a, long b)
cpdef long long ts_distance(long long a, long long b)


cdef class RtpPacket:
    cdef public int payload_type
    cdef public bint marker
    cdef public long sequence
    cdef public long long timestamp, ssrc
    cdef public bytes payload


cdef inline unsigned long long _u32(bytes data, Py_ssize_t at)


@cython.locals(size=Py_ssize_t, first=int, second=int, sequence=long, timestamp="long long", ssrc="long long",
               start=Py_ssize_t, end=Py_ssize_t, words=long, padding=int)
cpdef RtpPacket parse_rtp(bytes data)


cdef class RtpPacketizer:
    cdef int _second_byte
    cdef long _sequence
    cdef long long _timestamp
    cdef public long long ssrc, last_timestamp, packet_count, octet_count
    @cython.locals(size=Py_ssize_t, header=Py_ssize_t, out="unsigned char *", source="char *", timestamp="long long")
    cpdef bytes pack(self, payload, long samples)
    cpdef bytes pack_event(self, int payload_type, bint marker, long long timestamp, bytes payload)


cdef class SourceLatch:
    cdef public long long ssrc
    cdef long long _candidate
    cdef long _candidate_seq, _in_sequence
    cpdef bint accept(self, long long ssrc, long sequence)
    cpdef bint says_goodbye(self, set byes)


cdef class ReceiveStats:
    cdef long _clock_rate, _base_seq, _max_seq, _bad_seq
    cdef long long _cycles, _ssrc, _last_timestamp
    cdef double _jitter, _last_arrival
    cdef unsigned long long _seen
    cdef public long long duplicates, reordered, received
    cdef _start(self, long long ssrc, long seq)
    cdef _init_seq(self, long seq)
    @cython.locals(seq=long, udelta=long, behind=long, bit="unsigned long long")
    cpdef update(self, RtpPacket packet, double arrival)


cdef class JitterBuffer:
    cdef public double max_wait
    cdef public long capacity
    cdef long long _max_gap, _ssrc, _expected_timestamp
    cdef long _next_seq
    cdef dict _packets
    cdef public long long late, duplicates, lost_packets, resets
    cpdef push(self, RtpPacket packet, long samples, double now)
    cpdef bint take_in_order(self, RtpPacket packet, long samples)
    cdef _rebase(self, RtpPacket packet)
    cdef long _first_buffered(self)
    cpdef list pop(self, double now)
    cpdef drop_through(self, long long timestamp)
    cpdef pass_over(self, RtpPacket packet, long samples)
