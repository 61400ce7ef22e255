/*
 * The runtime's own allocations. Every structure weft allocates for itself
 * comes from here, so that one build option (WEFT_JEMALLOC) decides whether
 * jemalloc or the C library serves them. Sized frees let jemalloc skip its
 * size lookup.
 */
#ifndef WEFT_ALLOC_H
#define WEFT_ALLOC_H

#include <stddef.h>

/* Returns size bytes, or NULL. Any thread. */
void *weft__alloc(size_t size);
/* Returns size zeroed bytes, or NULL. Any thread. */
void *weft__zalloc(size_t size);
/* Resizes p from old_size to size bytes, or returns NULL leaving p. Any thread. */
void *weft__realloc(void *p, size_t old_size, size_t size);
/* Frees p, which was allocated with this size. Any thread. */
void weft__free(void *p, size_t size);
#define WEFT_CACHE_LINE 64
/* Returns size zeroed bytes aligned to a cache line, or NULL; freed with
 * weft__aligned_free. For structures with _Alignas(64) members. Any thread. */
void *weft__aligned_zalloc(size_t size);
void weft__aligned_free(void *p, size_t size);
/* "jemalloc" or "libc". Any thread. */
const char *weft__alloc_name(void);

#endif
