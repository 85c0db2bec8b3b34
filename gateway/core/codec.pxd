# Types for the compiled data plane (Cython pure Python mode: codec.py is the source).
cimport cython


@cython.locals(size=Py_ssize_t, index=Py_ssize_t, dst="unsigned char *", src="unsigned char *")
cpdef bytes swap16(data)


cdef class UpstreamEncoder:
    cdef public long bytes_per_sample
    cdef object _table, _resampler
    cpdef bytes encode(self, pcm_le)


cdef class DownstreamDecoder:
    cdef public long bytes_per_sample
    cdef object _table, _resampler
    cdef bytes _last
    cdef long _lost
    cpdef bytes decode(self, bytes payload)
    cpdef bytes conceal(self, long wire_samples)
    cpdef forget_last(self)
