/*
 * _core.c - the C half of the klinefeed Python package: libklinefeed's collector behind a
 * Python type, and the bridge from the library's I/O thread to the event loop.
 *
 * The I/O thread never touches Python. Its callbacks copy each kf_kline into one of two
 * bounded broadcast rings (every update; closed candles exactly once), under a mutex held for
 * one memcpy, and wake the event loop through an eventfd written at most once per wake-up (a
 * flag coalesces the writes). Log lines go to a bounded queue the same way. On the loop thread
 * each consumer owns a Cursor into a ring and converts what it reads in batches of Candle
 * objects (a C type; the decimals become decimal.Decimal only when read). A consumer that
 * falls more than the ring's capacity behind loses the oldest candles, which its cursor
 * counts: the I/O thread never waits for Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <klinefeed.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NDEC 8       /* decimals in a candle */
#define CHUNK 256    /* slots copied out of a ring under its lock at once */
#define LOG_CAP 1024 /* log lines held for the loop thread */
#define SYMCACHE 256 /* direct-mapped cache of symbol strings */

static PyObject *decimal_type; /* decimal.Decimal */
static PyObject *interval_str[KF_INTERVAL_COUNT];

/* ---- rings: filled by the I/O thread, read by cursors on the loop thread */

typedef struct ring {
    pthread_mutex_t mu;
    kf_kline *slots;
    uint64_t cap, mask;
    uint64_t head; /* sequence of the next slot written; under mu */
} ring;

static int ring_init(ring *r, uint64_t cap)
{
    uint64_t c = 16;
    while (c < cap)
        c <<= 1;
    r->slots = PyMem_RawCalloc(c, sizeof *r->slots); /* pages touched only as they fill */
    if (!r->slots)
        return -1;
    r->cap = c;
    r->mask = c - 1;
    r->head = 0;
    pthread_mutex_init(&r->mu, NULL);
    return 0;
}

static void ring_free(ring *r)
{
    if (r->slots) {
        PyMem_RawFree(r->slots);
        r->slots = NULL;
        pthread_mutex_destroy(&r->mu);
    }
}

static void ring_push(ring *r, const kf_kline *k)
{
    pthread_mutex_lock(&r->mu);
    memcpy(&r->slots[r->head & r->mask], k, sizeof *k);
    r->head++;
    pthread_mutex_unlock(&r->mu);
}

/* ---- the collector object's shared state (outlives the Python object while threads run) */

typedef struct log_line {
    int level;
    char *text;
} log_line;

typedef struct bridge {
    ring updates, closed;
    atomic_bool want_updates;
    atomic_bool wake_pending;
    int efd;
    atomic_uint_fast64_t pushed_updates, pushed_closed;
    pthread_mutex_t log_mu;
    log_line logs[LOG_CAP];
    size_t log_head, log_len;
    atomic_uint_fast64_t log_dropped;
} bridge;

static void bridge_wake(bridge *b)
{
    if (!atomic_exchange(&b->wake_pending, true)) {
        uint64_t one = 1;
        ssize_t n = write(b->efd, &one, sizeof one); /* EAGAIN: already readable */
        (void)n;
    }
}

static void on_kline(void *ud, const kf_kline *k)
{
    bridge *b = ud;
    if (!atomic_load_explicit(&b->want_updates, memory_order_relaxed))
        return;
    ring_push(&b->updates, k);
    atomic_fetch_add_explicit(&b->pushed_updates, 1, memory_order_relaxed);
    bridge_wake(b);
}

static void on_closed(void *ud, const kf_kline *k)
{
    bridge *b = ud;
    ring_push(&b->closed, k);
    atomic_fetch_add_explicit(&b->pushed_closed, 1, memory_order_relaxed);
    bridge_wake(b);
}

static void on_log(void *ud, kf_log_level level, const char *line)
{
    bridge *b = ud;
    size_t n = strlen(line);
    char *copy = malloc(n + 1);
    if (copy)
        memcpy(copy, line, n + 1);
    pthread_mutex_lock(&b->log_mu);
    if (!copy || b->log_len == LOG_CAP) {
        free(copy);
        atomic_fetch_add(&b->log_dropped, 1);
    } else {
        b->logs[(b->log_head + b->log_len) % LOG_CAP] = (log_line){(int)level, copy};
        b->log_len++;
    }
    pthread_mutex_unlock(&b->log_mu);
    bridge_wake(b);
}

/* ---- Candle */

typedef struct candle {
    PyObject ob_base; /* PyObject_HEAD */
    PyObject *symbol, *interval;
    long long event_time, open_time, close_time, first_trade_id, last_trade_id, trades;
    char closed, final;
    kf_dec dec[NDEC];
    PyObject *cache[NDEC]; /* Decimal made on first access */
} candle;

static PyTypeObject candle_type;

/* Order of dec[]: open high low close volume quote_volume taker_buy_base taker_buy_quote. */
static const char *const dec_attr[NDEC] = {
    "open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base", "taker_buy_quote",
};

static PyObject *dec_text(kf_dec d)
{
    char buf[KF_DEC_MAXLEN];
    size_t n = kf_dec_format(d, buf, sizeof buf);
    return PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
}

static PyObject *dec_object(kf_dec d)
{
    PyObject *s = dec_text(d);
    if (!s)
        return NULL;
    PyObject *r = PyObject_CallOneArg(decimal_type, s);
    Py_DECREF(s);
    return r;
}

static void candle_dealloc(candle *c)
{
    Py_XDECREF(c->symbol);
    Py_XDECREF(c->interval);
    for (int i = 0; i < NDEC; i++)
        Py_XDECREF(c->cache[i]);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyObject *candle_get_dec(candle *c, void *closure)
{
    int i = (int)(intptr_t)closure;
    if (!c->cache[i]) {
        c->cache[i] = dec_object(c->dec[i]);
        if (!c->cache[i])
            return NULL;
    }
    Py_INCREF(c->cache[i]);
    return c->cache[i];
}

static PyObject *candle_text(candle *c, PyObject *name)
{
    const char *n = PyUnicode_AsUTF8(name);
    if (!n)
        return NULL;
    for (int i = 0; i < NDEC; i++)
        if (strcmp(n, dec_attr[i]) == 0)
            return dec_text(c->dec[i]);
    PyErr_Format(PyExc_KeyError, "%R is not a decimal field of Candle", name);
    return NULL;
}

static int set_item_steal(PyObject *d, const char *key, PyObject *v)
{
    if (!v)
        return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* The kline message as Binance sends it (PROTOCOL.md section 2), decimals as their exact text.
 * "B" (a field Binance documents as "ignore") is "0". */
static PyObject *candle_to_message(candle *c, PyObject *unused)
{
    (void)unused;
    PyObject *m = PyDict_New(), *k = PyDict_New();
    if (!m || !k)
        goto fail;
    static const char *const keys[NDEC] = {"o", "h", "l", "c", "v", "q", "V", "Q"};
    if (set_item_steal(m, "e", PyUnicode_FromString("kline")) ||
        set_item_steal(m, "E", PyLong_FromLongLong(c->event_time)) ||
        PyDict_SetItemString(m, "s", c->symbol) ||
        set_item_steal(k, "t", PyLong_FromLongLong(c->open_time)) ||
        set_item_steal(k, "T", PyLong_FromLongLong(c->close_time)) ||
        PyDict_SetItemString(k, "s", c->symbol) || PyDict_SetItemString(k, "i", c->interval) ||
        set_item_steal(k, "f", PyLong_FromLongLong(c->first_trade_id)) ||
        set_item_steal(k, "L", PyLong_FromLongLong(c->last_trade_id)))
        goto fail;
    for (int i = 0; i < 4; i++)
        if (set_item_steal(k, keys[i], dec_text(c->dec[i])))
            goto fail;
    if (set_item_steal(k, "v", dec_text(c->dec[4])) ||
        set_item_steal(k, "n", PyLong_FromLongLong(c->trades)) ||
        PyDict_SetItemString(k, "x", c->closed ? Py_True : Py_False) ||
        set_item_steal(k, "q", dec_text(c->dec[5])) ||
        set_item_steal(k, "V", dec_text(c->dec[6])) ||
        set_item_steal(k, "Q", dec_text(c->dec[7])) ||
        set_item_steal(k, "B", PyUnicode_FromString("0")) || PyDict_SetItemString(m, "k", k))
        goto fail;
    Py_DECREF(k);
    return m;
fail:
    Py_XDECREF(m);
    Py_XDECREF(k);
    return NULL;
}

static PyObject *candle_repr(candle *c)
{
    char o[KF_DEC_MAXLEN], h[KF_DEC_MAXLEN], l[KF_DEC_MAXLEN], cl[KF_DEC_MAXLEN], v[KF_DEC_MAXLEN];
    kf_dec_format(c->dec[0], o, sizeof o);
    kf_dec_format(c->dec[1], h, sizeof h);
    kf_dec_format(c->dec[2], l, sizeof l);
    kf_dec_format(c->dec[3], cl, sizeof cl);
    kf_dec_format(c->dec[4], v, sizeof v);
    return PyUnicode_FromFormat("Candle(%U %U open_time=%lld o=%s h=%s l=%s c=%s v=%s n=%lld%s)",
                                c->symbol, c->interval, c->open_time, o, h, l, cl, v, c->trades,
                                c->closed ? " closed" : "");
}

static bool candle_same(const candle *a, const candle *b)
{
    if (a->open_time != b->open_time || a->close_time != b->close_time ||
        a->event_time != b->event_time || a->first_trade_id != b->first_trade_id ||
        a->last_trade_id != b->last_trade_id || a->trades != b->trades || a->closed != b->closed ||
        a->final != b->final)
        return false;
    for (int i = 0; i < NDEC; i++)
        if (a->dec[i].mant != b->dec[i].mant || a->dec[i].scale != b->dec[i].scale)
            return false;
    return PyUnicode_Compare(a->symbol, b->symbol) == 0 &&
           PyUnicode_Compare(a->interval, b->interval) == 0;
}

static PyObject *candle_richcompare(PyObject *a, PyObject *b, int op)
{
    if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &candle_type))
        Py_RETURN_NOTIMPLEMENTED;
    bool same = candle_same((candle *)a, (candle *)b);
    return PyBool_FromLong(op == Py_EQ ? same : !same);
}

static PyMemberDef candle_members[] = {
    {"symbol", T_OBJECT_EX, offsetof(candle, symbol), READONLY, "symbol, uppercase"},
    {"interval", T_OBJECT_EX, offsetof(candle, interval), READONLY, "interval, e.g. '1m'"},
    {"event_time", T_LONGLONG, offsetof(candle, event_time), READONLY,
     "E: event time, ms (0 for a candle from REST)"},
    {"open_time", T_LONGLONG, offsetof(candle, open_time), READONLY, "k.t: open time, ms"},
    {"close_time", T_LONGLONG, offsetof(candle, close_time), READONLY, "k.T: close time, ms"},
    {"first_trade_id", T_LONGLONG, offsetof(candle, first_trade_id), READONLY, "k.f"},
    {"last_trade_id", T_LONGLONG, offsetof(candle, last_trade_id), READONLY, "k.L"},
    {"trades", T_LONGLONG, offsetof(candle, trades), READONLY, "k.n: number of trades"},
    {"closed", T_BOOL, offsetof(candle, closed), READONLY, "k.x: the candle is final"},
    {"final", T_BOOL, offsetof(candle, final), READONLY,
     "delivered as the stream's one closed candle for its open time (closed_only streams)"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef candle_getset[] = {
    {"open", (getter)candle_get_dec, NULL, "k.o as Decimal, exactly as sent", (void *)0},
    {"high", (getter)candle_get_dec, NULL, "k.h as Decimal", (void *)1},
    {"low", (getter)candle_get_dec, NULL, "k.l as Decimal", (void *)2},
    {"close", (getter)candle_get_dec, NULL, "k.c as Decimal", (void *)3},
    {"volume", (getter)candle_get_dec, NULL, "k.v: base asset volume, Decimal", (void *)4},
    {"quote_volume", (getter)candle_get_dec, NULL, "k.q as Decimal", (void *)5},
    {"taker_buy_base", (getter)candle_get_dec, NULL, "k.V as Decimal", (void *)6},
    {"taker_buy_quote", (getter)candle_get_dec, NULL, "k.Q as Decimal", (void *)7},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef candle_methods[] = {
    {"to_message", (PyCFunction)candle_to_message, METH_NOARGS,
     "The kline message as a dict shaped like Binance's ({'e': 'kline', 'E': ..., 's': ..., "
     "'k': {...}}), decimals as their exact text."},
    {"text", (PyCFunction)candle_text, METH_O,
     "text(field): a decimal field's exact text as Binance sent it, e.g. text('close')."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject candle_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "klinefeed.Candle",
    .tp_basicsize = sizeof(candle),
    .tp_dealloc = (destructor)candle_dealloc,
    .tp_repr = (reprfunc)candle_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One kline update or closed candle. Prices and quantities are decimal.Decimal, "
              "exactly the text Binance sent ('83084.90' keeps its trailing zero).",
    .tp_richcompare = candle_richcompare,
    .tp_methods = candle_methods,
    .tp_members = candle_members,
    .tp_getset = candle_getset,
};

/* ---- symbol strings: one str per symbol, reused */

typedef struct symcache {
    char text[KF_SYMBOL_MAX + 1];
    PyObject *s;
} symcache;

static PyObject *symbol_str(symcache *cache, const char *sym)
{
    uint32_t h = 2166136261u;
    for (const char *p = sym; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    symcache *e = &cache[h % SYMCACHE];
    if (e->s && strcmp(e->text, sym) == 0) {
        Py_INCREF(e->s);
        return e->s;
    }
    PyObject *s = PyUnicode_FromString(sym);
    if (!s)
        return NULL;
    Py_XDECREF(e->s);
    snprintf(e->text, sizeof e->text, "%s", sym);
    e->s = s;
    Py_INCREF(s);
    return s;
}

static PyObject *candle_new_from(symcache *cache, const kf_kline *k, bool final)
{
    candle *c = PyObject_New(candle, &candle_type);
    if (!c)
        return NULL;
    c->symbol = symbol_str(cache, k->symbol);
    int iv = k->interval_index;
    if (iv < 0 || iv >= KF_INTERVAL_COUNT)
        iv = kf_interval_index(k->interval, strlen(k->interval));
    c->interval = iv >= 0 ? interval_str[iv] : PyUnicode_FromString(k->interval);
    if (iv >= 0)
        Py_XINCREF(c->interval);
    c->event_time = k->event_time;
    c->open_time = k->open_time;
    c->close_time = k->close_time;
    c->first_trade_id = k->first_trade_id;
    c->last_trade_id = k->last_trade_id;
    c->trades = k->trades;
    c->closed = k->closed;
    c->final = final;
    c->dec[0] = k->open;
    c->dec[1] = k->high;
    c->dec[2] = k->low;
    c->dec[3] = k->close;
    c->dec[4] = k->volume;
    c->dec[5] = k->quote_volume;
    c->dec[6] = k->taker_buy_base;
    c->dec[7] = k->taker_buy_quote;
    memset(c->cache, 0, sizeof c->cache);
    if (!c->symbol || !c->interval) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

/* ---- Collector */

typedef struct collector {
    PyObject ob_base; /* PyObject_HEAD */
    kf_collector *kc;
    bridge *b;
    symcache syms[SYMCACHE];
} collector;

static PyTypeObject collector_type;

static int add_list(kf_config *cfg, PyObject *seq, kf_err (*add)(kf_config *, const char *),
                    const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(fast, i);
        const char *s = PyUnicode_Check(it) ? PyUnicode_AsUTF8(it) : NULL;
        if (!s) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s: %R is not a str", what, it);
            Py_DECREF(fast);
            return -1;
        }
        if (add(cfg, s) != KF_OK) {
            PyErr_SetString(PyExc_ValueError, kf_config_errmsg(cfg));
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static int config_check(kf_config *cfg, kf_err e)
{
    if (e == KF_OK)
        return 0;
    PyErr_SetString(PyExc_ValueError, kf_config_errmsg(cfg));
    return -1;
}

static void bridge_free(bridge *b)
{
    if (!b)
        return;
    ring_free(&b->updates);
    ring_free(&b->closed);
    for (size_t i = 0; i < b->log_len; i++)
        free(b->logs[(b->log_head + i) % LOG_CAP].text);
    pthread_mutex_destroy(&b->log_mu);
    if (b->efd >= 0)
        close(b->efd);
    PyMem_RawFree(b);
}

static bridge *bridge_new(uint64_t queue_size)
{
    bridge *b = PyMem_RawCalloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->efd = -1;
    pthread_mutex_init(&b->log_mu, NULL);
    if (ring_init(&b->updates, queue_size) || ring_init(&b->closed, queue_size)) {
        bridge_free(b);
        return NULL;
    }
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0) {
        bridge_free(b);
        return NULL;
    }
    return b;
}

static int collector_init(collector *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"symbols",   "intervals",  "testnet",   "ws_url",   "rest_url",
                             "api_key",   "api_secret", "sinks",     "validate", "timeout_ms",
                             "ring_size", "queue_size", "log_level", "backfill", "tls_verify",
                             "ca_file",   "state_dir",  NULL};
    PyObject *symbols, *intervals, *sinks = NULL;
    int testnet = 0, validate = KF_VALIDATE_IF_REACHABLE, log_level = KF_LOG_INFO, backfill = 1,
        tls_verify = 1;
    const char *ws_url = NULL, *rest_url = NULL, *key = NULL, *secret = NULL, *ca_file = NULL,
               *state_dir = NULL;
    unsigned timeout_ms = 10000;
    Py_ssize_t ring_size = 1000, queue_size = 65536;
    if (self->kc) {
        PyErr_SetString(PyExc_RuntimeError, "Collector already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|pzzzzOiInnippzz", kwlist, &symbols, &intervals,
                                     &testnet, &ws_url, &rest_url, &key, &secret, &sinks, &validate,
                                     &timeout_ms, &ring_size, &queue_size, &log_level, &backfill,
                                     &tls_verify, &ca_file, &state_dir))
        return -1;
    if (queue_size < 16 || queue_size > (1 << 24)) {
        PyErr_SetString(PyExc_ValueError, "queue_size must be 16..16777216");
        return -1;
    }
    if (ring_size < 1) {
        PyErr_SetString(PyExc_ValueError, "ring_size must be at least 1");
        return -1;
    }
    kf_config *cfg = kf_config_new();
    if (!cfg) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = -1;
    bridge *b = bridge_new((uint64_t)queue_size);
    if (!b) {
        PyErr_NoMemory();
        goto out;
    }
    if (add_list(cfg, symbols, kf_config_add_symbol, "symbols") ||
        add_list(cfg, intervals, kf_config_add_interval, "intervals") ||
        config_check(cfg, kf_config_set_testnet(cfg, testnet)) ||
        (ws_url && config_check(cfg, kf_config_set_ws_url(cfg, ws_url))) ||
        (rest_url && config_check(cfg, kf_config_set_rest_url(cfg, rest_url))) ||
        ((key || secret) &&
         config_check(cfg, kf_config_set_api_key(cfg, key ? key : "", secret ? secret : ""))) ||
        config_check(cfg, kf_config_set_validate(cfg, (kf_validate)validate)) ||
        config_check(cfg, kf_config_set_connect_timeout_ms(cfg, timeout_ms)) ||
        config_check(cfg, kf_config_set_ring_size(cfg, (size_t)ring_size)) ||
        config_check(cfg, kf_config_set_backfill(cfg, backfill)) ||
        config_check(cfg, kf_config_set_tls_verify(cfg, tls_verify)) ||
        (ca_file && config_check(cfg, kf_config_set_ca_file(cfg, ca_file))) ||
        (state_dir && config_check(cfg, kf_config_set_state_dir(cfg, state_dir))) ||
        config_check(cfg, kf_config_set_log(cfg, on_log, b, (kf_log_level)log_level)) ||
        config_check(cfg, kf_config_on_kline(cfg, on_kline, b)) ||
        config_check(cfg, kf_config_on_closed(cfg, on_closed, b)))
        goto out;
    if (sinks && sinks != Py_None && add_list(cfg, sinks, kf_config_add_sink, "sinks"))
        goto out;
    char err[512] = "";
    kf_collector *kc = kf_create(cfg, err, sizeof err);
    if (!kc) {
        PyErr_SetString(PyExc_ValueError, err[0] ? err : "kf_create failed");
        goto out;
    }
    self->kc = kc;
    self->b = b;
    b = NULL;
    rc = 0;
out:
    bridge_free(b);
    kf_config_free(cfg);
    return rc;
}

static void collector_release(collector *self)
{
    if (self->kc) {
        kf_collector *kc = self->kc;
        self->kc = NULL;
        PyThreadState *ts = PyEval_SaveThread();
        kf_free(kc); /* stops: joins the library's threads, which never take the GIL */
        PyEval_RestoreThread(ts);
    }
    bridge_free(self->b);
    self->b = NULL;
    for (int i = 0; i < SYMCACHE; i++)
        Py_CLEAR(self->syms[i].s);
}

static void collector_dealloc(collector *self)
{
    collector_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static bool live(collector *self)
{
    if (self->kc)
        return true;
    PyErr_SetString(PyExc_RuntimeError, "collector closed");
    return false;
}

/* start() -> (code, message). Releases the GIL: kf_start waits on the network. */
static PyObject *collector_start(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    kf_err e;
    PyThreadState *ts = PyEval_SaveThread();
    e = kf_start(self->kc);
    PyEval_RestoreThread(ts);
    return Py_BuildValue("(is)", (int)e, e == KF_OK ? "" : kf_errmsg(self->kc));
}

static PyObject *collector_stop(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    kf_err e;
    PyThreadState *ts = PyEval_SaveThread();
    e = kf_stop(self->kc);
    PyEval_RestoreThread(ts);
    return PyLong_FromLong((long)e);
}

static PyObject *collector_wait_connected(collector *self, PyObject *arg)
{
    if (!live(self))
        return NULL;
    unsigned long ms = PyLong_AsUnsignedLong(arg);
    if (PyErr_Occurred())
        return NULL;
    kf_err e;
    PyThreadState *ts = PyEval_SaveThread();
    e = kf_wait_connected(self->kc, (unsigned)ms);
    PyEval_RestoreThread(ts);
    return Py_BuildValue("(is)", (int)e, e == KF_OK ? "" : kf_errmsg(self->kc));
}

static PyObject *collector_close(collector *self, PyObject *unused)
{
    (void)unused;
    collector_release(self);
    Py_RETURN_NONE;
}

static PyObject *collector_running(collector *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->kc && kf_running(self->kc));
}

static PyObject *collector_connected(collector *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->kc && kf_connected(self->kc));
}

static PyObject *collector_errmsg(collector *self, PyObject *unused)
{
    (void)unused;
    return live(self) ? PyUnicode_FromString(kf_errmsg(self->kc)) : NULL;
}

static PyObject *collector_ws_url(collector *self, PyObject *unused)
{
    (void)unused;
    return live(self) ? PyUnicode_FromString(kf_ws_url(self->kc)) : NULL;
}

static PyObject *collector_rest_url(collector *self, PyObject *unused)
{
    (void)unused;
    return live(self) ? PyUnicode_FromString(kf_rest_url(self->kc)) : NULL;
}

static PyObject *collector_stream_names(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    size_t n = kf_stream_count(self->kc);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *s = PyUnicode_FromString(kf_stream_name(self->kc, i));
        if (!s) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, s);
    }
    return l;
}

static PyObject *collector_connection_count(collector *self, PyObject *unused)
{
    (void)unused;
    return live(self) ? PyLong_FromSize_t(kf_connection_count(self->kc)) : NULL;
}

/* recent(symbol, interval, limit) -> [Candle], oldest first; KeyError for no such stream. */
static PyObject *collector_recent(collector *self, PyObject *args)
{
    const char *sym, *iv;
    Py_ssize_t limit;
    if (!live(self) || !PyArg_ParseTuple(args, "ssn", &sym, &iv, &limit))
        return NULL;
    if (limit <= 0)
        return PyList_New(0);
    kf_kline *buf = PyMem_Malloc((size_t)limit * sizeof *buf);
    if (!buf)
        return PyErr_NoMemory();
    size_t n = (size_t)limit;
    kf_err e = kf_recent(self->kc, sym, iv, buf, &n);
    if (e != KF_OK) {
        PyMem_Free(buf);
        PyErr_Format(e == KF_ERR_NOT_FOUND ? PyExc_KeyError : PyExc_RuntimeError,
                     "no stream %s %s: %s", sym, iv, kf_strerror(e));
        return NULL;
    }
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l && i < n; i++) {
        PyObject *c = candle_new_from(self->syms, &buf[i], false);
        if (!c) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, c);
    }
    PyMem_Free(buf);
    return l;
}

/* stats() -> {name: value} for every counter the library has, plus the bridge's. */
static PyObject *collector_stats(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    kf_stats s;
    if (kf_stats_get(self->kc, &s, sizeof s) != KF_OK) {
        PyErr_SetString(PyExc_RuntimeError, "kf_stats_get failed");
        return NULL;
    }
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    size_t n = kf_stats_count();
    for (size_t i = 0; i < n; i++) {
        const char *name = kf_stats_name(i);
        if (!name ||
            set_item_steal(d, name, PyLong_FromUnsignedLongLong(kf_stats_value(&s, sizeof s, i)))) {
            Py_DECREF(d);
            return NULL;
        }
    }
    bridge *b = self->b;
    if (set_item_steal(d, "python_updates_queued",
                       PyLong_FromUnsignedLongLong(atomic_load(&b->pushed_updates))) ||
        set_item_steal(d, "python_closed_queued",
                       PyLong_FromUnsignedLongLong(atomic_load(&b->pushed_closed))) ||
        set_item_steal(d, "python_queue_capacity", PyLong_FromUnsignedLongLong(b->closed.cap)) ||
        set_item_steal(d, "python_log_dropped",
                       PyLong_FromUnsignedLongLong(atomic_load(&b->log_dropped)))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *collector_fileno(collector *self, PyObject *unused)
{
    (void)unused;
    return live(self) ? PyLong_FromLong(self->b->efd) : NULL;
}

/* The loop thread acknowledges a wake-up before it reads the rings: the counter is read first
 * and the flag cleared after, so a push between the two is seen by the reads that follow and
 * a push after them writes the eventfd again. */
static PyObject *collector_ack_wake(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    uint64_t v;
    ssize_t n = read(self->b->efd, &v, sizeof v);
    (void)n;
    atomic_store(&self->b->wake_pending, false);
    Py_RETURN_NONE;
}

static PyObject *collector_set_want_updates(collector *self, PyObject *arg)
{
    if (!self->b) /* closed: an abandoned stream finalised late has nothing left to change */
        Py_RETURN_NONE;
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    atomic_store(&self->b->want_updates, on != 0);
    Py_RETURN_NONE;
}

/* take_logs() -> [(level, line)] queued by the library's threads, oldest first. */
static PyObject *collector_take_logs(collector *self, PyObject *unused)
{
    (void)unused;
    if (!live(self))
        return NULL;
    bridge *b = self->b;
    log_line lines[LOG_CAP];
    size_t n;
    pthread_mutex_lock(&b->log_mu);
    n = b->log_len;
    for (size_t i = 0; i < n; i++)
        lines[i] = b->logs[(b->log_head + i) % LOG_CAP];
    b->log_head = (b->log_head + n) % LOG_CAP;
    b->log_len = 0;
    pthread_mutex_unlock(&b->log_mu);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++) {
        if (l) {
            PyObject *t = Py_BuildValue("(is)", lines[i].level, lines[i].text);
            if (t)
                PyList_SET_ITEM(l, (Py_ssize_t)i, t);
            else
                Py_CLEAR(l);
        }
        free(lines[i].text);
    }
    return l;
}

/* ---- Cursor: one consumer's position in a ring */

typedef struct cursor {
    PyObject ob_base; /* PyObject_HEAD */
    collector *owner;
    ring *r;
    uint64_t pos;
    unsigned long long missed, read;
    char final;
} cursor;

static PyTypeObject cursor_type;

static PyObject *collector_cursor(collector *self, PyObject *arg)
{
    if (!live(self))
        return NULL;
    int closed_only = PyObject_IsTrue(arg);
    if (closed_only < 0)
        return NULL;
    cursor *c = PyObject_New(cursor, &cursor_type);
    if (!c)
        return NULL;
    Py_INCREF(self);
    c->owner = self;
    c->r = closed_only ? &self->b->closed : &self->b->updates;
    c->final = (char)closed_only;
    c->missed = c->read = 0;
    pthread_mutex_lock(&c->r->mu);
    c->pos = c->r->head; /* from now on */
    pthread_mutex_unlock(&c->r->mu);
    return (PyObject *)c;
}

static void cursor_dealloc(cursor *c)
{
    Py_XDECREF(c->owner);
    PyObject_Free(c);
}

/* read(max) -> [Candle]: up to max candles this cursor has not seen, oldest first; [] when
 * none. Behind by more than the ring holds: skips to the oldest kept, adding to missed. */
static PyObject *cursor_read(cursor *c, PyObject *arg)
{
    Py_ssize_t max = PyLong_AsSsize_t(arg);
    if (max < 0 && PyErr_Occurred())
        return NULL;
    if (!c->owner->b) {
        PyErr_SetString(PyExc_RuntimeError, "collector closed");
        return NULL;
    }
    ring *r = c->r;
    PyObject *l = PyList_New(0);
    if (!l)
        return NULL;
    kf_kline chunk[CHUNK];
    Py_ssize_t got = 0;
    while (got < max) {
        size_t want = (size_t)(max - got) < CHUNK ? (size_t)(max - got) : CHUNK;
        pthread_mutex_lock(&r->mu);
        uint64_t head = r->head;
        if (head - c->pos > r->cap) {
            c->missed += head - c->pos - r->cap;
            c->pos = head - r->cap;
        }
        size_t n = head - c->pos < want ? (size_t)(head - c->pos) : want;
        for (size_t i = 0; i < n; i++)
            memcpy(&chunk[i], &r->slots[(c->pos + i) & r->mask], sizeof chunk[i]);
        c->pos += n;
        pthread_mutex_unlock(&r->mu);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            PyObject *k = candle_new_from(c->owner->syms, &chunk[i], c->final);
            if (!k || PyList_Append(l, k)) {
                Py_XDECREF(k);
                Py_DECREF(l);
                return NULL;
            }
            Py_DECREF(k);
        }
        got += (Py_ssize_t)n;
    }
    c->read += (unsigned long long)got;
    return l;
}

static PyObject *cursor_pending(cursor *c, PyObject *unused)
{
    (void)unused;
    if (!c->owner->b)
        return PyLong_FromLong(0);
    ring *r = c->r;
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->head - c->pos;
    pthread_mutex_unlock(&r->mu);
    return PyLong_FromUnsignedLongLong(n > r->cap ? r->cap : n);
}

static PyMemberDef cursor_members[] = {
    {"missed", T_ULONGLONG, offsetof(cursor, missed), READONLY,
     "candles overwritten before this cursor read them (it fell a whole ring behind)"},
    {"read_count", T_ULONGLONG, offsetof(cursor, read), READONLY, "candles read"},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef cursor_methods[] = {
    {"read", (PyCFunction)cursor_read, METH_O, "read(max) -> list of Candle, oldest first"},
    {"pending", (PyCFunction)cursor_pending, METH_NOARGS, "candles waiting for this cursor"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject cursor_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "klinefeed._core.Cursor",
    .tp_basicsize = sizeof(cursor),
    .tp_dealloc = (destructor)cursor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A consumer's position in one of the collector's candle rings.",
    .tp_methods = cursor_methods,
    .tp_members = cursor_members,
};

static PyMethodDef collector_methods[] = {
    {"start", (PyCFunction)collector_start, METH_NOARGS,
     "kf_start without the GIL -> (code, message)"},
    {"stop", (PyCFunction)collector_stop, METH_NOARGS, "kf_stop without the GIL -> code"},
    {"wait_connected", (PyCFunction)collector_wait_connected, METH_O,
     "kf_wait_connected(ms) without the GIL -> (code, message)"},
    {"close", (PyCFunction)collector_close, METH_NOARGS, "kf_free: stops and releases"},
    {"running", (PyCFunction)collector_running, METH_NOARGS, "kf_running"},
    {"connected", (PyCFunction)collector_connected, METH_NOARGS, "kf_connected"},
    {"errmsg", (PyCFunction)collector_errmsg, METH_NOARGS, "kf_errmsg"},
    {"ws_url", (PyCFunction)collector_ws_url, METH_NOARGS, "kf_ws_url"},
    {"rest_url", (PyCFunction)collector_rest_url, METH_NOARGS, "kf_rest_url"},
    {"stream_names", (PyCFunction)collector_stream_names, METH_NOARGS, "kf_stream_name list"},
    {"connection_count", (PyCFunction)collector_connection_count, METH_NOARGS,
     "kf_connection_count"},
    {"recent", (PyCFunction)collector_recent, METH_VARARGS, "kf_recent -> [Candle]"},
    {"stats", (PyCFunction)collector_stats, METH_NOARGS, "every counter as a dict"},
    {"fileno", (PyCFunction)collector_fileno, METH_NOARGS, "the wake-up eventfd"},
    {"ack_wake", (PyCFunction)collector_ack_wake, METH_NOARGS, "acknowledge a wake-up"},
    {"set_want_updates", (PyCFunction)collector_set_want_updates, METH_O,
     "queue every update (not only closed candles)"},
    {"take_logs", (PyCFunction)collector_take_logs, METH_NOARGS, "queued log lines"},
    {"cursor", (PyCFunction)collector_cursor, METH_O,
     "cursor(closed_only) -> Cursor from the current end of the ring"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject collector_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "klinefeed._core.Collector",
    .tp_basicsize = sizeof(collector),
    .tp_dealloc = (destructor)collector_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A libklinefeed collector (kf_collector) and its bridge to the event loop.",
    .tp_methods = collector_methods,
    .tp_init = (initproc)collector_init,
    .tp_new = PyType_GenericNew,
};

/* ---- module */

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
    (void)m;
    long e = PyLong_AsLong(arg);
    if (e == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(kf_strerror((kf_err)e));
}

static PyObject *mod_version(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyUnicode_FromString(kf_version());
}

static PyMethodDef mod_methods[] = {
    {"strerror", mod_strerror, METH_O, "kf_strerror(code)"},
    {"version", mod_version, METH_NOARGS, "kf_version() of the linked library"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    "klinefeed._core",
    "libklinefeed for Python (see klinefeed)",
    -1,
    mod_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    PyObject *dec = PyImport_ImportModule("decimal");
    if (!dec)
        return NULL;
    decimal_type = PyObject_GetAttrString(dec, "Decimal");
    Py_DECREF(dec);
    if (!decimal_type)
        return NULL;
    for (int i = 0; i < KF_INTERVAL_COUNT; i++)
        if (!(interval_str[i] = PyUnicode_InternFromString(kf_interval_name(i))))
            return NULL;
    if (PyType_Ready(&candle_type) || PyType_Ready(&collector_type) || PyType_Ready(&cursor_type))
        return NULL;
    PyObject *m = PyModule_Create(&mod_def);
    if (!m)
        return NULL;
    Py_INCREF(&candle_type);
    Py_INCREF(&collector_type);
    if (PyModule_AddObject(m, "Candle", (PyObject *)&candle_type) ||
        PyModule_AddObject(m, "Collector", (PyObject *)&collector_type) ||
        PyModule_AddStringConstant(m, "WS_MAINNET", KF_WS_MAINNET) ||
        PyModule_AddStringConstant(m, "WS_TESTNET", KF_WS_TESTNET) ||
        PyModule_AddStringConstant(m, "REST_MAINNET", KF_REST_MAINNET) ||
        PyModule_AddStringConstant(m, "REST_TESTNET", KF_REST_TESTNET) ||
        PyModule_AddIntConstant(m, "OK", KF_OK) ||
        PyModule_AddIntConstant(m, "ERR_ALREADY_RUNNING", KF_ERR_ALREADY_RUNNING) ||
        PyModule_AddIntConstant(m, "ERR_NOT_RUNNING", KF_ERR_NOT_RUNNING) ||
        PyModule_AddIntConstant(m, "ERR_DNS", KF_ERR_DNS) ||
        PyModule_AddIntConstant(m, "ERR_CONNECT", KF_ERR_CONNECT) ||
        PyModule_AddIntConstant(m, "ERR_TLS", KF_ERR_TLS) ||
        PyModule_AddIntConstant(m, "ERR_HANDSHAKE", KF_ERR_HANDSHAKE) ||
        PyModule_AddIntConstant(m, "ERR_TIMEOUT", KF_ERR_TIMEOUT) ||
        PyModule_AddIntConstant(m, "ERR_SUBSCRIBE", KF_ERR_SUBSCRIBE) ||
        PyModule_AddIntConstant(m, "ERR_SYMBOL", KF_ERR_SYMBOL) ||
        PyModule_AddIntConstant(m, "ERR_REST", KF_ERR_REST) ||
        PyModule_AddIntConstant(m, "ERR_SINK", KF_ERR_SINK) ||
        PyModule_AddIntConstant(m, "LOG_DEBUG", KF_LOG_DEBUG) ||
        PyModule_AddIntConstant(m, "LOG_INFO", KF_LOG_INFO) ||
        PyModule_AddIntConstant(m, "LOG_WARN", KF_LOG_WARN) ||
        PyModule_AddIntConstant(m, "LOG_ERROR", KF_LOG_ERROR) ||
        PyModule_AddIntConstant(m, "LOG_OFF", KF_LOG_OFF) ||
        PyModule_AddIntConstant(m, "VALIDATE_IF_REACHABLE", KF_VALIDATE_IF_REACHABLE) ||
        PyModule_AddIntConstant(m, "VALIDATE_REQUIRED", KF_VALIDATE_REQUIRED) ||
        PyModule_AddIntConstant(m, "VALIDATE_OFF", KF_VALIDATE_OFF)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
