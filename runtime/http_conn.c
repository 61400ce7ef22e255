/*
 * One HTTP/1.1 connection's bytes: requests in, responses out, no socket.
 * http_server.c reads into it and writes what it produces; the tests and
 * the fuzzer feed it directly.
 *
 * Parsing. http-parser (Debian's libhttp-parser, nodejs/http-parser 2.9)
 * does all of it; this file copies what its callbacks report into the
 * request being assembled and checks it. The connection reads into a
 * fixed input buffer and the parser consumes it whole, except that
 * on_message_complete pauses the parser: execute then returns exactly at
 * the end of a request, the request is handled, and parsing resumes with
 * the next pipelined one. The input buffer therefore never holds more
 * than one read's bytes, and a request's pieces (target, header names and
 * values, body) are copied as they come into `head` and `body`, which may
 * span many reads.
 *
 * Pipelining. process() handles every complete request the input holds,
 * in order, appending each response to `out`; the driver writes `out`
 * once when the input is used up, so a batch of pipelined requests costs
 * one write. Past 64 KiB of output it asks for a write first (FLUSH).
 *
 * Limits. The target plus the header names and values (4 bytes of
 * separators counted per header) may not pass max_header_bytes, nor the
 * fields max_headers: 431. http-parser stops at 80 KiB of header bytes,
 * separators and whitespace included (HPE_HEADER_OVERFLOW): 431 too. A
 * body may not pass max_body_bytes, checked against Content-Length before
 * any of it is read, and against each chunk's size as it is announced:
 * 413. Every reject closes the connection after its response.
 *
 * Smuggling. Debian builds http-parser with HTTP_PARSER_STRICT=0, and
 * strictness is a compile-time switch with no run-time setting. The
 * lenient parser accepts a bare LF as a line end, takes any byte after a
 * CR as its LF, any two bytes after a chunk's data as its CRLF, line
 * folding, a space inside a header name ("Content-Length : 5" counts as
 * Content-Length), a NUL or VT at the start of a header value, and an
 * HTTP/1.0 request with Transfer-Encoding. Each lets a front end that
 * parses strictly and this server disagree on where a request ends. So
 * this file checks the framing bytes, the bytes the parser consumed that
 * are not body data (on_body says exactly which those are): every CR is
 * followed by LF, every LF follows a CR, no line starts with a space or
 * tab, and the first byte after a chunk's data is CR. It checks what the
 * parser reported: each header name is a token and no value holds a
 * control character; one Host on HTTP/1.1 (RFC 9112 3.2); at most one
 * Transfer-Encoding, only on HTTP/1.1, with chunked its final coding
 * (else 400, RFC 9112 6.3) and its only one (else 501); HTTP/1.0 or 1.1
 * (else 505). The parser itself refuses Content-Length together with
 * Transfer-Encoding (allow_chunked_length stays 0), a second or malformed
 * Content-Length, and a chunk size past 2^64; a chunk size past the body
 * limit is 413. Each refusal answers 400 (or the status named) and closes.
 * None of this decides where anything ends: it only refuses what a strict
 * reading of RFC 9112 refuses.
 *
 * Rejected: building http_parser.c ourselves with HTTP_PARSER_STRICT=1.
 * The server is meant to use the distribution's library, which gets the
 * distribution's fixes; and strict mode still accepts a bare LF ending a
 * header line, control characters at the start of a value, two Host
 * headers and "gzip, chunked", so the checks above would stay.
 *
 * Threads: a connection belongs to the task that drives it; nothing here
 * is shared.
 */
#include "http_conn.h"

#include <errno.h>
#include <http_parser.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

#define IN_SIZE (16u * 1024)  /* one read's worth */
#define FLUSH_AT (64u * 1024) /* output that is written before more requests are handled */
#define HEADER_OVERHEAD 4     /* ": " and CRLF, counted per header against the limit */
#define KEEP_MAX (256u * 1024) /* a larger body or output buffer is freed after use */

/* ---- growable byte buffers ---------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
};

/* Room for n more bytes. 0 or -ENOMEM. */
static int buf_reserve(struct buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = b->p ? weft__realloc(b->p, b->cap, cap) : weft__alloc(cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Appends n bytes for which there is room. */
static void buf_put(struct buf *b, const void *s, size_t n)
{
    if (n) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static int buf_add(struct buf *b, const void *s, size_t n)
{
    int err = buf_reserve(b, n);
    if (err == 0)
        buf_put(b, s, n);
    return err;
}

static void buf_free(struct buf *b)
{
    if (b->p)
        weft__free(b->p, b->cap);
    *b = (struct buf){0};
}

/* Appends v in decimal, for which there is room (20 bytes). */
static void buf_put_uint(struct buf *b, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_put(b, digits + sizeof digits - n, n);
}

/* ---- the connection ----------------------------------------------------------- */

/* A header field of the request being assembled: offsets into `head`. */
struct field {
    size_t name, name_len, value, value_len;
};

enum piece { P_NONE, P_URL, P_NAME, P_VALUE };

struct weft_http_response {
    struct weft__http_conn *conn;
    bool sent;
    bool head_only; /* a response to HEAD: no body bytes */
};

struct weft__http_conn {
    http_parser parser;
    struct weft_http_options opt;
    weft_http_handler handler;
    void *arg;

    /* Bytes received; in[pos, len) are not parsed yet. */
    char *in;
    size_t in_len, in_pos;
    struct buf out;    /* responses not yet sent */
    struct buf staged; /* header lines the handler added to the current response */
    struct weft_http_response res;

    /* The request being assembled. `head` holds the target, then each
     * header name and value, each NUL-terminated; the path and query are
     * copied after them at the end of the headers. */
    struct buf head;
    size_t target_len, path, query;
    struct field *fields;
    size_t nfields, fields_cap;
    struct weft_http_header *views; /* fields as pointers, built for the handler */
    size_t views_cap;
    struct buf body;
    enum piece piece;    /* what the last data callback appended to */
    size_t head_bytes;   /* counted against max_header_bytes */
    unsigned hosts, tes; /* Host and Transfer-Encoding fields seen */
    bool busy;           /* a request has begun and not ended */
    bool headers_done;   /* later header callbacks are chunked trailers */
    bool complete;       /* the parser paused at the end of a request */
    bool keep_alive;
    uint64_t chunk_left; /* bytes of the current chunk's data still to come */
    int reject;          /* the status a callback refused the request with */

    /* The framing check: bytes of the current execute call from `scan`
     * on are unchecked; `prev` is the last framing byte checked (0 after
     * body data); `want_cr`: a chunk's data just ended. */
    const char *scan;
    char prev;
    bool want_cr;
    size_t line_len;

    bool closing; /* no request after the current one: close once output is sent */
    time_t date_sec;
    char date[40]; /* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" for date_sec */
};

int weft__http_options_resolve(struct weft_http_options *out, const struct weft_http_options *opts)
{
    struct weft_http_options o = opts ? *opts : (struct weft_http_options){0};
    if (!o.max_header_bytes)
        o.max_header_bytes = 16 * 1024;
    if (!o.max_headers)
        o.max_headers = 100;
    if (!o.max_body_bytes)
        o.max_body_bytes = 1024 * 1024;
    if (!o.idle_timeout_ns)
        o.idle_timeout_ns = 30 * WEFT_SEC;
    if (!o.request_timeout_ns)
        o.request_timeout_ns = 30 * WEFT_SEC;
    if (o.max_header_bytes < 1024 || o.max_header_bytes > 65535 ||
        o.max_body_bytes > ((size_t)1 << 30) || o.max_headers > 65535)
        return -EINVAL;
    *out = o;
    return 0;
}

static const http_parser_settings settings;

int weft__http_conn_new(struct weft__http_conn **out, const struct weft_http_options *opts,
                        weft_http_handler handler, void *arg)
{
    struct weft__http_conn *c = weft__zalloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    c->in = weft__alloc(IN_SIZE);
    if (!c->in) {
        weft__free(c, sizeof *c);
        return -ENOMEM;
    }
    c->opt = *opts;
    c->handler = handler;
    c->arg = arg;
    c->res.conn = c;
    c->date_sec = (time_t)-1;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    *out = c;
    return 0;
}

void weft__http_conn_free(struct weft__http_conn *c)
{
    buf_free(&c->out);
    buf_free(&c->staged);
    buf_free(&c->head);
    buf_free(&c->body);
    if (c->fields)
        weft__free(c->fields, c->fields_cap * sizeof *c->fields);
    if (c->views)
        weft__free(c->views, c->views_cap * sizeof *c->views);
    weft__free(c->in, IN_SIZE);
    weft__free(c, sizeof *c);
}

/* ---- small string checks -------------------------------------------------------- */

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Whether s[0..n) equals the lower-case word w, ignoring case. */
static bool is_word(const char *s, size_t n, const char *w)
{
    size_t i = 0;
    for (; i < n && w[i]; i++)
        if (lower(s[i]) != w[i])
            return false;
    return i == n && !w[i];
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return n > 0;
}

/* A field value may hold HTAB, visible ASCII and bytes >= 0x80. */
static bool is_field_text_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static bool is_field_text(const char *s)
{
    return is_field_text_n(s, strlen(s));
}

/* ---- the framing check -------------------------------------------------------- */

/* Checks the framing bytes from c->scan to end (see the essay). 0, or the
 * status to refuse the request with. */
static int check_framing(struct weft__http_conn *c, const char *end)
{
    const char *p = c->scan;
    char prev = c->prev;
    for (; p < end; p++) {
        char ch = *p;
        if (c->want_cr) {
            if (ch != '\r')
                return 400;
            c->want_cr = false;
        }
        if ((prev == '\r') != (ch == '\n'))
            return 400; /* a CR without its LF, or a bare LF */
        if (prev == '\n' && (ch == ' ' || ch == '\t'))
            return 400; /* a folded line, or whitespace before the first header */
        c->line_len = ch == '\n' ? 0 : c->line_len + 1;
        if (c->line_len > c->opt.max_header_bytes)
            return 431;
        prev = ch;
    }
    c->prev = prev;
    c->scan = end;
    return 0;
}

/* ---- assembling the request ------------------------------------------------------- */

static struct weft__http_conn *conn_of(http_parser *p)
{
    return p->data;
}

/* Refuses the request from inside a callback: execute stops with an error. */
static int refuse(struct weft__http_conn *c, int status)
{
    c->reject = status;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct weft__http_conn *c = conn_of(p);
    c->head.len = 0;
    c->body.len = 0;
    if (c->body.cap > KEEP_MAX) /* a large body's buffer is not kept for the next */
        buf_free(&c->body);
    c->target_len = c->nfields = c->head_bytes = 0;
    c->hosts = c->tes = 0;
    c->piece = P_NONE;
    c->headers_done = false;
    c->chunk_left = 0;
    c->busy = true;
    return 0;
}

/* Counts n header bytes against the limit. */
static int count_head(struct weft__http_conn *c, size_t n)
{
    c->head_bytes += n;
    return c->head_bytes > c->opt.max_header_bytes ? refuse(c, 431) : 0;
}

/* Ends the piece being appended to: NUL-terminates it, and checks a
 * header name once it is whole. */
static int end_piece(struct weft__http_conn *c)
{
    if (c->piece == P_NONE)
        return 0;
    struct field *f = c->nfields ? &c->fields[c->nfields - 1] : NULL;
    if (c->piece == P_VALUE) {
        while (f->value_len && (c->head.p[f->value + f->value_len - 1] == ' ' ||
                                c->head.p[f->value + f->value_len - 1] == '\t'))
            f->value_len--;
        c->head.len = f->value + f->value_len;
    }
    if (buf_add(&c->head, "", 1) < 0)
        return refuse(c, 500);
    if (c->piece == P_NAME) {
        /* Until a value comes, the value is "" (this NUL). */
        f->value = c->head.len - 1;
        const char *name = c->head.p + f->name;
        if (!is_token(name, f->name_len))
            return refuse(c, 400);
        c->hosts += is_word(name, f->name_len, "host");
        c->tes += is_word(name, f->name_len, "transfer-encoding");
    }
    c->piece = P_NONE;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct weft__http_conn *c = conn_of(p);
    c->piece = P_URL;
    c->target_len += n;
    if (count_head(c, n) < 0)
        return -1;
    return buf_add(&c->head, at, n) < 0 ? refuse(c, 500) : 0;
}

/* A new header field begins: its name starts at the end of head. */
static int new_field(struct weft__http_conn *c)
{
    if (c->nfields == c->opt.max_headers)
        return refuse(c, 431);
    if (c->nfields == c->fields_cap) {
        size_t cap = c->fields_cap ? 2 * c->fields_cap : 16;
        struct field *f = c->fields ? weft__realloc(c->fields, c->fields_cap * sizeof *f,
                                                    cap * sizeof *f)
                                    : weft__alloc(cap * sizeof *f);
        if (!f)
            return refuse(c, 500);
        c->fields = f;
        c->fields_cap = cap;
    }
    c->fields[c->nfields++] = (struct field){.name = c->head.len};
    return count_head(c, HEADER_OVERHEAD);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct weft__http_conn *c = conn_of(p);
    if (c->headers_done) /* a chunked trailer: counted, not kept */
        return count_head(c, n);
    if (c->piece != P_NAME && (end_piece(c) < 0 || new_field(c) < 0))
        return -1;
    c->piece = P_NAME;
    c->fields[c->nfields - 1].name_len += n;
    if (count_head(c, n) < 0)
        return -1;
    return buf_add(&c->head, at, n) < 0 ? refuse(c, 500) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct weft__http_conn *c = conn_of(p);
    if (c->headers_done)
        return count_head(c, n);
    if (c->piece != P_VALUE) {
        if (end_piece(c) < 0)
            return -1;
        c->fields[c->nfields - 1].value = c->head.len;
    }
    c->piece = P_VALUE;
    c->fields[c->nfields - 1].value_len += n;
    if (count_head(c, n) < 0)
        return -1;
    return buf_add(&c->head, at, n) < 0 ? refuse(c, 500) : 0;
}

/* The value of the request's field called `name` (lower case), or NULL. */
static const char *field_value(struct weft__http_conn *c, const char *name)
{
    for (size_t i = 0; i < c->nfields; i++) {
        struct field *f = &c->fields[i];
        if (is_word(c->head.p + f->name, f->name_len, name))
            return c->head.p + f->value;
    }
    return NULL;
}

/* Splits the target into path and query (copied after the fields). */
static int split_target(struct weft__http_conn *c)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->head.p, c->target_len, c->parser.method == HTTP_CONNECT, &u))
        return 400;
    size_t lens[2] = {0, 0}, offs[2] = {0, 0};
    int parts[2] = {UF_PATH, UF_QUERY};
    for (int i = 0; i < 2; i++)
        if (u.field_set & (1u << parts[i])) {
            offs[i] = u.field_data[parts[i]].off;
            lens[i] = u.field_data[parts[i]].len;
        }
    if (buf_reserve(&c->head, lens[0] + lens[1] + 2) < 0)
        return 500;
    c->path = c->head.len;
    buf_put(&c->head, c->head.p + offs[0], lens[0]);
    buf_put(&c->head, "", 1);
    c->query = c->head.len;
    buf_put(&c->head, c->head.p + offs[1], lens[1]);
    buf_put(&c->head, "", 1);
    return 0;
}

/* What the parser accepted that this server does not (see the essay). 0
 * or a status. */
static int check_head(struct weft__http_conn *c)
{
    http_parser *p = &c->parser;
    if (p->http_major != 1 || p->http_minor > 1)
        return 505;
    if (p->http_minor == 1 ? c->hosts != 1 : c->hosts > 1)
        return 400;
    if (c->tes > 1 || (c->tes && p->http_minor == 0))
        return 400;
    for (size_t i = 0; i < c->nfields; i++)
        if (!is_field_text_n(c->head.p + c->fields[i].value, c->fields[i].value_len))
            return 400; /* a control character (NUL too) the parser let through */
    if (memchr(c->head.p, '\0', c->target_len))
        return 400;
    if (c->tes) {
        /* Chunked not the final coding: the body's end is unknowable (RFC
         * 9112 6.3). Final, after codings this server does not decode: 501. */
        if (!(p->flags & F_CHUNKED))
            return 400;
        const char *te = field_value(c, "transfer-encoding");
        if (!te || !is_word(te, strlen(te), "chunked"))
            return 501;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->opt.max_body_bytes)
        return 413;
    return split_target(c);
}

/* The interim response a client that sent "Expect: 100-continue" waits
 * for before it sends the body. */
static int maybe_continue(struct weft__http_conn *c)
{
    http_parser *p = &c->parser;
    bool has_body = (p->flags & F_CHUNKED) ||
                    ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
    const char *expect = field_value(c, "expect");
    if (!has_body || p->http_minor == 0 || !expect ||
        !is_word(expect, strlen(expect), "100-continue"))
        return 0;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return buf_add(&c->out, cont, sizeof cont - 1) < 0 ? 500 : 0;
}

static int on_headers_complete(http_parser *p)
{
    struct weft__http_conn *c = conn_of(p);
    if (c->target_len == 0)
        return refuse(c, 400);
    if (end_piece(c) < 0)
        return -1;
    c->headers_done = true;
    int status = check_head(c);
    if (!status)
        status = maybe_continue(c);
    if (status)
        return refuse(c, status);
    c->keep_alive = http_should_keep_alive(p);
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    struct weft__http_conn *c = conn_of(p);
    if (p->content_length > c->opt.max_body_bytes - c->body.len)
        return refuse(c, 413);
    c->chunk_left = p->content_length;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct weft__http_conn *c = conn_of(p);
    int status = check_framing(c, at);
    if (status)
        return refuse(c, status);
    c->scan = at + n;
    c->prev = 0;
    c->line_len = 0;
    if (p->flags & F_CHUNKED) {
        c->chunk_left -= n;
        c->want_cr = c->chunk_left == 0;
    }
    /* The limits were checked against the announced lengths. */
    return buf_add(&c->body, at, n) < 0 ? refuse(c, 500) : 0;
}

static int on_message_complete(http_parser *p)
{
    struct weft__http_conn *c = conn_of(p);
    c->busy = false;
    c->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- responses ------------------------------------------------------------------- */

/* Keeps c->date the Date line for the current second. */
static void update_date(struct weft__http_conn *c)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    if (now == c->date_sec)
        return;
    struct tm tm;
    gmtime_r(&now, &tm);
    struct buf b = {c->date, 0, sizeof c->date};
    buf_puts(&b, "Date: ");
    buf_puts(&b, days[tm.tm_wday % 7]);
    buf_puts(&b, ", ");
    char two[2] = {(char)('0' + tm.tm_mday / 10), (char)('0' + tm.tm_mday % 10)};
    buf_put(&b, two, 2);
    buf_puts(&b, " ");
    buf_puts(&b, months[tm.tm_mon % 12]);
    buf_puts(&b, " ");
    buf_put_uint(&b, (uint64_t)tm.tm_year + 1900);
    int hms[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    for (int i = 0; i < 3; i++) {
        char d[3] = {i ? ':' : ' ', (char)('0' + hms[i] / 10), (char)('0' + hms[i] % 10)};
        buf_put(&b, d, 3);
    }
    buf_puts(&b, " GMT\r\n");
    buf_put(&b, "", 1);
    c->date_sec = now;
}

/* Appends a whole response to the output: status line, Date,
 * Content-Type, Content-Length, Connection, the staged header lines, the
 * blank line and (unless head_only) the body. 0 or -ENOMEM. */
static int put_response(struct weft__http_conn *c, int status, const char *ctype,
                        const void *body, size_t len, bool head_only)
{
    const char *reason = http_status_str((enum http_status)status);
    if (strcmp(reason, "<unknown>") == 0)
        reason = "";
    bool no_length = status == 204 || status == 304;
    bool close = c->closing || !c->keep_alive;
    update_date(c);
    size_t need = 128 + strlen(reason) + sizeof c->date + (ctype ? 16 + strlen(ctype) : 0) +
                  c->staged.len + (head_only || no_length ? 0 : len);
    if (buf_reserve(&c->out, need) < 0)
        return -ENOMEM;
    struct buf *o = &c->out;
    buf_puts(o, "HTTP/1.1 ");
    buf_put_uint(o, (uint64_t)status);
    buf_puts(o, " ");
    buf_puts(o, reason);
    buf_puts(o, "\r\n");
    buf_puts(o, c->date);
    if (ctype) {
        buf_puts(o, "Content-Type: ");
        buf_puts(o, ctype);
        buf_puts(o, "\r\n");
    }
    if (!no_length) {
        buf_puts(o, "Content-Length: ");
        buf_put_uint(o, len);
        buf_puts(o, "\r\n");
    }
    if (close)
        buf_puts(o, "Connection: close\r\n");
    else if (c->parser.http_minor == 0)
        buf_puts(o, "Connection: keep-alive\r\n");
    buf_put(o, c->staged.p, c->staged.len);
    buf_puts(o, "\r\n");
    if (!head_only && !no_length)
        buf_put(o, body, len);
    return 0;
}

/* Refuses the request in progress with `status`: the response says so and
 * the connection closes after it. */
static void reject(struct weft__http_conn *c, int status, bool head_only)
{
    c->closing = true;
    c->busy = false;
    c->staged.len = 0;
    const char *reason = http_status_str((enum http_status)status);
    char text[64];
    size_t n = strlen(reason);
    n = n < sizeof text - 1 ? n : sizeof text - 2;
    memcpy(text, reason, n);
    text[n++] = '\n';
    /* Out of memory for even this: the connection just closes. */
    (void)put_response(c, status, "text/plain", text, n, head_only);
}

const char *weft_http_request_header(const struct weft_http_request *req, const char *name)
{
    if (!req || !name)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < req->header_count; i++) {
        const struct weft_http_header *h = &req->headers[i];
        if (h->name_len != n)
            continue;
        size_t k = 0;
        while (k < n && lower(h->name[k]) == lower(name[k]))
            k++;
        if (k == n)
            return h->value;
    }
    return NULL;
}

int weft_http_response_header(struct weft_http_response *res, const char *name, const char *value)
{
    if (!res || !name || !value)
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (!is_token(name, nl) || !is_field_text(value) || is_word(name, nl, "content-length") ||
        is_word(name, nl, "transfer-encoding") || is_word(name, nl, "connection") ||
        is_word(name, nl, "date"))
        return -EINVAL;
    if (res->sent)
        return -EALREADY;
    struct buf *s = &res->conn->staged;
    if (buf_reserve(s, nl + vl + 4) < 0)
        return -ENOMEM;
    buf_put(s, name, nl);
    buf_put(s, ": ", 2);
    buf_put(s, value, vl);
    buf_put(s, "\r\n", 2);
    return 0;
}

int weft_http_respond(struct weft_http_response *res, int status, const char *content_type,
                      const void *body, size_t len)
{
    if (!res || status < 200 || status > 599 || (!body && len) ||
        ((status == 204 || status == 304) && len) ||
        (content_type && !is_field_text(content_type)))
        return -EINVAL;
    if (res->sent)
        return -EALREADY;
    int err = put_response(res->conn, status, content_type, body, len, res->head_only);
    if (err == 0)
        res->sent = true;
    return err;
}

/* ---- handling requests --------------------------------------------------------- */

/* Makes the request's body NUL-terminated and its fields pointers, for
 * the handler. 0 or -ENOMEM. */
static int prepare_request(struct weft__http_conn *c)
{
    if (buf_add(&c->body, "", 1) < 0)
        return -ENOMEM;
    c->body.len--; /* the NUL is not part of the body */
    if (c->views_cap < c->nfields) {
        size_t cap = c->fields_cap;
        struct weft_http_header *v =
            c->views ? weft__realloc(c->views, c->views_cap * sizeof *v, cap * sizeof *v)
                     : weft__alloc(cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        c->views = v;
        c->views_cap = cap;
    }
    const char *h = c->head.p;
    for (size_t i = 0; i < c->nfields; i++) {
        struct field *f = &c->fields[i];
        c->views[i] = (struct weft_http_header){h + f->name, h + f->value, f->name_len,
                                                f->value_len};
    }
    return 0;
}

/* Calls the handler for the request just completed, and makes sure a
 * response follows. May suspend (the handler may). */
static void dispatch(struct weft__http_conn *c)
{
    bool head_only = c->parser.method == HTTP_HEAD;
    if (prepare_request(c) < 0) {
        reject(c, 500, head_only);
        return;
    }
    const char *h = c->head.p;
    struct weft_http_request req = {
        .method = http_method_str((enum http_method)c->parser.method),
        .target = h,
        .path = h + c->path,
        .query = h + c->query,
        .version_minor = c->parser.http_minor,
        .keep_alive = c->keep_alive,
        .headers = c->views,
        .header_count = c->nfields,
        .body = c->body.p,
        .body_len = c->body.len,
    };
    c->staged.len = 0;
    c->res.sent = false;
    c->res.head_only = head_only;
    int r = c->handler(&req, &c->res, c->arg);
    if (r < 0 || !c->keep_alive || c->parser.upgrade)
        c->closing = true;
    if (!c->res.sent && r != -ECANCELED)
        reject(c, 500, head_only);
}

char *weft__http_conn_inbuf(struct weft__http_conn *c, size_t *room)
{
    if (c->in_pos == c->in_len)
        c->in_pos = c->in_len = 0;
    *room = IN_SIZE - c->in_len;
    return c->in + c->in_len;
}

/* The status for a parser error. */
static int error_status(struct weft__http_conn *c, enum http_errno e)
{
    if (e >= HPE_CB_message_begin && e <= HPE_CB_chunk_complete && c->reject)
        return c->reject;
    return e == HPE_HEADER_OVERFLOW ? 431 : 400;
}

enum weft__http_step weft__http_conn_process(struct weft__http_conn *c, size_t n)
{
    c->in_len += n;
    for (;;) {
        if (c->closing)
            return WEFT__HTTP_CLOSE;
        if (c->out.len >= FLUSH_AT)
            return WEFT__HTTP_FLUSH;
        if (c->in_pos == c->in_len)
            return WEFT__HTTP_MORE;
        const char *base = c->in + c->in_pos;
        size_t avail = c->in_len - c->in_pos;
        c->scan = base;
        c->reject = 0;
        size_t used = http_parser_execute(&c->parser, &settings, base, avail);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            reject(c, error_status(c, e), false);
            continue;
        }
        int status = check_framing(c, base + used);
        if (status) {
            reject(c, status, false);
            continue;
        }
        c->in_pos += used;
        if (c->complete) {
            c->complete = false;
            http_parser_pause(&c->parser, 0);
            dispatch(c);
        } else if (used < avail) {
            /* Only a pause stops the parser short without an error. */
            reject(c, 400, false);
        }
    }
}

const char *weft__http_conn_output(struct weft__http_conn *c, size_t *len)
{
    *len = c->out.len;
    return c->out.p;
}

void weft__http_conn_output_done(struct weft__http_conn *c)
{
    c->out.len = 0;
    if (c->out.cap > KEEP_MAX)
        buf_free(&c->out);
}

bool weft__http_conn_busy(const struct weft__http_conn *c)
{
    return c->busy;
}

void weft__http_conn_timed_out(struct weft__http_conn *c)
{
    reject(c, 408, false);
}
