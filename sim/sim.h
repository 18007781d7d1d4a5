/* sim.h - private declarations shared by the files of klinefeed-sim, the offline exchange
 * simulator (options, clock, byte buffers, deterministic market, JSON reader, server). */
#ifndef KF_SIM_H
#define KF_SIM_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- options (main.c) */
typedef struct sim_opts {
    char host[256];
    int port;
    int64_t start_ms;
    double speed;
    int64_t update_ms;
    int64_t close_delay_ms;
    int max_streams;
    int max_msg_rate;
    int64_t ping_ms;
    int64_t weight_limit;
    int64_t flood;
    uint64_t seed;
    /* fault injection (faults.c); 0 = off */
    double fault_reset_every, fault_stall_every, fault_close_every; /* mean real s */
    double fault_refuse_every, fault_garbage_every;
    int64_t refuse_ms;
    double drop_close_rate;
    int64_t max_conn_age_ms;
    double rest_429_rate, rest_500_rate, rest_slow_rate, rest_timeout_rate;
    int64_t rest_slow_ms;
    int64_t ban_ms;
    bool ban_ms_set;
    uint64_t fault_seed;
    int64_t faults_start_ms;
    int64_t faults_stop_ms;         /* 0: never */
    const char *tls_cert, *tls_key; /* both or neither: TLS on the port (tls.c) */
} sim_opts;

extern sim_opts g_opt;
extern volatile sig_atomic_t g_stop;

/* ---- clock (util.c) */
void sim_clock_init(void);
int64_t sim_real_ms(void); /* monotonic real ms since startup */
int64_t sim_now(void);     /* simulated unix ms */
int64_t sim_wall_ms(void); /* wall clock unix ms */

/* ---- growable byte buffer (util.c); aborts on out-of-memory */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

void sb_reserve(sbuf *b, size_t extra);
void sb_put(sbuf *b, const void *d, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_json_str(sbuf *b, const char *s, size_t n); /* quoted, escaped */
void sb_consume(sbuf *b, size_t n);                 /* drop n bytes from the front */
void sb_free(sbuf *b);
void sb_dec(sbuf *b, __int128 v, int scale); /* non-negative fixed-point decimal */
void *sim_xmalloc(size_t n);
void *sim_xrealloc(void *p, size_t n);
char *sim_xstrdup(const char *s);

/* ---- deterministic market (market.c) */
enum { SIM_NIV = 15 };

typedef struct sim_symbol {
    char name[64];
    char lower[64];
    bool trading;
    bool thin;
    int pp, qp;
    int64_t base_ticks; /* anchor price in units of 10^-pp */
    int64_t spread;     /* max tick offset around the minute anchor */
    int act;            /* tick activity threshold out of 256 */
    int64_t qmax;       /* max qty per trade, units of 10^-qp */
    uint64_t h;         /* per-symbol hash */
    int64_t listed_ms;  /* listed at run time (/sim/list): no candle opens before; 0 none */
} sim_symbol;

typedef struct sim_agg {
    __int128 q, Q;
    int64_t o, h, l, c;
    int64_t v, V;
    int64_t n, f, L;
} sim_agg;

extern sim_symbol *g_syms;
extern int g_nsyms;

void market_add_symbol(const char *name, bool trading);
int market_find(const char *name, size_t len);        /* exact name, -1 if unknown */
int market_find_lower(const char *lower, size_t len); /* lowercase stream symbol */
int interval_parse(const char *s, size_t len);        /* index or -1 */
const char *interval_name(int iv);
int64_t interval_open(int iv, int64_t t);
int64_t interval_next(int iv, int64_t open);
int64_t market_listing_ms(void); /* candles opening before this are not served */
/* The listing of symbol sym: market_listing_ms(), or its /sim/list time if later. */
int64_t market_symbol_listing(int sym);
/* State of candle (sym, iv, open) with the ticks that started at or before now. */
void market_candle(int sym, int iv, int64_t open, int64_t now, sim_agg *out);
void market_cleanup(void);
bool agg_eq(const sim_agg *a, const sim_agg *b);
/* Event JSON; stream != NULL wraps it in the combined form. */
void market_fmt_event(sbuf *b, int sym, int iv, int64_t open, const sim_agg *a, int64_t E,
                      bool closed, const char *stream);
void market_fmt_row(sbuf *b, int sym, int iv, int64_t open, const sim_agg *a);

/* ---- minimal JSON reader (json.c) */
enum { JN_NULL, JN_BOOL, JN_NUM, JN_STR, JN_ARR, JN_OBJ };

typedef struct jnode {
    int type;
    int first, next; /* child list (arrays/objects), sibling; -1 = none */
    int key;         /* offset of the member name in strs, -1 if none */
    int str;         /* offset of the decoded string in strs */
    int slen;
    bool b;
    bool is_uint; /* number that is a non-negative integer fitting uint64 */
    uint64_t u;
} jnode;

typedef struct jdoc {
    jnode *nodes;
    int n, cap;
    sbuf strs;
    char err[128];
} jdoc;

int json_parse(jdoc *d, const char *s, size_t len); /* root index, -1 with d->err */
int json_member(const jdoc *d, int obj, const char *key);
const char *json_str(const jdoc *d, int node);
void json_free(jdoc *d);

/* ---- server (server.c, ws.c, rest.c, flood.c) */
typedef struct sim_sub {
    char *name;
    int sym, iv;
    bool valid;
    int64_t cur_open;    /* oldest candle whose closing update is still due */
    int64_t next_update; /* sim ms of the next x:false check */
    bool have_last;
    sim_agg last;
} sim_sub;

typedef struct sim_flood sim_flood;

struct ssl_st;

typedef struct sim_conn {
    int fd;
    struct ssl_st *ssl; /* with --tls-cert: this connection's TLS session (tls.c) */
    bool tls_want_out;  /* the handshake (or a read) waits for the socket to be writable */
    uint64_t id;
    bool ws;
    bool closing; /* close once wb is flushed */
    bool dead;
    bool want_close_after_http;
    sbuf rb, wb;
    /* websocket */
    char *path;
    int hist;
    bool routed, combined;
    sim_sub *subs;
    int nsubs, capsubs;
    int nvalid;
    sbuf frag;
    int frag_op;
    bool in_frag;
    int64_t *msg_times; /* ring of the last max_msg_rate+1 text message times (real ms) */
    int msg_count;
    int64_t next_ping;
    char last_ping[32];
    bool flood_done;
    sim_flood *flood;
    /* faults */
    int64_t born_real;  /* real ms of the upgrade */
    bool stalled;       /* sends nothing, ignores input, until the client closes */
    sbuf last_kline;    /* last kline frame payload (kept only with --fault-garbage-every) */
    int hold;           /* REST: HOLD_SLOW (reply in held until hold_until), HOLD_TIMEOUT */
    int64_t hold_until; /* real ms */
    sbuf held;
} sim_conn;

enum { HOLD_NONE, HOLD_SLOW, HOLD_TIMEOUT };

typedef struct sim_stats {
    uint64_t connections_total;
    uint64_t connections_open;
    uint64_t subscribe_requests;
    uint64_t pongs;
    uint64_t rest_requests;
    uint64_t frames_sent;
    uint64_t connections_max_open;
} sim_stats;

typedef struct sim_fstats {
    uint64_t reset, stall, close, refused, refused_connections, garbage, dropped_closes, aged_out,
        rest_429, rest_418, rest_500, rest_slow, rest_timeout;
} sim_fstats;

extern sim_fstats g_fstats;

extern sim_stats g_stats;

int server_run(void);

/* websocket side (ws.c) */
bool ws_try_upgrade(sim_conn *c, const char *target, const char *upgrade, const char *connection,
                    const char *version, const char *key, int *status);
void ws_on_data(sim_conn *c); /* parse frames from c->rb */
void ws_tick(sim_conn *c, int64_t now);
int64_t ws_next_due(const sim_conn *c, int64_t now); /* sim ms of the next event */
void ws_send_frame(sim_conn *c, int op, const void *p, size_t n);
void ws_close(sim_conn *c, int code, const char *reason);
void ws_conn_free(sim_conn *c);
void ws_state_json(sbuf *b); /* "connections" and "streams" members for /sim/state */
void ws_hist_update(const sim_conn *c);
void ws_cleanup(void);

/* HTTP reply with Content-Type/Content-Length/Connection; extra_headers end in CRLF */
void server_http_reply(sim_conn *c, int status, const char *reason, const char *extra_headers,
                       const char *body, size_t blen);
size_t url_decode(const char *s, size_t n, char *out); /* out holds n+1 bytes */

/* REST side (rest.c) */
void rest_handle(sim_conn *c, const char *target);
int64_t rest_weight_used(void);

/* flood (flood.c) */
bool flood_maybe_start(sim_conn *c, int wake_fd);
bool flood_running(const sim_conn *c);
bool flood_reap(sim_conn *c); /* true when it finished; joins the thread */
void flood_abort_all(void);

/* transport (tls.c): plain TCP, or TLS on the same port with --tls-cert/--tls-key */
enum { SIM_IO_AGAIN = -1, SIM_IO_ERR = -2 };
bool tls_setup(const char *cert, const char *key); /* false: why printed */
bool tls_enabled(void);
void tls_cleanup(void);
bool tls_attach(sim_conn *c);          /* a server session on c->fd; false: why printed */
void tls_detach(sim_conn *c);          /* frees c->ssl, sends nothing */
bool tls_handshake(sim_conn *c);       /* true once done; false: waiting, or c->dead (logged) */
void tls_log_error(const sim_conn *c); /* logs the queued OpenSSL reason of a SIM_IO_ERR */
void tls_close_notify(sim_conn *c);    /* graceful end: one non-blocking close_notify */
/* One non-blocking transfer on fd, through ssl when it is not NULL: bytes (> 0), 0 at EOF
 * (reads), SIM_IO_AGAIN with *want = POLLIN or POLLOUT to wait for, or SIM_IO_ERR. */
long sim_io_read(struct ssl_st *ssl, int fd, void *buf, size_t n, short *want);
long sim_io_write(struct ssl_st *ssl, int fd, const void *buf, size_t n, short *want);

/* faults (faults.c) */
void faults_init(void);
bool faults_active(int64_t rnow); /* past --faults-start-ms, before --faults-stop-ms */
double fault_rand(void);          /* uniform [0,1) from the --fault-seed PRNG */
uint64_t fault_rand_u64(void);
/* periodic WebSocket faults, refusal periods, connection age; before the ws ticks */
void faults_tick(sim_conn **conns, int n, int64_t rnow);
int64_t faults_next_due(sim_conn *const *conns, int n, int64_t rnow); /* real ms */
bool faults_refusing(int64_t rnow);
void faults_reset_fd(int fd); /* SO_LINGER {1,0} so close() sends RST */
bool faults_drop_close(const sim_conn *c, const sim_sub *s, int64_t open);
void faults_state_json(sbuf *b); /* ,"faults":{...} */

#endif
