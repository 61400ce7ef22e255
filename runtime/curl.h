/*
 * libcurl integration (curl.c): the runtime's multi handle, what the
 * runtime's teardown and the white-box tests need of it.
 */
#ifndef WEFT_CURL_INTERNAL_H
#define WEFT_CURL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

struct weft__runtime;
struct weft__curl;

/* Cleans up rt's multi handle, if it made one: closes the connections in
 * its cache (through weft_close) and frees what curl.c kept. The run is
 * over: no task is left. Called through rt->curl_term, which the first
 * transfer sets, by the thread that ends the run. */
void weft__curl_term(struct weft__runtime *rt);

/* What the multi handle of the running runtime holds now (all 0 when it
 * has none). For tests. Task context (takes the multi handle's lock). */
struct weft__curl_counts {
    size_t transfers; /* easy handles weft_curl_perform added and has not taken out */
    size_t running;   /* transfers libcurl itself still counts as running */
    size_t sockets;   /* sockets curl.c knows: in use, or idle in curl's connection cache */
    size_t watchers;  /* tasks waiting on those sockets, and the timer task */
};
void weft__curl_counts(struct weft__curl_counts *out);

/* Test hook: takes (on) or releases (!on) the multi handle's lock, as a
 * thread inside curl holds it, so that a test can show what a transfer
 * started meanwhile does. Returns 0, or what making the multi handle
 * returned. Task context; the caller is inside curl in between, where
 * nothing else may suspend while it holds the lock. */
int weft__curl_hold(bool on);

/* Test hook: sockets curl opens from now on that are numbered n or
 * above are watched on curl's number (direct) rather than through a
 * duplicate, as when the descriptor limit is near (curl.c, sock_add).
 * Returns 0, or what making the multi handle returned. Task context. */
int weft__curl_set_dup_below(long n);

/* Test hook: whether a watcher's wake-up waits for the lock's holder
 * (curl.c, hand_over). Any thread. */
bool weft__curl_handed_over(void);

#endif
