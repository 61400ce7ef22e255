/*
 * Race windows, widened on demand. A build configured with WEFT_RACE_HOOKS
 * (CMake option, off by default; never in a release) compiles each
 * WEFT_RACE_POINT(name) into a sleep of $WEFT_RACE_<name>_US microseconds
 * when that variable is set, and into nothing otherwise. A point sits where
 * an OS preemption would open a window that only a rare interleaving
 * reaches; tests/race_windows.c sets one, arranges the interleaving around
 * it, and checks the outcome. Other builds compile every point to nothing.
 */
#ifndef WEFT_RACE_H
#define WEFT_RACE_H

#ifdef WEFT_RACE_HOOKS
#include <stdlib.h>
#include <time.h>

static inline void weft__race_point(const char *var)
{
    const char *s = getenv(var);
    if (!s)
        return;
    long us = atol(s);
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}
#define WEFT_RACE_POINT(name) weft__race_point("WEFT_RACE_" #name "_US")
#else
#define WEFT_RACE_POINT(name) ((void)0)
#endif

#endif
