/*
 * inner_outer: yield from (PEP 380). outer yields one value of its own,
 * then delegates to inner: inner's values go straight to outer's caller,
 * and when inner returns, its return value is what yield from gives outer.
 * The post's example stops after inner's three values; the fifth next()
 * here (and the return in inner) shows that last part too.
 *
 * The Python original (the lines marked + are not in the post):
 *
 *     def inner():
 *         yield 'INNER'
 *         yield 'GENERATOR'
 *         yield 'YEAH!'
 *         return 'inner done'                      # +
 *
 *     def outer():
 *         yield 'Get ready for ...'
 *         result = yield from inner()
 *         print('inner returned:', result)         # +
 *
 *     gen = outer()
 *     print(next(gen))
 *     print(next(gen), next(gen), next(gen))
 *     next(gen)          # + prints the line above, raises StopIteration
 */
#include <stdio.h>

#include "weft.h"

static void *inner(weft_gen *self, void *arg)
{
    (void)arg;
    static const char *const words[] = {"INNER", "GENERATOR", "YEAH!"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (weft_gen_yield(self, (void *)words[i], NULL) < 0)
            return NULL; /* closed */
    return "inner done";
}

static void *outer(weft_gen *self, void *arg)
{
    (void)arg;
    if (weft_gen_yield(self, "Get ready for ...", NULL) < 0)
        return NULL;
    weft_gen *in;
    int err = weft_gen_new(&in, inner, NULL);
    if (err < 0)
        return WEFT_ERR(err);
    void *result;
    err = weft_gen_yield_from(self, in, &result);
    weft_gen_free(in);
    if (err < 0)
        return WEFT_ERR(err);
    printf("inner returned: %s\n", (const char *)result);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    int err = weft_gen_new(&g, outer, NULL);
    if (err < 0) {
        fprintf(stderr, "inner_outer: weft_gen_new: %s\n", weft_strerror(err));
        return (void *)1;
    }
    void *v[3] = {0};
    err = weft_gen_next(g, &v[0]);
    if (err == 0)
        printf("%s\n", (const char *)v[0]);
    for (size_t i = 0; err == 0 && i < 3; i++)
        err = weft_gen_next(g, &v[i]);
    if (err == 0)
        printf("%s %s %s\n", (const char *)v[0], (const char *)v[1], (const char *)v[2]);
    void *out = NULL;
    if (err == 0)
        err = weft_gen_next(g, &out);
    weft_gen_free(g);
    if (err != WEFT_GEN_DONE || weft_err_of(out)) {
        fprintf(stderr, "inner_outer: %s\n",
                err < 0 ? weft_strerror(err)
                : err == 0 ? "outer yielded more than expected"
                           : weft_strerror(weft_err_of(out)));
        return (void *)1;
    }
    printf("StopIteration\n");
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
