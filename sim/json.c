/* json.c - a small strict JSON reader for the client requests klinefeed-sim receives on its
 * WebSocket connections. Nodes live in one growable array and refer to each other by index. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
    jdoc *d;
    const char *s;
    size_t len, pos;
    int depth;
} jp;

static int jp_fail(jp *p, const char *what)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    if (!p->d->err[0])
        snprintf(p->d->err, sizeof p->d->err, "%s at line %zu column %zu", what, line, col);
    return -1;
}

static int jp_node(jp *p, int type)
{
    jdoc *d = p->d;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->nodes = sim_xrealloc(d->nodes, sizeof(jnode) * (size_t)d->cap);
    }
    jnode *n = &d->nodes[d->n];
    memset(n, 0, sizeof *n);
    n->type = type;
    n->first = n->next = n->key = -1;
    return d->n++;
}

static void jp_ws(jp *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void put_utf8(sbuf *b, unsigned cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_put(b, o, n);
}

/* parses a string at p->pos (on the quote); returns offset in strs or -1 */
static int jp_string(jp *p, int *outlen)
{
    sbuf *b = &p->d->strs;
    p->pos++;
    int off = (int)b->len;
    for (;;) {
        if (p->pos >= p->len)
            return jp_fail(p, "EOF while parsing a string");
        unsigned char ch = (unsigned char)p->s[p->pos];
        if (ch == '"') {
            p->pos++;
            break;
        }
        if (ch < 0x20)
            return jp_fail(p, "control character found while parsing a string");
        if (ch != '\\') {
            sb_put(b, &p->s[p->pos], 1);
            p->pos++;
            continue;
        }
        p->pos++;
        if (p->pos >= p->len)
            return jp_fail(p, "EOF while parsing a string");
        char e = p->s[p->pos++];
        const char *simple = "\"\\/bfnrt";
        const char *repl = "\"\\/\b\f\n\r\t";
        const char *hit = strchr(simple, e);
        if (hit && e) {
            sb_put(b, &repl[hit - simple], 1);
            continue;
        }
        if (e != 'u')
            return jp_fail(p, "invalid escape");
        unsigned cp = 0;
        for (int i = 0; i < 4; i++) {
            int h = p->pos < p->len ? hexval(p->s[p->pos]) : -1;
            if (h < 0)
                return jp_fail(p, "invalid escape");
            cp = cp * 16 + (unsigned)h;
            p->pos++;
        }
        if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= p->len && p->s[p->pos] == '\\' &&
            p->s[p->pos + 1] == 'u') {
            unsigned lo = 0;
            bool ok = true;
            for (int i = 0; i < 4; i++) {
                int h = hexval(p->s[p->pos + 2 + (size_t)i]);
                if (h < 0)
                    ok = false;
                lo = lo * 16 + (unsigned)(h < 0 ? 0 : h);
            }
            if (ok && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            }
        }
        put_utf8(b, cp);
    }
    *outlen = (int)b->len - off;
    sb_put(b, "", 1); /* keep the NUL inside the buffer */
    return off;
}

static int jp_value(jp *p);

static int jp_number(jp *p)
{
    size_t st = p->pos;
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return jp_fail(p, "invalid number");
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    bool integral = true;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integral = false;
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return jp_fail(p, "invalid number");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integral = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return jp_fail(p, "invalid number");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    int idx = jp_node(p, JN_NUM);
    if (integral && p->s[st] != '-') {
        uint64_t u = 0;
        bool ok = true;
        for (size_t i = st; i < p->pos; i++) {
            unsigned dg = (unsigned)(p->s[i] - '0');
            if (u > (UINT64_MAX - dg) / 10)
                ok = false;
            u = u * 10 + dg;
        }
        p->d->nodes[idx].is_uint = ok;
        p->d->nodes[idx].u = u;
    }
    return idx;
}

static int jp_lit(jp *p, const char *lit, int type, bool b)
{
    size_t n = strlen(lit);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0)
        return jp_fail(p, "expected value");
    p->pos += n;
    int idx = jp_node(p, type);
    p->d->nodes[idx].b = b;
    return idx;
}

static int jp_container(jp *p, bool obj)
{
    if (++p->depth > 64)
        return jp_fail(p, "recursion limit exceeded");
    int idx = jp_node(p, obj ? JN_OBJ : JN_ARR);
    int last = -1;
    p->pos++;
    jp_ws(p);
    char close = obj ? '}' : ']';
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return idx;
    }
    for (;;) {
        int key = -1;
        jp_ws(p);
        if (obj) {
            if (p->pos >= p->len)
                return jp_fail(p, "EOF while parsing an object");
            if (p->s[p->pos] != '"')
                return jp_fail(p, "key must be a string");
            int kl;
            key = jp_string(p, &kl);
            if (key < 0)
                return -1;
            jp_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return jp_fail(p, "expected `:`");
            p->pos++;
        }
        int v = jp_value(p);
        if (v < 0)
            return -1;
        p->d->nodes[v].key = key;
        if (last < 0)
            p->d->nodes[idx].first = v;
        else
            p->d->nodes[last].next = v;
        last = v;
        jp_ws(p);
        if (p->pos >= p->len)
            return jp_fail(p, obj ? "EOF while parsing an object" : "EOF while parsing a list");
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return jp_fail(p, obj ? "expected `,` or `}`" : "expected `,` or `]`");
    }
    p->depth--;
    return idx;
}

static int jp_value(jp *p)
{
    jp_ws(p);
    if (p->pos >= p->len)
        return jp_fail(p, "EOF while parsing a value");
    char ch = p->s[p->pos];
    switch (ch) {
    case '{':
        return jp_container(p, true);
    case '[':
        return jp_container(p, false);
    case '"': {
        int len;
        int off = jp_string(p, &len);
        if (off < 0)
            return -1;
        int idx = jp_node(p, JN_STR);
        p->d->nodes[idx].str = off;
        p->d->nodes[idx].slen = len;
        return idx;
    }
    case 't':
        return jp_lit(p, "true", JN_BOOL, true);
    case 'f':
        return jp_lit(p, "false", JN_BOOL, false);
    case 'n':
        return jp_lit(p, "null", JN_NULL, false);
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            return jp_number(p);
        return jp_fail(p, "expected value");
    }
}

int json_parse(jdoc *d, const char *s, size_t len)
{
    memset(d, 0, sizeof *d);
    jp p = {d, s, len, 0, 0};
    int root = jp_value(&p);
    if (root < 0)
        return -1;
    jp_ws(&p);
    if (p.pos != len)
        return jp_fail(&p, "trailing characters");
    return root;
}

int json_member(const jdoc *d, int obj, const char *key)
{
    if (obj < 0 || d->nodes[obj].type != JN_OBJ)
        return -1;
    int found = -1;
    for (int c = d->nodes[obj].first; c >= 0; c = d->nodes[c].next)
        if (strcmp(d->strs.p + d->nodes[c].key, key) == 0)
            found = c; /* the last duplicate wins */
    return found;
}

const char *json_str(const jdoc *d, int node)
{
    return d->strs.p + d->nodes[node].str;
}

void json_free(jdoc *d)
{
    free(d->nodes);
    sb_free(&d->strs);
    memset(d, 0, sizeof *d);
}
