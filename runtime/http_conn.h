/*
 * The HTTP server's connection, without its socket: bytes in, response
 * bytes out (http_conn.c). The connection task drives it over a socket;
 * the tests and the fuzzer drive it directly.
 *
 * A driver loop:
 *
 *     char *in = weft__http_conn_inbuf(c, &room);   read up to room bytes into in
 *     step = weft__http_conn_process(c, n);          n: how many were read
 *     out = weft__http_conn_output(c, &len);         send len bytes of out
 *     weft__http_conn_output_done(c);
 *     MORE: read again; FLUSH: process(c, 0) again; CLOSE: close.
 */
#ifndef WEFT_HTTP_CONN_H
#define WEFT_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "weft/http.h"

struct weft__http_conn;

enum weft__http_step {
    WEFT__HTTP_MORE,  /* every byte given is parsed: read more */
    WEFT__HTTP_FLUSH, /* output is due before more requests are handled: send
                         it, then process again (with 0 new bytes) */
    WEFT__HTTP_CLOSE, /* send the output, then close the connection */
};

/* Fills *out with opts (NULL: all defaults), each zero field replaced by
 * its default. -EINVAL, naming nothing, if a field is out of its range.
 * Any thread. */
int weft__http_options_resolve(struct weft_http_options *out,
                               const struct weft_http_options *opts);

/* A connection's state, for requests handled by handler(req, res, arg)
 * under *opts (resolved; copied). 0 or -ENOMEM. Any thread. */
int weft__http_conn_new(struct weft__http_conn **out, const struct weft_http_options *opts,
                        weft_http_handler handler, void *arg);

/* Frees it. Any thread, not while it is being processed. */
void weft__http_conn_free(struct weft__http_conn *c);

/* Where the next bytes received go, and how many fit (never 0 when
 * process last returned MORE). The thread processing c. */
char *weft__http_conn_inbuf(struct weft__http_conn *c, size_t *room);

/* Takes n new bytes (written at inbuf), parses them and handles every
 * complete request, appending each response to the output. Calls the
 * handler, which may suspend: task context if the handler suspends,
 * otherwise any thread. */
enum weft__http_step weft__http_conn_process(struct weft__http_conn *c, size_t n);

/* The output to send: *len bytes (0 if none). The thread processing c. */
const char *weft__http_conn_output(struct weft__http_conn *c, size_t *len);

/* The output was sent: empties it. The thread processing c. */
void weft__http_conn_output_done(struct weft__http_conn *c);

/* Whether part of a request has been received and its end not yet. The
 * thread processing c. */
bool weft__http_conn_busy(const struct weft__http_conn *c);

/* The request in progress did not arrive in time: queues a 408 response,
 * after which the connection closes. The thread processing c. */
void weft__http_conn_timed_out(struct weft__http_conn *c);

#endif
