/*
 * weft/http.h: an HTTP/1.1 server, one task per connection.
 *
 * weft_http_serve_fd() runs an accept loop in the calling task and starts
 * one task per connection, which reads requests, calls the handler for
 * each one in order and writes the responses back. Parsing is Debian's
 * http-parser (nodejs/http-parser 2.9); weft buffers what it reports,
 * enforces limits and refuses the message shapes that let two parsers
 * disagree on where a request ends (docs/design/http-server.md).
 *
 * What a connection does:
 *  - HTTP/1.1 connections stay open between requests unless the client
 *    sends "Connection: close"; HTTP/1.0 ones close unless it sends
 *    "Connection: keep-alive".
 *  - Pipelining: every complete request already received is handled, in
 *    order, and their responses go out together in one write.
 *  - Request bodies come with Content-Length or chunked (decoded before
 *    the handler sees them); "Expect: 100-continue" gets its interim
 *    response.
 *  - A malformed request, or one that frames its body ambiguously, gets
 *    400 and the connection is closed; oversized headers 431, an oversized
 *    body 413, an unsupported Transfer-Encoding 501, an HTTP version other
 *    than 1.0 and 1.1 505, a request that does not arrive in time 408: all
 *    close the connection. Other connections are not disturbed.
 *  - A connection waiting for a request longer than the idle timeout is
 *    closed, and so is one whose request takes longer than the request
 *    timeout to arrive.
 *
 * Serving ends when the serving task is cancelled (weft_cancel on the task
 * that called weft_http_serve): the listener is closed, every connection
 * task is cancelled and waited for, and the call returns -ECANCELED with
 * no descriptor and no task of the server left.
 */
#ifndef WEFT_HTTP_H
#define WEFT_HTTP_H

#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One header field of a request, as received: the name with its case
 * kept, the value without the whitespace around it. Both NUL-terminated. */
struct weft_http_header {
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
};

/* A request, as the handler sees it. Every pointer stays valid until the
 * handler returns, and not after: copy what must outlive it. Strings are
 * NUL-terminated. */
struct weft_http_request {
    const char *method;  /* "GET", "POST", ... */
    const char *target;  /* the request-target as sent: "/a/b?x=1" */
    const char *path;    /* the target's path, "/a/b" (percent-escapes as sent) */
    const char *query;   /* the target's query without the '?', "x=1"; "" if none */
    int version_minor;   /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    bool keep_alive;     /* the connection stays open after the response */
    const struct weft_http_header *headers; /* in the order received */
    size_t header_count;
    const char *body;    /* the body (de-chunked); "" if none */
    size_t body_len;
    uint64_t reserved[4];
};

/* The response being built for one request. Opaque; it belongs to the
 * connection and is valid until the handler returns. */
struct weft_http_response;

/* A request handler. It runs in the connection's task and may suspend
 * (sleep, do I/O, wait for other tasks); the connection handles its next
 * request only after it returns. It answers with weft_http_respond() and
 * returns 0, or a negative errno value to have the connection closed after
 * the response. A handler that returns without responding gets a 500
 * sent for it, except when it returns -ECANCELED (the server is stopping):
 * then the connection closes with no response. */
typedef int (*weft_http_handler)(const struct weft_http_request *req,
                                 struct weft_http_response *res, void *arg);

/* Limits and timeouts of a server; plain data, zero fields take the
 * defaults. */
struct weft_http_options {
    size_t max_header_bytes;     /* 0 = 16 KiB: the request target plus every header
                                    name and value, 4 bytes of separators counted per
                                    header (1024 - 65535); more gets 431 */
    unsigned max_headers;        /* 0 = 100 header fields (at most 65535); more gets 431 */
    size_t max_body_bytes;       /* 0 = 1 MiB (at most 1 GiB); a larger body gets 413 */
    uint64_t idle_timeout_ns;    /* 0 = 30 s: the longest wait for the next request, and
                                    for a response's write to finish */
    uint64_t request_timeout_ns; /* 0 = 30 s: from a request's first byte to its last;
                                    later gets 408 */
    uint64_t reserved[4];        /* zero */
};

/* Makes a listening TCP socket for weft_http_serve_fd(): addr is
 * "HOST:PORT" with a numeric IPv4 host ("127.0.0.1:8080"), a bracketed
 * IPv6 one ("[::1]:8080"), "localhost", or none (":8080", all IPv4
 * addresses). Port 0 picks a free port; *port (if not NULL) gets the
 * port bound. SO_REUSEADDR is set. Returns the descriptor, non-blocking
 * and close-on-exec (close it with weft_close(), or hand it to
 * weft_http_serve_fd(), which closes it). Does not suspend. Any thread.
 *   -EINVAL      addr is NULL or not of that form.
 *   (other)      socket, bind or listen's own -errno (-EADDRINUSE,
 *                -EACCES, -EMFILE, ...). */
WEFT_API int weft_http_listen(const char *addr, uint16_t *port);

/* Serves HTTP on the listening socket lfd with handler(req, res, arg), in
 * the calling task: it accepts connections and runs each in a task of
 * its own, until the calling task is cancelled. Then it closes the
 * listener, cancels every connection task (a handler's wait ends with
 * -ECANCELED), waits until all have finished, and returns -ECANCELED. lfd
 * belongs to the server from this call on and is closed on every return.
 * A failure of one connection (a bad request, a peer gone, no memory for
 * it) closes that connection only; running out of descriptors pauses
 * accepting for 100 ms. opts may be NULL for the defaults. May suspend
 * (it returns only when serving stops). Task context.
 *   -ECANCELED  the calling task was cancelled: the normal end.
 *   -EPERM      called outside a task.
 *   -EINVAL     handler is NULL, lfd is negative, or an option is out of
 *               its range.
 *   -ENOMEM     no memory to start serving.
 *   (other)     accept's own -errno for a listener that cannot accept
 *               (-EINVAL: not listening, -ENOTSOCK, -EBADF), returned
 *               once every connection has been stopped as above. */
WEFT_API int weft_http_serve_fd(int lfd, weft_http_handler handler, void *arg,
                                const struct weft_http_options *opts);

/* weft_http_listen(addr) and weft_http_serve_fd() with the default
 * options. May suspend (it returns only when serving stops). Task
 * context.
 *   -ECANCELED  the calling task was cancelled: the normal end.
 *   (other)     as weft_http_listen() and weft_http_serve_fd(). */
WEFT_API int weft_http_serve(const char *addr, weft_http_handler handler, void *arg);

/* The value of the request's first header field called name (compared
 * without case), or NULL if it has none (or req or name is NULL). Does
 * not suspend. Any thread that may read req (the handler's task). */
WEFT_API const char *weft_http_request_header(const struct weft_http_request *req,
                                              const char *name);

/* Adds the header field "name: value" to the response, before it is sent
 * with weft_http_respond(). The server writes Content-Length, Connection
 * and Date itself. Does not suspend. Task context: the handler's task.
 *   -EINVAL    res, name or value is NULL; name is empty or not an HTTP
 *              token, or is Content-Length, Transfer-Encoding, Connection
 *              or Date; value holds a control character (CR, LF, NUL, ...).
 *   -EALREADY  the response was sent already.
 *   -ENOMEM    no memory. */
WEFT_API int weft_http_response_header(struct weft_http_response *res, const char *name,
                                       const char *value);

/* Answers the request: the status (200 - 599), a Content-Type if
 * content_type is not NULL, the header fields added before, and the len
 * bytes of body (copied; a response to HEAD sends its length but not the
 * bytes; 204 and 304 take no body). The response goes out once the
 * connection has handled every request it already has. Does not suspend.
 * Task context: the handler's task.
 *   -EINVAL    res is NULL; status is outside 200 - 599; body is NULL and
 *              len is not 0; a body for 204 or 304; content_type holds a
 *              control character.
 *   -EALREADY  the response was sent already.
 *   -ENOMEM    no memory (nothing was sent: a 500 will be). */
WEFT_API int weft_http_respond(struct weft_http_response *res, int status,
                               const char *content_type, const void *body, size_t len);

#ifdef __cplusplus
}
#endif

#endif
