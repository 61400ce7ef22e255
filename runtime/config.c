/*
 * Configuration: one table, one row per knob (as Go's dbgvars). A row says
 * the knob's environment variable, where its value lives in struct
 * weft_config, how to parse it and which values are valid. Adding a knob is
 * adding a row (and a field); weft__config_resolve and weft__config_print
 * need no change.
 *
 * Order of precedence: the defaults (weft_config_default), then what the
 * program set in its struct, then the environment. Every value, wherever it
 * came from, is validated; a bad one stops weft_run with -EINVAL and one
 * line naming the variable (or the field) and the value. Nothing is clamped:
 * a value out of range is an error, not a silent adjustment. The one
 * adjustment made is documented: a stack size is rounded up to whole pages.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

enum kind { K_UINT, K_SIZE, K_BOOL, K_ENUM, K_PATH };

struct knob {
    const char *env;     /* the environment variable */
    const char *field;   /* the struct weft_config field */
    enum kind kind;
    size_t offset;       /* of the field in struct weft_config */
    unsigned long long min, max; /* valid range for K_UINT and K_SIZE */
    const char *const *names;    /* K_ENUM: value i is names[i] */
    const char *help;
};

static const char *const mode_names[] = {"parallel", "gil", NULL};
static const char *const guard_names[] = {"auto", "marker", "mprotect", NULL};
static const char *const steal_names[] = {"half", "one", NULL};
static const char *const victim_names[] = {"random", "roundrobin", "topology", NULL};

#define OFF(f) offsetof(struct weft_config, f)

static const struct knob knobs[] = {
    {"WEFT_WORKERS", "workers", K_UINT, OFF(workers), 0, 1024, NULL,
     "worker threads; 0 = one per core"},
    {"WEFT_MODE", "mode", K_ENUM, OFF(mode), 0, 0, mode_names, "parallel or gil"},
    {"WEFT_SWITCH_INTERVAL_US", "switch_interval_us", K_UINT, OFF(switch_interval_us), 1,
     10000000, NULL, "GIL switch interval in microseconds"},
    {"WEFT_STACK_SIZE", "stack_size", K_SIZE, OFF(stack_size), WEFT_STACK_MIN, WEFT_STACK_MAX,
     NULL, "bytes of a task's stack (k, M, G suffixes)"},
    {"WEFT_GUARD", "guard", K_ENUM, OFF(guard), 0, 0, guard_names,
     "stack guard: auto, marker or mprotect"},
    {"WEFT_PIN", "pin", K_BOOL, OFF(pin), 0, 1, NULL, "1 = bind each worker to its core"},
    {"WEFT_STATS", "stats", K_BOOL, OFF(stats), 0, 1, NULL, "1 = print counters at exit"},
    {"WEFT_TRACE", "trace_path", K_PATH, OFF(trace_path), 0, 0, NULL, "trace file path"},
    {"WEFT_STEAL", "steal", K_ENUM, OFF(steal), 0, 0, steal_names,
     "a thief takes half of a victim's ring, or one task"},
    {"WEFT_VICTIM", "victim", K_ENUM, OFF(victim), 0, 0, victim_names,
     "whom a thief tries first: random, roundrobin, or topology (nearest core first)"},
    {"WEFT_LIFO", "lifo", K_BOOL, OFF(lifo), 0, 1, NULL,
     "1 = a worker runs the task it made runnable last first (bounded); 0 = oldest first"},
    {"WEFT_NEXT_SLOT", "next_slot", K_BOOL, OFF(next_slot), 0, 1, NULL,
     "1 = a task woken by the running task runs next on its worker, no idle worker woken"},
    {"WEFT_HUGE_PAGES", "huge_pages", K_BOOL, OFF(huge_pages), 0, 1, NULL,
     "1 = task slots in transparent huge pages where the kernel gives them (madvise)"},
    {"WEFT_INLINE", "inline_min", K_SIZE, OFF(inline_min), 0, WEFT_STACK_MAX, NULL,
     "stack bytes a joiner needs left to run a not-yet-started child inline; 0 = never"},
    {"WEFT_BLOCKING_THREADS", "blocking_threads", K_UINT, OFF(blocking_threads), 0, 4096, NULL,
     "most threads of the blocking-call pool; 0 = min(32, cores + 4)"},
};

void weft_config_default(struct weft_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->workers = 0;
    cfg->mode = WEFT_PARALLEL;
    cfg->switch_interval_us = 5000;
    cfg->stack_size = WEFT_STACK_DEFAULT;
    cfg->guard = WEFT_GUARD_AUTO;
    cfg->steal = WEFT_STEAL_HALF;
    cfg->victim = WEFT_VICTIM_RANDOM;
    cfg->lifo = 1;
    cfg->next_slot = 1;
    cfg->huge_pages = 1;
    cfg->inline_min = WEFT_INLINE_DEFAULT;
}

static unsigned long long get(const struct weft_config *cfg, const struct knob *k)
{
    const char *p = (const char *)cfg + k->offset;
    switch (k->kind) {
    case K_SIZE:
        return *(const size_t *)(const void *)p;
    case K_UINT:
        return *(const unsigned *)(const void *)p;
    case K_BOOL:
        return (unsigned long long)*(const int *)(const void *)p;
    case K_ENUM:
        return (unsigned long long)*(const int *)(const void *)p;
    case K_PATH:
        return 0;
    }
    return 0;
}

static void set(struct weft_config *cfg, const struct knob *k, unsigned long long v)
{
    char *p = (char *)cfg + k->offset;
    switch (k->kind) {
    case K_SIZE:
        *(size_t *)(void *)p = (size_t)v;
        break;
    case K_UINT:
        *(unsigned *)(void *)p = (unsigned)v;
        break;
    case K_BOOL:
    case K_ENUM:
        *(int *)(void *)p = (int)v;
        break;
    case K_PATH:
        break;
    }
}

int weft__parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (shift && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "b") == 0))
        end += strlen(end);
    if (*end != '\0')
        return -EINVAL;
    if (shift && v > (ULLONG_MAX >> shift))
        return -EINVAL;
    v <<= shift;
    if (v > SIZE_MAX)
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

static int parse_uint(const char *s, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

/* Parses the environment value s for knob k into *cfg, or says why not. */
static int apply_env(struct weft_config *cfg, const struct knob *k, const char *s)
{
    unsigned long long v = 0;
    switch (k->kind) {
    case K_UINT:
        if (parse_uint(s, &v) < 0) {
            weft__say("%s=\"%s\": not a number", k->env, s);
            return -EINVAL;
        }
        break;
    case K_SIZE: {
        size_t z;
        if (weft__parse_size(s, &z) < 0) {
            weft__say("%s=\"%s\": not a size", k->env, s);
            return -EINVAL;
        }
        v = z;
        break;
    }
    case K_BOOL:
        if (strcmp(s, "0") == 0 || strcmp(s, "1") == 0) {
            v = (unsigned long long)(s[0] - '0');
            break;
        }
        weft__say("%s=\"%s\": not 0 or 1", k->env, s);
        return -EINVAL;
    case K_ENUM: {
        size_t i = 0;
        while (k->names[i] && strcmp(k->names[i], s) != 0)
            i++;
        if (!k->names[i]) {
            weft__say("%s=\"%s\": not one of %s%s%s%s%s", k->env, s, k->names[0],
                      k->names[1] ? ", " : "", k->names[1] ? k->names[1] : "",
                      k->names[1] && k->names[2] ? ", " : "",
                      k->names[1] && k->names[2] ? k->names[2] : "");
            return -EINVAL;
        }
        v = i;
        break;
    }
    case K_PATH:
        if (*s == '\0') {
            weft__say("%s=\"\": an empty path", k->env);
            return -EINVAL;
        }
        *(const char **)(void *)((char *)cfg + k->offset) = s;
        return 0;
    }
    if ((k->kind == K_UINT || k->kind == K_SIZE) && (v < k->min || v > k->max)) {
        weft__say("%s=\"%s\": out of range [%llu, %llu]", k->env, s, k->min, k->max);
        return -EINVAL;
    }
    set(cfg, k, v);
    return 0;
}

/* Checks the value of knob k that the program set in its struct. */
static int validate_field(const struct weft_config *cfg, const struct knob *k)
{
    unsigned long long v = get(cfg, k);
    bool bad = false;
    if (k->kind == K_UINT || k->kind == K_SIZE)
        bad = v < k->min || v > k->max;
    else if (k->kind == K_BOOL)
        bad = v > 1;
    else if (k->kind == K_ENUM) {
        size_t n = 0;
        while (k->names[n])
            n++;
        bad = v >= n;
    }
    if (bad) {
        weft__say("cfg.%s=%lld: out of range for %s", k->field, (long long)v, k->env);
        return -EINVAL;
    }
    return 0;
}

int weft__config_resolve(const struct weft_config *in, struct weft_config *out)
{
    if (in)
        *out = *in;
    else
        weft_config_default(out);
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        int err = validate_field(out, &knobs[i]);
        if (err < 0)
            return err;
    }
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        const char *s = getenv(knobs[i].env);
        if (!s)
            continue;
        int err = apply_env(out, &knobs[i], s);
        if (err < 0)
            return err;
    }
    return 0;
}

void weft__config_print(const struct weft_config *cfg, FILE *f)
{
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        const struct knob *k = &knobs[i];
        unsigned long long v = get(cfg, k);
        if (k->kind == K_ENUM)
            fprintf(f, "weft:   %-24s %s\n", k->env, k->names[v]);
        else if (k->kind == K_PATH) {
            const char *p = *(const char *const *)(const void *)((const char *)cfg + k->offset);
            fprintf(f, "weft:   %-24s %s\n", k->env, p ? p : "(none)");
        } else
            fprintf(f, "weft:   %-24s %llu\n", k->env, v);
    }
}
