/*
 * libFuzzer target for the HTTP server's request path: the connection's
 * bytes-in, bytes-out core (runtime/http_conn.h), with no socket and no
 * runtime. Built with -fsanitize=fuzzer,address,undefined when the
 * compiler is clang and WEFT_FUZZ=ON; seed it with tests/http_corpus:
 *
 *     build-fuzz/tests/fuzz_http -max_total_time=60 NEW_DIR tests/http_corpus
 *
 * Each input is one connection: what the client sends, cut into reads
 * whole or in pieces of 1 to 16 bytes as its size (mod 17) says. Small limits make the 413 and 431 paths reachable with
 * small inputs. Beyond what the sanitizers catch, it checks:
 *  - every request the handler sees is well formed (NUL-terminated
 *    strings that agree with their lengths, header names that are
 *    tokens, values without CR or LF, a body within the limit);
 *  - no request reaches the handler after the core said CLOSE;
 *  - the output parses, with http-parser in response mode, as exactly
 *    one final response per handled request, plus at most one for a
 *    request refused, plus 100 Continue interim responses.
 */
#include <errno.h>
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_conn.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_BODY 4096
#define MAX_CALLS 4096

static unsigned calls;            /* requests handled in this input */
static bool heads[MAX_CALLS];     /* whether each one's response has no body */
static bool closed;               /* the core said CLOSE */

static void check_string(const char *s, size_t len)
{
    CHECK(s != NULL && strlen(s) == len);
}

static int handler(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    (void)arg;
    CHECK(!closed);
    CHECK(req->method && req->target && req->path && req->query && req->body);
    CHECK(req->body_len <= MAX_BODY && req->body[req->body_len] == '\0');
    CHECK(req->version_minor == 0 || req->version_minor == 1);
    check_string(req->path, strlen(req->path));
    for (size_t i = 0; i < req->header_count; i++) {
        const struct weft_http_header *h = &req->headers[i];
        check_string(h->name, h->name_len);
        check_string(h->value, h->value_len);
        CHECK(h->name_len > 0 && !strpbrk(h->name, " \t:\r\n"));
        CHECK(!strpbrk(h->value, "\r\n"));
    }
    bool head = strcmp(req->method, "HEAD") == 0;
    CHECK(calls < MAX_CALLS);
    heads[calls++] = head;
    /* Vary the answers: no response (the server sends 500), an error
     * return, a 204, or the body echoed with a header. */
    switch (req->body_len % 4) {
    case 0:
        return 0;
    case 1:
        CHECK(weft_http_respond(res, 204, NULL, NULL, 0) == 0);
        return -EIO;
    case 2:
        CHECK(weft_http_respond(res, 204, NULL, NULL, 0) == 0);
        return 0;
    default: {
        int err = weft_http_response_header(res, "X-Path", req->path);
        CHECK(err == 0 || err == -EINVAL);
        CHECK(weft_http_respond(res, 200, "application/octet-stream", req->body, req->body_len) ==
              0);
        return 0;
    }
    }
}

/* Reading the output back. */
struct reader {
    unsigned finals, interims;
};

static int rd_headers(http_parser *p)
{
    struct reader *rd = p->data;
    if (p->status_code < 200)
        return 0;
    /* The final responses answer the handled requests in order; one more
     * may refuse a request (never to HEAD's rules). */
    return rd->finals < calls && heads[rd->finals] ? 1 : 0;
}

static int rd_done(http_parser *p)
{
    struct reader *rd = p->data;
    if (p->status_code < 200)
        rd->interims++;
    else
        rd->finals++;
    return 0;
}

static const http_parser_settings rd_settings = {
    .on_headers_complete = rd_headers,
    .on_message_complete = rd_done,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* How the input is cut into reads: whole (0), or pieces of 1 to 16
     * bytes. From the size, so that a seed is fed byte for byte as it is. */
    unsigned cut = (unsigned)(size % 17);
    calls = 0;
    closed = false;
    struct weft_http_options o = {
        .max_header_bytes = 1024,
        .max_headers = 8,
        .max_body_bytes = MAX_BODY,
    };
    CHECK(weft__http_options_resolve(&o, &o) == 0);
    struct weft__http_conn *c;
    CHECK(weft__http_conn_new(&c, &o, handler, NULL) == 0);
    char *out = NULL;
    size_t out_len = 0, off = 0;
    enum weft__http_step step = WEFT__HTTP_MORE;
    for (;;) {
        size_t k = 0;
        if (step == WEFT__HTTP_MORE) {
            if (off == size)
                break;
            size_t room;
            char *in = weft__http_conn_inbuf(c, &room);
            CHECK(room > 0);
            k = size - off;
            if (cut && k > cut)
                k = cut;
            if (k > room)
                k = room;
            memcpy(in, data + off, k);
            off += k;
        }
        step = weft__http_conn_process(c, k);
        size_t len;
        const char *o2 = weft__http_conn_output(c, &len);
        CHECK(len == 0 || o2 != NULL);
        out = realloc(out, out_len + len + 1);
        if (len)
            memcpy(out + out_len, o2, len);
        out_len += len;
        weft__http_conn_output_done(c);
        if (step == WEFT__HTTP_CLOSE) {
            closed = true;
            break;
        }
    }
    weft__http_conn_free(c);

    struct reader rd = {0};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &rd;
    size_t used = http_parser_execute(&p, &rd_settings, out ? out : "", out_len);
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != out_len) {
        fprintf(stderr, "fuzz_http: unparsable output (%s at %zu of %zu):\n%.*s\n",
                http_errno_name(HTTP_PARSER_ERRNO(&p)), used, out_len, (int)out_len, out);
        abort();
    }
    CHECK(rd.finals == calls || (closed && rd.finals == calls + 1));
    free(out);
    return 0;
}
