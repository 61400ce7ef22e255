/*
 * A fault-injection shim for the socket calls, loaded with LD_PRELOAD by
 * the stress_io_faults test. On sockets only (other descriptors, such as
 * the test runner's pipes and the poller's eventfd, are left alone), each
 * call fails or comes up short at random, as the kernel is allowed to:
 *
 *   read, recv     EINTR, EAGAIN, or a 1-byte read (each at WEFT_FAULT_PERCENT)
 *   write, send    EINTR, EAGAIN, or a 1-byte write
 *   accept4        EINTR, EAGAIN
 *   connect        the connection is started, then EINTR is reported
 *                  instead of EINPROGRESS (it goes on in the background,
 *                  as an interrupted connect does)
 *
 * WEFT_FAULT_PERCENT (default 3) is each fault's chance in percent;
 * WEFT_FAULT_SEED seeds the per-thread generators. The faults injected
 * are counted by kind (EINTR, EAGAIN, short read, short write) and printed
 * at exit. A run that injected no fault of some kind proves nothing about
 * it, so fault_shim_counts() hands the counts to the test (stress_io finds
 * it with dlsym and fails when a kind is missing while WEFT_FAULT_PERCENT
 * says faults were asked for).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_send)(int, const void *, size_t, int);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

static unsigned percent = 3;
static uint32_t seed = 1;
/* The kinds counted; fault_shim_counts() fills an array indexed by them. */
enum { FAULT_EINTR, FAULT_EAGAIN, FAULT_SHORT_READ, FAULT_SHORT_WRITE, FAULT_KINDS };
static const char *const kind_name[FAULT_KINDS] = {"EINTR", "EAGAIN", "short read",
                                                   "short write"};

static _Atomic unsigned long injected[FAULT_KINDS], calls;
static _Atomic uint32_t next_stream;
static __thread uint32_t rng;

__attribute__((constructor)) static void init(void)
{
    real_read = (ssize_t(*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_recv = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    real_send = (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    real_accept4 = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *p = getenv("WEFT_FAULT_PERCENT");
    if (p)
        percent = (unsigned)strtoul(p, NULL, 10);
    const char *s = getenv("WEFT_FAULT_SEED");
    if (s)
        seed = (uint32_t)strtoul(s, NULL, 10);
}

/* Copies the number of faults injected so far, by kind, into out. Found
 * by the test with dlsym(RTLD_DEFAULT, "fault_shim_counts"). */
__attribute__((visibility("default"))) void fault_shim_counts(unsigned long out[FAULT_KINDS]);

void fault_shim_counts(unsigned long out[FAULT_KINDS])
{
    for (int k = 0; k < FAULT_KINDS; k++)
        out[k] = atomic_load(&injected[k]);
}

__attribute__((destructor)) static void fini(void)
{
    if (!atomic_load(&calls))
        return;
    unsigned long c[FAULT_KINDS];
    fault_shim_counts(c);
    fprintf(stderr, "fault_shim: %lu socket calls (%u%% each fault):", atomic_load(&calls), percent);
    for (int k = 0; k < FAULT_KINDS; k++)
        fprintf(stderr, " %s %lu%s", kind_name[k], c[k], k + 1 < FAULT_KINDS ? "," : "\n");
}

static uint32_t next(void)
{
    if (rng == 0)
        rng = seed * 2654435761u + atomic_fetch_add(&next_stream, 1) * 40503u + 1;
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* 0: no fault; 1: EINTR; 2: EAGAIN; 3: one byte. */
static int pick(int fd, int kinds)
{
    if (!is_socket(fd))
        return 0;
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    uint32_t r = next() % 100;
    int k = r < percent ? 1 : r < 2 * percent ? 2 : r < 3 * percent ? 3 : 0;
    return k > kinds ? 0 : k;
}

/* Counts a fault of `kind` as it is injected (not when picked: a connect
 * that does not report EINPROGRESS, or a 1-byte call cut to one byte, is
 * no fault). */
static void count(int kind)
{
    atomic_fetch_add_explicit(&injected[kind], 1, memory_order_relaxed);
}

static ssize_t fail(int code)
{
    count(code == EINTR ? FAULT_EINTR : FAULT_EAGAIN);
    errno = code;
    return -1;
}

/* The fault for one read or write on fd: -1 with errno set (EINTR or
 * EAGAIN) to fail the call without making it, else 0, with *n cut to one
 * byte for a short transfer. */
static int transfer_fault(int fd, size_t *n, bool reading)
{
    switch (pick(fd, 3)) {
    case 1:
        return (int)fail(EINTR);
    case 2:
        return (int)fail(EAGAIN);
    case 3:
        if (*n > 1) {
            count(reading ? FAULT_SHORT_READ : FAULT_SHORT_WRITE);
            *n = 1;
        }
        return 0;
    default:
        return 0;
    }
}

ssize_t read(int fd, void *buf, size_t n)
{
    return transfer_fault(fd, &n, true) < 0 ? -1 : real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    return transfer_fault(fd, &n, false) < 0 ? -1 : real_write(fd, buf, n);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    return transfer_fault(fd, &n, true) < 0 ? -1 : real_recv(fd, buf, n, flags);
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    return transfer_fault(fd, &n, false) < 0 ? -1 : real_send(fd, buf, n, flags);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    switch (pick(fd, 2)) {
    case 1:
        return (int)fail(EINTR);
    case 2:
        return (int)fail(EAGAIN);
    default:
        return real_accept4(fd, addr, len, flags);
    }
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int k = pick(fd, 1);
    int r = real_connect(fd, addr, len);
    if (k && r < 0 && errno == EINPROGRESS) {
        count(FAULT_EINTR);
        errno = EINTR;
    }
    return r;
}
