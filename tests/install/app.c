/*
 * The program install_and_use builds against an installed weft: spawns a
 * task, joins it, checks its result and that the header and the library
 * it was linked with are the same version; opens and closes an HTTP
 * listener, so that a static link needs http-parser too. Black-box: the
 * installed headers only.
 */
#include <stdio.h>
#include <string.h>
#include <weft.h>
#include <weft/http.h>

static void *child(void *arg)
{
    return (void *)((long)arg * 2);
}

static void *main_task(void *arg)
{
    (void)arg;
    weft_task *t;
    void *r;
    if (weft_spawn(&t, child, (void *)21L) < 0 || weft_join(t, &r) < 0)
        return (void *)1;
    uint16_t port = 0;
    int lfd = weft_http_listen("127.0.0.1:0", &port);
    if (lfd < 0 || port == 0 || weft_close(lfd) < 0)
        return (void *)1;
    return (long)r == 42 ? NULL : (void *)1;
}

int main(void)
{
    char header[32];
    snprintf(header, sizeof header, "%d.%d.%d", WEFT_VERSION_MAJOR, WEFT_VERSION_MINOR,
             WEFT_VERSION_PATCH);
    if (strcmp(header, weft_version()) != 0) {
        fprintf(stderr, "app: weft.h is %s but the library is %s\n", header, weft_version());
        return 1;
    }
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "app: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    if (result != NULL) {
        fprintf(stderr, "app: the child's result was not 42\n");
        return 1;
    }
    printf("weft %s: spawned, joined, got 42\n", weft_version());
    return 0;
}
