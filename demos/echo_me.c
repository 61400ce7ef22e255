/*
 * echo_me: send() resumes a suspended yield and makes it return the value
 * sent. The generator yields a greeting first, then each value it is sent
 * back to the sender. The first resume is a plain next(): a generator that
 * has not started has no suspended yield to receive a value.
 *
 * The Python original:
 *
 *     def echo_me():
 *         msg_first = yield 'Ready to echo'
 *         msg_second = yield msg_first
 *         yield msg_second
 *
 *     gen = echo_me()
 *     print(next(gen))
 *     print(gen.send('Hello'))
 *     print(gen.send('There!'))
 */
#include <stdio.h>

#include "weft.h"

static void *echo_me(weft_gen *self, void *arg)
{
    (void)arg;
    void *msg_first, *msg_second;
    /* A yield returns -EPIPE when the generator is closed: clean up (there
     * is nothing to clean here) and return. */
    if (weft_gen_yield(self, "Ready to echo", &msg_first) < 0)
        return NULL;
    if (weft_gen_yield(self, msg_first, &msg_second) < 0)
        return NULL;
    weft_gen_yield(self, msg_second, NULL);
    return NULL;
}

/* Resumes g (with `send`, or a plain next when it is NULL) and prints the
 * value it yields; -1 with the reason on stderr when it yields none. */
static int resume_and_print(weft_gen *g, const char *send)
{
    void *v = NULL;
    int err = send ? weft_gen_send(g, (void *)send, &v) : weft_gen_next(g, &v);
    if (err != 0) {
        fprintf(stderr, "echo_me: %s: %s\n", send ? "send" : "next",
                err == WEFT_GEN_DONE ? "the body returned" : weft_strerror(err));
        return -1;
    }
    printf("%s\n", (const char *)v);
    return 0;
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_gen *g;
    int err = weft_gen_new(&g, echo_me, NULL);
    if (err < 0) {
        fprintf(stderr, "echo_me: weft_gen_new: %s\n", weft_strerror(err));
        return (void *)1;
    }
    int bad = resume_and_print(g, NULL) < 0 || resume_and_print(g, "Hello") < 0 ||
              resume_and_print(g, "There!") < 0;
    /* Suspended at its last yield: close runs the body to its end. */
    err = weft_gen_close(g);
    weft_gen_free(g);
    if (err < 0)
        fprintf(stderr, "echo_me: weft_gen_close: %s\n", weft_strerror(err));
    return bad || err < 0 ? (void *)1 : NULL;
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
