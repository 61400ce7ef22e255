/*
 * What every weft benchmark prints: one line of key=value pairs, ending
 * with `figure=` (the workload's own measure, see docs/bench.md) and the
 * process's peak resident set in KiB, which bench/run.sh collects.
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

static inline long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static inline unsigned long arg_or(int argc, char **argv, int i, unsigned long dflt)
{
    return argc > i ? strtoul(argv[i], NULL, 10) : dflt;
}

#endif
