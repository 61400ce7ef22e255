/*
 * hello_twice: a generator runs only when asked. Each next() runs its body
 * up to the next yield, so the "Gonna say hello" lines appear only as the
 * values are asked for, each just before its value; the third next()
 * finds the body returned.
 *
 * The Python original:
 *
 *     def hello_twice():
 *         print('Gonna say hello')
 *         yield 'Hello'
 *         print('Gonna say hello again')
 *         yield 'Hello again!'
 *
 *     gen = hello_twice()
 *     print(next(gen))
 *     print(next(gen))
 *     next(gen)          # raises StopIteration
 */
#include <stdio.h>

#include "weft.h"

static void *hello_twice(weft_gen *self, void *arg)
{
    (void)arg;
    printf("Gonna say hello\n");
    if (weft_gen_yield(self, "Hello", NULL) < 0)
        return NULL; /* closed */
    printf("Gonna say hello again\n");
    weft_gen_yield(self, "Hello again!", NULL);
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    int err = weft_gen_new(&g, hello_twice, NULL);
    if (err < 0) {
        fprintf(stderr, "hello_twice: weft_gen_new: %s\n", weft_strerror(err));
        return (void *)1;
    }
    void *v;
    int r;
    while ((r = weft_gen_next(g, &v)) == 0)
        printf("%s\n", (const char *)v);
    weft_gen_free(g);
    if (r != WEFT_GEN_DONE) {
        fprintf(stderr, "hello_twice: weft_gen_next: %s\n", weft_strerror(r));
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
        fprintf(stderr, "hello_twice: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
