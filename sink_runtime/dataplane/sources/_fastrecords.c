/* Kafka records to Datums in C: the common case of the Kafka source's per-record hot path.
 *
 * `kafka_record.py` and `kafka.py` are the definition: a record becomes a RecordDatum with its
 * id, value, keys, event time and raw headers, and the sink.v1 request it encodes to. This
 * module does exactly that for the records whose answer needs no judgement (no error, a
 * timestamp, header values present and ASCII, key headers absent or a well-formed split
 * layout) and leaves every other record to the Python code, which is the reference. A
 * property test holds the two to the same Datums and the same bytes.
 *
 * One call converts a whole batch: `convert(messages, keys_from_headers, keys_header_names,
 * out, next_offsets, counts)` appends to `out`, in order, a RecordDatum for each record it
 * converted and the message itself for each record it left to Python, updates `next_offsets`
 * (the largest of offset + 1 and what is there, 0 when nothing is) and `counts` by (topic,
 * partition) for the converted ones, and returns how many it left.
 * `keys_header_names` holds the single-header layout's name: a record carrying it (and no
 * split layout) has its keys decided by Python.
 * `configure()` hands over, once, what the Python side owns: the RecordDatum class, its slot
 * descriptors, the wire tags read from the .proto, the header names, the event-time helper and
 * the last millisecond it takes as is.
 * `headers(msg)` is `msg.headers()`, refusing a list with holes (kafka_record.py's module doc).
 *
 * Messages are untrusted input (any record a producer wrote) and, in tests, any object: a
 * call into one may fail or run Python code. A failed call leaves the record to Python (which
 * judges it again and reports it), values of unexpected types or beyond int64 too; only a
 * failure of this module's own work (memory) fails the batch. The batch is read from a tuple
 * snapshot, so every message outlives the calls into it whatever those calls do to the list.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>

#define MAX_SPLIT_KEYS 16
#define MAX_HEADERS 64
/* Larger values are not encoded ahead: a sink that never sends the request (blackhole, Kafka)
 * would hold a second copy of every value for nothing; RecordDatum encodes them on first use. */
#define EAGER_ENCODE_MAX (64 * 1024)

static PyObject *record_type;     /* RecordDatum */
static PyObject *slot_id, *slot_value, *slot_keys, *slot_event_time, *slot_raw, *slot_encoded;
static PyObject *no_raw;          /* the shared empty headers mapping */
static PyObject *utc_from_ms;     /* int -> datetime, cached on the Python side */
static long long max_event_time_ms; /* later timestamps are clamped: Python judges them */
static PyObject *header_name_error; /* the ValueError's text when headers cannot be read */
static PyObject *key_len_name;    /* "__key_len" */
static PyObject *split_names[MAX_SPLIT_KEYS];
static PyObject *watermark_field; /* bytes: the epoch watermark, a complete wire field */
static PyObject *empty_bytes, *empty_tuple, *one;
static PyObject *s_error, *s_topic, *s_partition, *s_offset, *s_value, *s_key, *s_headers,
    *s_timestamp;
static unsigned char tag_id, tag_value, tag_keys, tag_headers, tag_entry_key, tag_entry_value,
    tag_event_time;
static int configured = 0;

static Py_ssize_t varint_size(unsigned long long v) {
    Py_ssize_t n = 1;
    while (v > 0x7F) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *put_varint(char *p, unsigned long long v) {
    while (v > 0x7F) {
        *p++ = (char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

static Py_ssize_t field_size(Py_ssize_t len) { return 1 + varint_size((unsigned long long)len) + len; }

static char *put_field(char *p, unsigned char tag, const char *data, Py_ssize_t len) {
    *p++ = (char)tag;
    p = put_varint(p, (unsigned long long)len);
    memcpy(p, data, (size_t)len);
    return p + len;
}

static int set_slot(PyObject *descr, PyObject *obj, PyObject *value) {
    return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
}

static PyObject *call0(PyObject *obj, PyObject *name) {
    return PyObject_CallMethodNoArgs(obj, name);
}

static PyObject *configure(PyObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"record_type", "slots", "no_raw", "utc_from_ms",
                            "max_event_time_ms", "header_name_error", "key_len_name",
                            "split_names", "tags", "watermark_field", NULL};
    PyObject *rt, *slots, *nr, *ufm, *hne, *kln, *snames, *tags, *wf;
    long long max_ms;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOLUUOOS", names, &rt, &slots, &nr, &ufm,
                                     &max_ms, &hne, &kln, &snames, &tags, &wf))
        return NULL;
    if (!PyTuple_Check(slots) || PyTuple_GET_SIZE(slots) != 6 || !PyTuple_Check(snames) ||
        PyTuple_GET_SIZE(snames) != MAX_SPLIT_KEYS || !PyTuple_Check(tags) ||
        PyTuple_GET_SIZE(tags) != 7) {
        PyErr_SetString(PyExc_TypeError, "configure: unexpected argument shapes");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 6; i++) {
        PyObject *d = PyTuple_GET_ITEM(slots, i);
        if (Py_TYPE(d)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "configure: a slot is not a data descriptor");
            return NULL;
        }
    }
    unsigned char t[7];
    for (Py_ssize_t i = 0; i < 7; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(tags, i));
        if (v < 0 || v > 127) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "configure: a tag is not one byte");
            return NULL;
        }
        t[i] = (unsigned char)v;
    }
    Py_XSETREF(record_type, Py_NewRef(rt));
    Py_XSETREF(slot_id, Py_NewRef(PyTuple_GET_ITEM(slots, 0)));
    Py_XSETREF(slot_value, Py_NewRef(PyTuple_GET_ITEM(slots, 1)));
    Py_XSETREF(slot_keys, Py_NewRef(PyTuple_GET_ITEM(slots, 2)));
    Py_XSETREF(slot_event_time, Py_NewRef(PyTuple_GET_ITEM(slots, 3)));
    Py_XSETREF(slot_raw, Py_NewRef(PyTuple_GET_ITEM(slots, 4)));
    Py_XSETREF(slot_encoded, Py_NewRef(PyTuple_GET_ITEM(slots, 5)));
    Py_XSETREF(no_raw, Py_NewRef(nr));
    Py_XSETREF(utc_from_ms, Py_NewRef(ufm));
    max_event_time_ms = max_ms;
    Py_XSETREF(header_name_error, Py_NewRef(hne));
    Py_XSETREF(key_len_name, Py_NewRef(kln));
    for (Py_ssize_t i = 0; i < MAX_SPLIT_KEYS; i++)
        Py_XSETREF(split_names[i], Py_NewRef(PyTuple_GET_ITEM(snames, i)));
    Py_XSETREF(watermark_field, Py_NewRef(wf));
    tag_id = t[0];
    tag_value = t[1];
    tag_keys = t[2];
    tag_headers = t[3];
    tag_entry_key = t[4];
    tag_entry_value = t[5];
    tag_event_time = t[6];
    configured = 1;
    Py_RETURN_NONE;
}

/* msg.headers(), refusing a list with holes: confluent-kafka's Message, asked for headers of
 * which a name is not valid UTF-8, raises once and keeps the list it was building (the failed
 * name a NULL in its tuple), which every later call returns. Read from Python, a hole crashes
 * the process. A new reference, or NULL with an exception. */
static PyObject *checked_headers(PyObject *msg) {
    PyObject *headers = call0(msg, s_headers);
    if (headers == NULL || !PyList_Check(headers)) return headers;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        if (item == NULL || (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
                             (PyTuple_GET_ITEM(item, 0) == NULL ||
                              PyTuple_GET_ITEM(item, 1) == NULL))) {
            Py_DECREF(headers);
            PyErr_SetObject(PyExc_ValueError, header_name_error);
            return NULL;
        }
    }
    return headers;
}

static PyObject *headers(PyObject *self, PyObject *msg) {
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_fastrecords.headers before configure()");
        return NULL;
    }
    return checked_headers(msg);
}

/* A call into the message failed: an ordinary exception leaves the record to Python (0),
 * anything else (KeyboardInterrupt, SystemExit...) goes on up (-1). */
static int left_after_failure(void) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyErr_Clear();
    return 0;
}

/* *out = v as a long long; 0 (no exception) when v is not an int or does not fit. */
static int as_int64(PyObject *v, long long *out) {
    if (!PyLong_CheckExact(v)) return 0;
    int overflow;
    *out = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) return 0;
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Keys from a well-formed split layout in `raw` (all values are ASCII bytes here), as a new
 * tuple; NULL without an exception when the layout needs Python's judgement. */
static PyObject *split_keys(PyObject *raw, PyObject *count_bytes) {
    Py_ssize_t n = PyBytes_GET_SIZE(count_bytes);
    const char *s = PyBytes_AS_STRING(count_bytes);
    if (n < 1 || n > 2) return NULL;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return NULL;
        count = count * 10 + (s[i] - '0');
    }
    if (count > MAX_SPLIT_KEYS || count > PyDict_GET_SIZE(raw)) return NULL;
    PyObject *keys = PyTuple_New(count);
    if (keys == NULL) return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *v = PyDict_GetItemWithError(raw, split_names[i]);
        if (v == NULL) {
            Py_DECREF(keys);
            return NULL;
        }
        PyObject *k = PyUnicode_DecodeASCII(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), NULL);
        if (k == NULL) {
            Py_DECREF(keys);
            return NULL;
        }
        PyTuple_SET_ITEM(keys, i, k);
    }
    return keys;
}

/* The record key as the single key (UTF-8 with replacement), or no keys. */
static PyObject *fallback_keys(PyObject *msg) {
    PyObject *key = call0(msg, s_key);
    if (key == NULL) return left_after_failure() < 0 ? NULL : Py_NewRef(Py_None);
    if (key == Py_None) {
        Py_DECREF(key);
        return Py_NewRef(empty_tuple);
    }
    if (!PyBytes_CheckExact(key)) {
        Py_DECREF(key);
        return Py_NewRef(Py_None); /* leave it to Python */
    }
    PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), "replace");
    Py_DECREF(key);
    if (text == NULL) return NULL;
    PyObject *keys = PyTuple_Pack(1, text);
    Py_DECREF(text);
    return keys;
}

/* One record: 1 and the new Datum in *out, 0 when Python must judge it, -1 on error. */
static int convert_one(PyObject *msg, int keys_from_headers, PyObject *keys_header_names,
                       PyObject **out, PyObject **tp_out, long long *offset_out) {
    PyObject *err = NULL, *topic = NULL, *partition = NULL, *offset = NULL, *value = NULL,
             *headers = NULL, *ts = NULL, *raw = NULL, *keys = NULL, *id = NULL,
             *event_time = NULL, *encoded = NULL, *d = NULL, *tp = NULL;
    int result = -1;
    err = call0(msg, s_error);
    if (err == NULL) goto call_failed;
    if (err != Py_None) { result = 0; goto done; }
    ts = call0(msg, s_timestamp);
    if (ts == NULL) goto call_failed;
    if (!PyTuple_CheckExact(ts) || PyTuple_GET_SIZE(ts) != 2) { result = 0; goto done; }
    long long ts_type, ts_ms;
    if (!as_int64(PyTuple_GET_ITEM(ts, 0), &ts_type) ||
        !as_int64(PyTuple_GET_ITEM(ts, 1), &ts_ms)) {
        result = 0;
        goto done;
    }
    /* No timestamp (the read time), or one past the event time range (clamped): Python. */
    if (ts_type == 0 || ts_ms < 0 || ts_ms > max_event_time_ms) { result = 0; goto done; }
    value = call0(msg, s_value);
    if (value == NULL) goto call_failed;
    if (value == Py_None) {
        Py_SETREF(value, Py_NewRef(empty_bytes));
    } else if (!PyBytes_CheckExact(value)) { result = 0; goto done; }
    headers = checked_headers(msg);
    if (headers == NULL) goto call_failed;
    Py_ssize_t nheaders = 0;
    if (headers != Py_None) {
        if (!PyList_Check(headers)) { result = 0; goto done; }
        nheaders = PyList_GET_SIZE(headers);
    }
    if (nheaders > MAX_HEADERS) { result = 0; goto done; }
    if (nheaders == 0) {
        raw = Py_NewRef(no_raw);
    } else {
        raw = PyDict_New();
        if (raw == NULL) goto done;
        for (Py_ssize_t i = 0; i < nheaders; i++) {
            PyObject *item = PyList_GET_ITEM(headers, i);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) { result = 0; goto done; }
            PyObject *name = PyTuple_GET_ITEM(item, 0), *hv = PyTuple_GET_ITEM(item, 1);
            if (!PyUnicode_CheckExact(name) || !PyBytes_CheckExact(hv)) { result = 0; goto done; }
            const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(hv);
            for (Py_ssize_t j = 0, n = PyBytes_GET_SIZE(hv); j < n; j++)
                if (b[j] & 0x80) { result = 0; goto done; } /* not ASCII: Python */
            if (PyDict_SetItem(raw, name, hv) < 0) goto done;
        }
    }
    if (keys_from_headers && nheaders > 0) {
        PyObject *count = PyDict_GetItemWithError(raw, key_len_name);
        if (count != NULL) {
            keys = split_keys(raw, count);
            if (keys == NULL) {
                if (PyErr_Occurred()) goto done;
                result = 0;
                goto done;
            }
        } else if (PyErr_Occurred()) {
            goto done;
        } else {
            /* No split layout: any other key header (the single-header layout) needs Python. */
            PyObject *name;
            Py_ssize_t pos = 0;
            while (PyDict_Next(raw, &pos, &name, NULL)) {
                int owned = PySet_Contains(keys_header_names, name);
                if (owned < 0) goto done;
                if (owned) { result = 0; goto done; }
            }
        }
    }
    if (keys == NULL) {
        keys = fallback_keys(msg);
        if (keys == NULL) goto done;
        if (keys == Py_None) { result = 0; goto done; }
    }
    topic = call0(msg, s_topic);
    partition = topic ? call0(msg, s_partition) : NULL;
    offset = partition ? call0(msg, s_offset) : NULL;
    if (offset == NULL) goto call_failed;
    /* Exact types: hashing them (the offsets dicts) and formatting them run no Python code.
     * An offset of INT64_MAX is Python's: its next offset, 2**63, is no long long. */
    long long off, part;
    if (!PyUnicode_CheckExact(topic) || !as_int64(partition, &part) || !as_int64(offset, &off) ||
        off == LLONG_MAX) {
        result = 0;
        goto done;
    }
    id = PyUnicode_FromFormat("%U:%S:%S", topic, partition, offset);
    if (id == NULL) goto done;
    PyObject *ms = PyLong_FromLongLong(ts_ms);
    if (ms == NULL) goto done;
    event_time = PyObject_CallOneArg(utc_from_ms, ms);
    Py_DECREF(ms);
    if (event_time == NULL) goto done;

    /* The wire request: id, value, keys, headers, event time, watermark (kafka_record.py). */
    if (PyBytes_GET_SIZE(value) > EAGER_ENCODE_MAX) goto build;
    Py_ssize_t id_len;
    const char *id_utf8 = PyUnicode_AsUTF8AndSize(id, &id_len);
    if (id_utf8 == NULL) goto done;
    Py_ssize_t size = field_size(id_len) + field_size(PyBytes_GET_SIZE(value));
    Py_ssize_t nkeys = PyTuple_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        Py_ssize_t n;
        if (PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(keys, i), &n) == NULL) goto not_utf8;
        size += field_size(n);
    }
    PyObject *name, *hv;
    Py_ssize_t pos = 0;
    if (raw != no_raw) {
        while (PyDict_Next(raw, &pos, &name, &hv)) {
            Py_ssize_t n;
            if (PyUnicode_AsUTF8AndSize(name, &n) == NULL) goto not_utf8;
            size += field_size(field_size(n) + field_size(PyBytes_GET_SIZE(hv)));
        }
    }
    unsigned long long seconds = (unsigned long long)(ts_ms / 1000);
    unsigned long long nanos = (unsigned long long)(ts_ms % 1000) * 1000000ULL;
    Py_ssize_t ts_len = (seconds ? 1 + varint_size(seconds) : 0) + (nanos ? 1 + varint_size(nanos) : 0);
    size += 2 + ts_len + PyBytes_GET_SIZE(watermark_field);
    encoded = PyBytes_FromStringAndSize(NULL, size);
    if (encoded == NULL) goto done;
    char *p = PyBytes_AS_STRING(encoded);
    p = put_field(p, tag_id, id_utf8, id_len);
    p = put_field(p, tag_value, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        Py_ssize_t n;
        const char *k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(keys, i), &n);
        p = put_field(p, tag_keys, k, n);
    }
    if (raw != no_raw) {
        pos = 0;
        while (PyDict_Next(raw, &pos, &name, &hv)) {
            Py_ssize_t n;
            const char *nm = PyUnicode_AsUTF8AndSize(name, &n);
            Py_ssize_t vn = PyBytes_GET_SIZE(hv);
            *p++ = (char)tag_headers;
            p = put_varint(p, (unsigned long long)(field_size(n) + field_size(vn)));
            p = put_field(p, tag_entry_key, nm, n);
            p = put_field(p, tag_entry_value, PyBytes_AS_STRING(hv), vn);
        }
    }
    *p++ = (char)tag_event_time;
    *p++ = (char)ts_len; /* a Timestamp is < 128 bytes */
    if (seconds) { *p++ = 0x08; p = put_varint(p, seconds); }
    if (nanos) { *p++ = 0x10; p = put_varint(p, nanos); }
    memcpy(p, PyBytes_AS_STRING(watermark_field), (size_t)PyBytes_GET_SIZE(watermark_field));

build:
    d = ((PyTypeObject *)record_type)->tp_alloc((PyTypeObject *)record_type, 0);
    if (d == NULL) goto done;
    if (set_slot(slot_id, d, id) < 0 || set_slot(slot_value, d, value) < 0 ||
        set_slot(slot_keys, d, keys) < 0 || set_slot(slot_event_time, d, event_time) < 0 ||
        set_slot(slot_raw, d, raw) < 0 ||
        (encoded != NULL && set_slot(slot_encoded, d, encoded) < 0))
        goto done;
    tp = PyTuple_Pack(2, topic, partition);
    if (tp == NULL) goto done;
    *out = Py_NewRef(d);
    *tp_out = Py_NewRef(tp);
    *offset_out = off;
    result = 1;
    goto done;
call_failed:
    result = left_after_failure();
    goto done;
not_utf8: /* a lone surrogate in a key or a header name: Python's rules decide */
    PyErr_Clear();
    result = 0;
done:
    Py_XDECREF(err);
    Py_XDECREF(topic);
    Py_XDECREF(partition);
    Py_XDECREF(offset);
    Py_XDECREF(value);
    Py_XDECREF(headers);
    Py_XDECREF(ts);
    Py_XDECREF(raw);
    Py_XDECREF(keys);
    Py_XDECREF(id);
    Py_XDECREF(event_time);
    Py_XDECREF(encoded);
    Py_XDECREF(d);
    Py_XDECREF(tp);
    return result;
}

/* next_offsets[tp] = max(off + 1, next_offsets.get(tp, 0)), as kafka.py computes it, and
 * counts[tp] += 1; off < LLONG_MAX (convert_one leaves that one to Python). 0, or -1 with an
 * exception. */
static int count_converted(PyObject *next_offsets, PyObject *counts, PyObject *tp,
                           long long off) {
    PyObject *next = PyLong_FromLongLong(off + 1);
    if (next == NULL) return -1;
    PyObject *prev = PyDict_GetItemWithError(next_offsets, tp);
    Py_XINCREF(prev); /* held across the comparison, which may run Python code */
    if (prev == NULL && PyErr_Occurred()) goto fail;
    if (prev == NULL) prev = PyLong_FromLong(0);
    if (prev == NULL) goto fail;
    int later = PyObject_RichCompareBool(prev, next, Py_GT);
    if (later < 0) goto fail;
    if (later) Py_SETREF(next, Py_NewRef(prev));
    Py_CLEAR(prev);
    if (PyDict_SetItem(next_offsets, tp, next) < 0) goto fail;
    Py_CLEAR(next);
    PyObject *count = PyDict_GetItemWithError(counts, tp);
    Py_XINCREF(count);
    if (count == NULL && PyErr_Occurred()) goto fail;
    PyObject *more = count == NULL ? PyLong_FromLong(1) : PyNumber_Add(count, one);
    Py_XDECREF(count);
    if (more == NULL) goto fail;
    int set = PyDict_SetItem(counts, tp, more);
    Py_DECREF(more);
    return set;
fail:
    Py_XDECREF(next);
    Py_XDECREF(prev);
    return -1;
}

static PyObject *convert(PyObject *self, PyObject *args) {
    PyObject *messages, *keys_header_names, *out, *next_offsets, *counts;
    int keys_from_headers;
    if (!PyArg_ParseTuple(args, "O!pO!O!O!O!", &PyList_Type, &messages, &keys_from_headers,
                          &PyFrozenSet_Type, &keys_header_names, &PyList_Type, &out,
                          &PyDict_Type, &next_offsets, &PyDict_Type, &counts))
        return NULL;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_fastrecords.convert before configure()");
        return NULL;
    }
    PyObject *batch = PyList_AsTuple(messages); /* holds every message (file comment) */
    if (batch == NULL) return NULL;
    Py_ssize_t left = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(batch); i++) {
        PyObject *msg = PyTuple_GET_ITEM(batch, i);
        PyObject *d = NULL, *tp = NULL;
        long long off = 0;
        int r = convert_one(msg, keys_from_headers, keys_header_names, &d, &tp, &off);
        if (r < 0) goto fail;
        if (r == 0) {
            left++;
            if (PyList_Append(out, msg) < 0) goto fail;
            continue;
        }
        int ok = PyList_Append(out, d) == 0 &&
                 count_converted(next_offsets, counts, tp, off) == 0;
        Py_DECREF(d);
        Py_DECREF(tp);
        if (!ok) goto fail;
    }
    Py_DECREF(batch);
    return PyLong_FromSsize_t(left);
fail:
    Py_DECREF(batch);
    return NULL;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "Hand over the Python side's classes, names and wire tags (once)."},
    {"headers", headers, METH_O,
     "msg.headers(), refusing a list with holes (see the file's comment)."},
    {"convert", convert, METH_VARARGS,
     "convert(messages, keys_from_headers, keys_header_names, out, next_offsets, counts) -> "
     "records left"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastrecords",
                                    "Kafka records to Datums in C (see the file's comment).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__fastrecords(void) {
    empty_bytes = PyBytes_FromStringAndSize("", 0);
    empty_tuple = PyTuple_New(0);
    one = PyLong_FromLong(1);
    s_error = PyUnicode_InternFromString("error");
    s_topic = PyUnicode_InternFromString("topic");
    s_partition = PyUnicode_InternFromString("partition");
    s_offset = PyUnicode_InternFromString("offset");
    s_value = PyUnicode_InternFromString("value");
    s_key = PyUnicode_InternFromString("key");
    s_headers = PyUnicode_InternFromString("headers");
    s_timestamp = PyUnicode_InternFromString("timestamp");
    if (!empty_bytes || !empty_tuple || !one || !s_error || !s_topic || !s_partition ||
        !s_offset || !s_value || !s_key || !s_headers || !s_timestamp)
        return NULL;
    return PyModule_Create(&module);
}
