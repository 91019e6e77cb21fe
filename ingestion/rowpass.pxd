# Declarations that Cython compiles ingestion/rowpass.py with (setup.py builds the extension
# ingestion._rowpass from the two; interpreted, rowpass.py runs without them): C types for the
# integer timestamps, and the helpers as C functions (a call without Python's argument passing).
# Nothing here may change what the code computes: only how fast.
import cython

cdef dict _DEVICE_CLASSES, _STRIPPED_URLS, _HMAC_PADS, _KINDS
cdef tuple _NO_UTM, _NO_COMMERCE
cdef str _TRACK, _PAGE, _SCREEN, _IDENTIFY, _GROUP, _ALIAS
cdef object _UNSET, _Context, _Page, _Library
cdef set _SAFE_KEYS
cdef frozenset _COMMERCE_KEYS
cdef Py_ssize_t _KEYS_BOUND, _CONTEXT_KEYS_BOUND, _LIBRARY_KEYS_BOUND, _PROPERTIES, _TRAITS


@cython.locals(text=bytes)
cpdef event_row(data, batch)

@cython.locals(
    received_exact=cython.longlong,
    latest_exact=cython.longlong,
    exact=cython.longlong,
    sent_exact=cython.longlong,
    corrected=cython.longlong,
    properties=dict,
    traits=dict,
    event=str,
    size=cython.Py_ssize_t,
    utm=tuple,
    commerce=tuple,
)
cdef _message_row(message, batch, bint at_free, bint bounded)

@cython.locals(bounded=cython.bint)
cpdef list decoded_rows(list events, batch)

@cython.locals(size=cython.Py_ssize_t, index=cython.Py_ssize_t)
cdef Py_ssize_t _fields_bound(tuple fields, context) except -1

@cython.locals(size=cython.Py_ssize_t)
cdef Py_ssize_t _value_bound(value) except -1

cdef Py_ssize_t _str_bound(value) except -1
cdef Py_ssize_t _text_bound(str text) except -1

cdef tuple _datetime_micros(original, sent_at, received_at, received_micros, latest)

@cython.locals(
    size=cython.Py_ssize_t,
    index=cython.Py_ssize_t,
    offset=cython.Py_ssize_t,
    char=cython.Py_UCS4,
    code=cython.longlong,
    point=cython.bint,
    number=cython.longlong,
    year=cython.longlong,
    month=cython.longlong,
    day=cython.longlong,
    hour=cython.longlong,
    minute=cython.longlong,
    second=cython.longlong,
    micros=cython.longlong,
    digit=cython.longlong,
    scale=cython.longlong,
    days=cython.longlong,
    last=cython.longlong,
)
cdef long long _iso_micros(str text) noexcept

cdef object _float_micros(long long exact)

cdef bint _unchanged(dict value, bint at_free) except -1
cdef bint _unchanged_walk(dict value, long depth) except -1
cdef bint _items_unchanged(items, long depth) except -1
cdef str _scrubbed(dict value, bytes secret, str field)
cdef str _stripped(str url)
cdef str _device_class(user_agent)

@cython.locals(text=str)
cdef str _hashed(value, bytes secret)

@cython.locals(encoded=bytes)
cdef str _json(value)
cdef _id_text(value)
cdef tuple _compiled_commerce(dict properties)
cdef tuple _utm_columns(dict campaign)
cdef bint _has_commerce_key(dict properties) except -1
cdef _id_or_none(value)
cdef _text(value)
cdef tuple _dict_context(dict context)
