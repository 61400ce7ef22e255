/*
 * The runtime's allocator: jemalloc's non-standard API (mallocx, sdallocx)
 * when built with WEFT_JEMALLOC, the C library's malloc otherwise. jemalloc
 * gives each thread its own cache, so the workers allocate without sharing a
 * lock; the sized free (sdallocx) saves the lookup of the block's size.
 * The hot per-task structures (task slots, stacks) are pooled by their own
 * modules and rarely reach this file in steady state.
 */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

#ifdef WEFT_USE_JEMALLOC
#include <jemalloc/jemalloc.h>

void *weft__alloc(size_t size)
{
    return mallocx(size ? size : 1, 0);
}

void *weft__zalloc(size_t size)
{
    return mallocx(size ? size : 1, MALLOCX_ZERO);
}

void *weft__realloc(void *p, size_t old_size, size_t size)
{
    if (!p)
        return weft__alloc(size);
    (void)old_size;
    return rallocx(p, size ? size : 1, 0);
}

void weft__free(void *p, size_t size)
{
    if (p)
        sdallocx(p, size ? size : 1, 0);
}

void *weft__aligned_zalloc(size_t size)
{
    return mallocx(size ? size : 1, MALLOCX_ZERO | MALLOCX_ALIGN(WEFT_CACHE_LINE));
}

void weft__aligned_free(void *p, size_t size)
{
    if (p)
        sdallocx(p, size ? size : 1, MALLOCX_ALIGN(WEFT_CACHE_LINE));
}

const char *weft__alloc_name(void)
{
    return "jemalloc";
}

#else

void *weft__alloc(size_t size)
{
    return malloc(size ? size : 1);
}

void *weft__zalloc(size_t size)
{
    return calloc(1, size ? size : 1);
}

void *weft__realloc(void *p, size_t old_size, size_t size)
{
    (void)old_size;
    return realloc(p, size ? size : 1);
}

void weft__free(void *p, size_t size)
{
    (void)size;
    free(p);
}

void *weft__aligned_zalloc(size_t size)
{
    size = (size + WEFT_CACHE_LINE - 1) & ~(size_t)(WEFT_CACHE_LINE - 1);
    void *p = aligned_alloc(WEFT_CACHE_LINE, size ? size : WEFT_CACHE_LINE);
    if (p)
        memset(p, 0, size);
    return p;
}

void weft__aligned_free(void *p, size_t size)
{
    (void)size;
    free(p);
}

const char *weft__alloc_name(void)
{
    return "libc";
}

#endif
