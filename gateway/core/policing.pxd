# Types for the compiled data plane (Cython pure Python mode: policing.py is the source).
cdef class UpstreamBudget:
    cdef double _at, _capacity, _rate, _tokens
    cdef bint _unlimited
    cpdef bint take(self, long long size, double now)
