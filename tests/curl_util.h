/*
 * Helpers of the libcurl suites (test_curl, test_https): white-box, through
 * the multi handle's counts (runtime/curl.h).
 */
#ifndef WEFT_TEST_CURL_UTIL_H
#define WEFT_TEST_CURL_UTIL_H

#include "curl.h"
#include "util.h"

/* The runtime's multi handle holds no transfer, started or not. */
static inline void counts_empty(void)
{
    struct weft__curl_counts n;
    weft__curl_counts(&n);
    CHECK(n.transfers == 0);
    CHECK(n.running == 0);
}

#endif
