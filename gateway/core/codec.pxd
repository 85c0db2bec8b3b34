# Types for the compiled data plane (Cython pure Python mode: codec.py is the source).
cimport cython


@cython.locals(size=Py_ssize_t, index=Py_ssize_t, dst="unsigned char *", src="const unsigned char *")
cpdef bytes swap16(const unsigned char[::1] data)
