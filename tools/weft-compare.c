/*
 * weft-compare: runs one weft program three ways and says why each took
 * what it took.
 *
 *   weft-compare [-n ROUNDS] [-w WORKERS] [-i INTERVAL_US] PROGRAM [ARGS...]
 *
 * Modes, interleaved round by round (serial, gil, parallel, serial, ...):
 *   serial    WEFT_WORKERS=1
 *   gil       WEFT_WORKERS=N WEFT_MODE=gil (one task executing at a time)
 *   parallel  WEFT_WORKERS=N
 * N defaults to the number of CPUs this process may use. Each run gets
 * WEFT_STATS=1, so the runtime accounts its tasks' time; weft-compare reads
 * that line from the program's stderr (the program's own output is
 * dropped, except when it fails, when it is shown). It prints the median
 * wall time of each mode, its ratio to serial, the Karp-Flatt serial
 * fraction of the parallel run, e = (1/S - 1/N) / (1 - 1/N) with S the
 * speedup, and the median split of the tasks' time: running, ready
 * without a worker, waiting for the GIL token, sleeping, blocked, waiting
 * for I/O (descriptors and the blocking-call pool).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SERIAL, GIL, PARALLEL, NMODES };
static const char *const mode_name[NMODES] = {"serial", "gil", "parallel"};
enum { T_WALL, T_RUN, T_READY, T_TOKEN, T_SLEEP, T_WAIT, T_IO, T_HANDOFFS, NFIG };

#define MAX_ROUNDS 101

static double figs[NMODES][NFIG][MAX_ROUNDS];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof s[0]);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Reads the accounting and GIL lines of the runtime's WEFT_STATS output. */
static void parse_stats(const char *err, double *f)
{
    const char *p = strstr(err, "weft: time of the finished tasks:");
    if (p)
        sscanf(p,
               "weft: time of the finished tasks: running %lf ms, ready without a worker %lf "
               "ms, ready waiting for the token %lf ms, sleeping %lf ms, waiting %lf ms, I/O %lf ms",
               &f[T_RUN], &f[T_READY], &f[T_TOKEN], &f[T_SLEEP], &f[T_WAIT], &f[T_IO]);
    p = strstr(err, "weft: gil: switch interval");
    unsigned interval;
    if (p)
        sscanf(p, "weft: gil: switch interval %u us, %lf hand-offs", &interval, &f[T_HANDOFFS]);
}

/* Runs argv once in `mode`; fills f. Returns 0, or -1 if it failed. */
static int run_once(char **argv, int mode, unsigned workers, unsigned interval, double *f)
{
    char errpath[] = "/tmp/weft-compare-XXXXXX";
    int errfd = mkstemp(errpath);
    if (errfd < 0) {
        perror("weft-compare: mkstemp");
        return -1;
    }
    unlink(errpath);
    char wbuf[16], ibuf[16];
    snprintf(wbuf, sizeof wbuf, "%u", mode == SERIAL ? 1u : workers);
    snprintf(ibuf, sizeof ibuf, "%u", interval);
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("weft-compare: fork");
        close(errfd);
        return -1;
    }
    if (pid == 0) {
        setenv("WEFT_WORKERS", wbuf, 1);
        setenv("WEFT_MODE", mode == GIL ? "gil" : "parallel", 1);
        setenv("WEFT_SWITCH_INTERVAL_US", ibuf, 1);
        setenv("WEFT_STATS", "1", 1);
        dup2(errfd, STDOUT_FILENO);
        dup2(errfd, STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "weft-compare: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    f[T_WALL] = now_ms() - t0;
    static char out[1 << 16];
    ssize_t n = pread(errfd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(errfd);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "weft-compare: %s failed in %s mode; its output:\n%s", argv[0],
                mode_name[mode], out);
        return -1;
    }
    parse_stats(out, f);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: weft-compare [-n ROUNDS] [-w WORKERS] [-i INTERVAL_US] PROGRAM "
                    "[ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int rounds = 5;
    unsigned workers = 0, interval = 5000;
    int opt;
    while ((opt = getopt(argc, argv, "+n:w:i:")) != -1) {
        switch (opt) {
        case 'n':
            rounds = atoi(optarg);
            break;
        case 'w':
            workers = (unsigned)atoi(optarg);
            break;
        case 'i':
            interval = (unsigned)atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "weft-compare: -n %d: between 1 and %d rounds\n", rounds, MAX_ROUNDS);
        return 2;
    }
    if (workers == 0) {
        cpu_set_t set;
        workers = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 2;
    }
    if (workers < 2) {
        fprintf(stderr, "weft-compare: -w %u: GIL and parallel runs need 2 workers or more\n",
                workers);
        return 2;
    }
    char **prog = argv + optind;
    fprintf(stderr, "weft-compare: %s, %d rounds of serial / gil / parallel, %u workers\n",
            prog[0], rounds, workers);
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < NMODES; m++) {
            double f[NFIG] = {0};
            if (run_once(prog, m, workers, interval, f) < 0)
                return 1;
            for (int k = 0; k < NFIG; k++)
                figs[m][k][r] = f[k];
            fprintf(stderr, "[%d/%d] %-8s %.1f ms\n", r * NMODES + m + 1, rounds * NMODES,
                    mode_name[m], f[T_WALL]);
        }
    }
    double serial = median(figs[SERIAL][T_WALL], rounds);
    printf("%-9s %10s %7s %10s %10s %10s %10s %10s %10s %9s\n", "mode", "wall_ms", "ratio",
           "running", "ready", "gil_wait", "sleeping", "blocked", "io_wait", "handoffs");
    for (int m = 0; m < NMODES; m++) {
        double w = median(figs[m][T_WALL], rounds);
        printf("%-9s %10.1f %7.3f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %9.0f\n",
               mode_name[m], w, w / serial, median(figs[m][T_RUN], rounds),
               median(figs[m][T_READY], rounds), median(figs[m][T_TOKEN], rounds),
               median(figs[m][T_SLEEP], rounds), median(figs[m][T_WAIT], rounds),
               median(figs[m][T_IO], rounds), median(figs[m][T_HANDOFFS], rounds));
    }
    double par = median(figs[PARALLEL][T_WALL], rounds);
    double speedup = serial / par, p = (double)workers;
    double kf = (1 / speedup - 1 / p) / (1 - 1 / p);
    printf("speedup %.2f on %u workers; Karp-Flatt serial fraction %.3f\n", speedup, workers, kf);
    printf("times are medians over %d rounds, in ms; the task-time columns sum over tasks "
           "(so they can exceed the wall time)\n",
           rounds);
    return 0;
}
