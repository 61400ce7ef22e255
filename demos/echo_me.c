/*
 * echo_me: send() hands a value to the suspended yield, which returns it;
 * this generator yields back whatever it is sent. The first next() runs it
 * to its first yield ("priming"), since a generator that has not started
 * has no yield to receive a value.
 *
 * The Python original:
 *
 *     def echo_me():
 *         received = yield
 *         while True:
 *             received = yield received
 *
 *     g = echo_me()
 *     next(g)
 *     print(g.send("hello"))
 *     print(g.send("world"))
 *     g.close()
 */
#include <stdio.h>

#include "weft.h"

static void *echo_me(weft_gen *self, void *arg)
{
    (void)arg;
    void *received;
    if (weft_gen_yield(self, NULL, &received) < 0)
        return NULL;
    while (weft_gen_yield(self, received, &received) == 0)
        ;
    return NULL; /* closed: the yield returned -EPIPE */
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    if (weft_gen_new(&g, echo_me, NULL) < 0)
        return (void *)1;
    void *v;
    weft_gen_next(g, NULL);
    weft_gen_send(g, "hello", &v);
    printf("%s\n", (const char *)v);
    weft_gen_send(g, "world", &v);
    printf("%s\n", (const char *)v);
    int err = weft_gen_close(g);
    weft_gen_free(g);
    return err < 0 ? (void *)1 : NULL;
}

int main(void)
{
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "echo_me: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result ? 1 : 0;
}
