/*
 * The return codes weft uses, their names and descriptions (one X-macro
 * list generates weft_strerror and weft_err_name), and the two ways the
 * runtime talks on stderr: weft__say for a report, weft__panic for a broken
 * invariant. Each message is formatted first and written with one write(2),
 * so that lines from several threads do not interleave.
 */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

#define WEFT_ERRORS(X)                                                   \
    X(EPERM, "a suspending call was made outside a task")                \
    X(EINVAL, "invalid argument")                                        \
    X(ENOMEM, "out of memory")                                           \
    X(ESRCH, "the handle no longer names a task")                        \
    X(EDEADLK, "deadlock: the wait could never end")                     \
    X(EBUSY, "busy: already in use")                                     \
    X(ECANCELED, "the calling task was cancelled")                       \
    X(ETIMEDOUT, "the deadline passed")                                  \
    X(EPIPE, "closed: the channel or generator is closed or has finished") \
    X(EPROTO, "the generator yielded while it was being closed")           \
    X(ENOTSUP, "not supported by this build or kernel")                  \
    X(EAGAIN, "would wait: nothing to take or no room right now")         \
    X(EALREADY, "already done: settled, or finished")

const char *weft_err_name(int err)
{
    if (err == 0)
        return "0";
#define NAME(code, text) \
    if (err == -code)    \
        return #code;
    WEFT_ERRORS(NAME)
#undef NAME
    return "E?";
}

const char *weft_strerror(int err)
{
    if (err == 0)
        return "success";
#define TEXT(code, text) \
    if (err == -code)    \
        return text;
    WEFT_ERRORS(TEXT)
#undef TEXT
    return strerror(err < 0 ? -err : err);
}

const char *weft_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
    return STR(WEFT_VERSION_MAJOR) "." STR(WEFT_VERSION_MINOR) "." STR(WEFT_VERSION_PATCH);
}

static void vsay(const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "weft: ");
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + ((size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

/* Out of line and not pure (the volatile asm): every call looks errno up
 * on the thread that makes it. */
__attribute__((noinline)) int weft__errno(void)
{
    __asm__ volatile("");
    return errno;
}

void weft__say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
}

void weft__panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    abort();
}
