/*
 * inner_outer: yield from (PEP 380). outer delegates to inner: inner's
 * values go straight to outer's caller, and when inner returns, its return
 * value is what yield from gives outer.
 *
 * The Python original:
 *
 *     def inner():
 *         yield 1
 *         yield 2
 *         return "inner done"
 *
 *     def outer():
 *         result = yield from inner()
 *         print("inner returned:", result)
 *         yield 3
 *
 *     for value in outer():
 *         print(value)
 */
#include <stdint.h>
#include <stdio.h>

#include "weft.h"

static void *inner(weft_gen *self, void *arg)
{
    (void)arg;
    weft_gen_yield(self, (void *)1, NULL);
    weft_gen_yield(self, (void *)2, NULL);
    return "inner done";
}

static void *outer(weft_gen *self, void *arg)
{
    (void)arg;
    weft_gen *in;
    if (weft_gen_new(&in, inner, NULL) < 0)
        return NULL;
    void *result;
    int err = weft_gen_yield_from(self, in, &result);
    weft_gen_free(in);
    if (err < 0)
        return NULL;
    printf("inner returned: %s\n", (const char *)result);
    weft_gen_yield(self, (void *)3, NULL);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    if (weft_gen_new(&g, outer, NULL) < 0)
        return (void *)1;
    void *value;
    while (weft_gen_next(g, &value) == 0)
        printf("%d\n", (int)(intptr_t)value);
    weft_gen_free(g);
    return NULL;
}

int main(void)
{
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "inner_outer: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
