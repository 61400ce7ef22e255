/*
 * hello_twice: a generator that yields "hello" twice; next() takes one
 * value at a time, and the third next() finds it finished.
 *
 * The Python original:
 *
 *     def hello_twice():
 *         yield "hello"
 *         yield "hello"
 *
 *     g = hello_twice()
 *     print(next(g))
 *     print(next(g))
 *     try:
 *         next(g)
 *     except StopIteration:
 *         print("StopIteration")
 */
#include <stdio.h>

#include "weft.h"

static void *hello_twice(weft_gen *self, void *arg)
{
    (void)arg;
    weft_gen_yield(self, "hello", NULL);
    weft_gen_yield(self, "hello", NULL);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    if (weft_gen_new(&g, hello_twice, NULL) < 0)
        return (void *)1;
    void *v;
    while (weft_gen_next(g, &v) == 0)
        printf("%s\n", (const char *)v);
    printf("StopIteration\n");
    weft_gen_free(g);
    return NULL;
}

int main(void)
{
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "hello_twice: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
