/*
 * hello_server: the W9 server. GET / answers "Hello, World!" (13 bytes,
 * text/plain), on connections that stay open; anything else is 404, and
 * a method other than GET or HEAD 405.
 *
 *     hello_server [ADDR [SECONDS]]
 *
 * ADDR defaults to 127.0.0.1:8080 (port 0: any free port). It prints the
 * address it listens on, then serves until killed, or for SECONDS when
 * given: a timer task then cancels the serving task, which closes every
 * connection and returns, so that scripts can run it bounded.
 *
 * The asyncio counterpart, with aiohttp:
 *
 *     async def hello(request):
 *         return web.Response(text="Hello, World!")
 *
 *     app = web.Application()
 *     app.add_routes([web.get("/", hello)])
 *     web.run_app(app, host="127.0.0.1", port=8080)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"
#include "weft/http.h"

static int hello(const struct weft_http_request *req, struct weft_http_response *res, void *arg)
{
    (void)arg;
    if (strcmp(req->path, "/") != 0)
        return weft_http_respond(res, 404, "text/plain", "Not Found\n", 10);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        int err = weft_http_response_header(res, "Allow", "GET, HEAD");
        return err < 0 ? err : weft_http_respond(res, 405, "text/plain", "Method Not Allowed\n", 19);
    }
    return weft_http_respond(res, 200, "text/plain", "Hello, World!", 13);
}

struct lifetime {
    weft_task *server; /* the task to cancel */
    double seconds;
};

static void *stop_later(void *arg)
{
    struct lifetime *l = arg;
    int err = weft_sleep((uint64_t)(l->seconds * 1e9));
    if (err == 0)
        (void)weft_cancel(l->server);
    return NULL;
}

static const char *addr = "127.0.0.1:8080";
static double seconds;

static void *main_task(void *arg)
{
    (void)arg;
    uint16_t port;
    int lfd = weft_http_listen(addr, &port);
    if (lfd < 0) {
        fprintf(stderr, "hello_server: %s: %s\n", addr, weft_strerror(lfd));
        return WEFT_ERR(lfd);
    }
    printf("hello_server: listening on port %u\n", (unsigned)port);
    fflush(stdout);
    struct lifetime l = {weft_self(), seconds};
    weft_task *timer = NULL;
    if (seconds > 0 && weft_spawn(&timer, stop_later, &l) < 0)
        timer = NULL;
    int err = weft_http_serve_fd(lfd, hello, NULL, NULL);
    if (timer) {
        (void)weft_cancel(timer); /* if serving ended some other way */
        (void)weft_join(timer, NULL);
    }
    if (err != -ECANCELED) {
        fprintf(stderr, "hello_server: %s\n", weft_strerror(err));
        return WEFT_ERR(err);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 3 || (argc > 1 && strcmp(argv[1], "-h") == 0)) {
        fprintf(stderr, "usage: hello_server [ADDR [SECONDS]]\n");
        return 2;
    }
    if (argc > 1)
        addr = argv[1];
    if (argc > 2)
        seconds = strtod(argv[2], NULL);
    void *result;
    int err = weft_run(NULL, main_task, NULL, &result);
    if (err < 0) {
        fprintf(stderr, "hello_server: weft_run: %s\n", weft_strerror(err));
        return 1;
    }
    return result == NULL ? 0 : 1;
}
