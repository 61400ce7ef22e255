/*
 * weft/curl.h: HTTP and every other libcurl protocol for tasks.
 *
 * A transfer suspends only the task that asked for it. Each runtime drives
 * one libcurl multi handle, made at the first transfer and cleaned up when
 * the runtime ends, through libcurl's socket and timer callbacks and weft's
 * own poller (runtime/curl.c): no thread of its own, no curl_multi_poll
 * loop. Its connection cache is shared, so a keep-alive connection that one
 * task's transfer leaves behind is reused by the next task's.
 *
 * Callbacks. libcurl runs the easy handle's callbacks (write, header,
 * progress, ...) on whichever task moves the transfer on: the caller, or
 * one of the runtime's own tasks that wait on curl's sockets, with the
 * multi handle's lock held. They must not suspend (no weft call that may
 * suspend) and must not call curl_multi_* functions; keep them short.
 *
 * Stacks. libcurl's code runs on the caller's stack when a transfer starts
 * and when it is abandoned, and TLS handshakes are deep: 64 KiB of stack
 * (the default) is enough for plain HTTP; allow 256 KiB for HTTPS
 * (weft_spawn_opts, WEFT_STACK_SIZE).
 *
 * Loading. libweft does not link libcurl: it finds libcurl's functions at
 * the first transfer, so that programs that make none do not load libcurl
 * and the libraries it needs. It uses the libcurl the program has loaded
 * already (a program that calls curl_easy_* itself links libcurl:
 * pkg-config libcurl; a program that links it statically must export its
 * symbols, -rdynamic, or weft loads a second libcurl that its easy handles
 * do not belong to); failing that it loads libcurl.so.4, or the library
 * the environment variable WEFT_LIBCURL names (a path or a soname, e.g.
 * libcurl-gnutls.so.4). When none can be loaded, every call below returns
 * -ELIBACC and the first says why on stderr.
 *
 * Memory. When libweft is built with jemalloc (the default) and its first
 * transfer is also libcurl's first set-up, weft sets libcurl up with
 * curl_global_init_mem so that libcurl's own allocations come from
 * jemalloc's thread caches: a transfer's memory is often made on one
 * worker's thread and freed on another's. A program that called
 * curl_global_init or curl_easy_init first keeps libcurl on the C
 * library's allocator; either way, free what libcurl hands out with
 * libcurl's functions (curl_free, curl_slist_free_all), as its manual
 * says.
 */
#ifndef WEFT_CURL_H
#define WEFT_CURL_H

#include <curl/curl.h>
#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

/* curl_easy_perform() for a task: runs the transfer that easy is set up
 * for in the runtime's multi handle and waits for its end. Only the
 * calling task waits; the easy handle's callbacks run as described above.
 * *code (if not NULL) gets libcurl's own word for what happened, on every
 * return: CURLE_OK with 0, the transfer's CURLcode when it failed,
 * CURLE_OPERATION_TIMEDOUT when weft's deadline passed,
 * CURLE_ABORTED_BY_CALLBACK when the task was cancelled, CURLE_FAILED_INIT
 * or CURLE_OUT_OF_MEMORY when the transfer never started.
 *
 * weft sets CURLOPT_OPENSOCKETFUNCTION, CURLOPT_CLOSESOCKETFUNCTION (so
 * that the runtime knows every socket curl opens and closes: see
 * weft_close in weft.h) and CURLOPT_NOSIGNAL on easy; do not set them.
 * Everything else is the caller's, and stays set afterwards. An HTTP
 * status such as 404 is not an error: read CURLINFO_RESPONSE_CODE. May
 * suspend. Task context.
 *   0            the transfer finished (CURLE_OK).
 *   -EPERM       called outside a task.
 *   -EINVAL      easy is NULL, or libcurl refused it.
 *   -EBUSY       easy is in a transfer already (in another task).
 *   -ENOMEM      no memory for the multi handle or the transfer's record,
 *                or libcurl ran out (CURLE_OUT_OF_MEMORY).
 *   -ELIBACC     libcurl could not be loaded (see Loading above).
 *   -ECANCELED   the calling task was cancelled: the transfer was taken
 *                out of the multi handle (its connection closed unless it
 *                had finished); whatever arrived was passed to the
 *                callbacks.
 *   -ETIMEDOUT   (_until) the deadline (an absolute weft_now() time,
 *                WEFT_NEVER: none) passed; the transfer was taken out as
 *                on a cancellation. Also libcurl's own timeouts
 *                (CURLOPT_TIMEOUT, CURLOPT_CONNECTTIMEOUT, ...).
 *   -ECONNREFUSED, -ECONNRESET, -ENETUNREACH, ...  the connection failed,
 *                or sending or receiving on it did (CURLE_COULDNT_CONNECT,
 *                CURLE_SEND_ERROR, CURLE_RECV_ERROR), with the system's
 *                error that libcurl recorded (CURLINFO_OS_ERRNO).
 *   -EIO         libcurl ended the transfer with any other error: *code
 *                says which (curl_easy_strerror). */
WEFT_API int weft_curl_perform(CURL *easy, CURLcode *code);
WEFT_API int weft_curl_perform_until(CURL *easy, uint64_t deadline, CURLcode *code);

/* curl_multi_setopt() on the runtime's multi handle, for the options that
 * size its connections: CURLMOPT_MAXCONNECTS (connections kept in its
 * cache; by default 4 for each transfer of the most that were in flight at
 * once), CURLMOPT_MAX_HOST_CONNECTIONS and
 * CURLMOPT_MAX_TOTAL_CONNECTIONS (0, the default: no limit; transfers
 * beyond a limit wait for a connection), CURLMOPT_MAX_CONCURRENT_STREAMS
 * and CURLMOPT_PIPELINING. The setting lasts until the runtime ends. Does
 * not suspend (it takes the multi handle's lock briefly). Any thread of a
 * running runtime.
 *   -EPERM   no runtime is running.
 *   -EINVAL  another option, or a value libcurl refuses.
 *   -ENOMEM  no memory for the multi handle.
 *   -ELIBACC libcurl could not be loaded (see Loading above). */
WEFT_API int weft_curl_multi_setopt(CURLMoption option, long value);

/* What weft_http_get() got: the final response, after any redirects. */
struct weft_http_reply {
    long status;        /* the HTTP status: 200, 404, ... */
    char *headers;      /* its header lines as received, "Name: value\r\n"..., NUL-terminated */
    size_t headers_len; /* bytes in headers, without the NUL */
    char *body;         /* the body, decoded (gzip...), NUL-terminated */
    size_t body_len;    /* bytes in body, without the NUL */
    CURLcode code;      /* CURLE_OK, or libcurl's reason for a failure */
    uint64_t reserved[4];
};

/* requests.get(url): fetches url with a GET (following up to 10
 * redirects, accepting any content encoding libcurl can decode) and fills
 * *out. On 0 the caller owns out's buffers and frees them with
 * weft_http_reply_destroy(); on an error *out holds no buffer (destroying
 * it is harmless) and out->code says libcurl's reason. Any status is a
 * success: check out->status. Connections are reused across calls and
 * tasks. May suspend. Task context.
 *   -EINVAL  url or out is NULL.
 *   -ENOMEM  no memory for the handle or the buffers.
 *   -ELIBACC libcurl could not be loaded (see Loading above).
 *   other    as weft_curl_perform(): -ECANCELED, -ETIMEDOUT (_until),
 *            -ECONNREFUSED, -EIO, ... */
WEFT_API int weft_http_get(const char *url, struct weft_http_reply *out);
WEFT_API int weft_http_get_until(const char *url, uint64_t deadline, struct weft_http_reply *out);

/* The value of the header `name` (case-insensitive) in r, without the
 * spaces around it; *len (if not NULL) gets its length, since the value is
 * not NUL-terminated. The last one, if the header appears more than once.
 * NULL if r has no such header (or r or name is NULL). Does not suspend.
 * Any thread. */
WEFT_API const char *weft_http_reply_find_header(const struct weft_http_reply *r,
                                                 const char *name, size_t *len);

/* Frees what weft_http_get() put in *r and zeroes it. NULL, and a reply
 * that holds nothing, are fine. Does not suspend. Any thread. */
WEFT_API void weft_http_reply_destroy(struct weft_http_reply *r);

#ifdef __cplusplus
}
#endif

#endif
