/*
 * The WEFT_* configuration table: one row per knob, read by weft_run to
 * apply the environment on top of the caller's struct weft_config and to
 * validate every field, and by WEFT_STATS to print the values in force.
 */
#ifndef WEFT_CONFIG_H
#define WEFT_CONFIG_H

#include <stdio.h>

#include "weft.h"

#define WEFT_STACK_MIN ((size_t)16 * 1024)
#define WEFT_STACK_MAX ((size_t)1024 * 1024 * 1024)
#define WEFT_STACK_DEFAULT ((size_t)64 * 1024)
#define WEFT_INLINE_DEFAULT ((size_t)32 * 1024)

/* Copies *in (or the defaults when in is NULL) to *out, applies the WEFT_*
 * environment variables, and validates every field. On a bad value prints
 * one line naming the variable or field and the value, and returns -EINVAL
 * (or -ENOTSUP for a value this build cannot honour). Any thread. */
int weft__config_resolve(const struct weft_config *in, struct weft_config *out);

/* Writes "NAME=value" for every knob, one per line, to f. Any thread. */
void weft__config_print(const struct weft_config *cfg, FILE *f);

/* Parses a size such as "65536", "64k", "64KiB", "1M" or "1g" into *out.
 * Returns 0, or -EINVAL. Any thread. */
int weft__parse_size(const char *s, size_t *out);

#endif
