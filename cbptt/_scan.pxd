# cbptt._scan: the buffer helpers of _scan.pyx that other kernels' fast
# paths share (contracts in _scan.pyx).
from cpython.buffer cimport Py_buffer, PyBUF_RECORDS_RO

cdef int float_view(object a, Py_buffer *v, int flags=*)
cdef bint c_contiguous(const Py_buffer *v) noexcept
cdef void *data_of(object a) except NULL
cdef void *data_if(object a, int itemsize, Py_ssize_t n0, Py_ssize_t n1,
                   Py_ssize_t n2=*)
cdef int result_inputs(object x_tm, object h_tm, object w_ih, int G,
                       int *dims, void **p) except -1
cdef object owned_if(object a, int itemsize, Py_ssize_t n0, Py_ssize_t n1=*)
cdef int preact_in_range(str func, object dtype, object bias, object w1,
                         object v1, object w2, object v2) except -1
