/*
 * lesson: the post's lesson in one run. The same two jobs, each done one
 * task at a time, concurrently under a GIL, and in parallel:
 *
 *   I/O   20 tasks that each wait 50 ms (weft_sleep, as a request waits
 *         for its reply): about 1 s one at a time
 *   CPU   N tasks that compute: a 64-bit LCG as in demos/gil_cpu, 640M
 *         steps in all, with a weft_checkpoint() every 4,096 steps (where
 *         a task gives the GIL up when asked); every result is checked
 *
 * each three ways, one weft_run per way:
 *
 *   one at a time   1 worker; each task awaited before the next is spawned
 *                       for job in jobs: await job()
 *   under the GIL   N workers, WEFT_GIL: every task spawned, then joined;
 *                   one task executes at a time
 *                       await asyncio.gather(*[job() for job in jobs])
 *   in parallel     N workers: the same, with no GIL
 *
 * N is the number of workers weft picks (one per core) but at least 2, or
 * -w N. The I/O job speeds up as much under the GIL as in parallel: a task
 * that waits holds no core and no token, so concurrency is enough. The CPU
 * job does not: it needs parallelism. The program prints the times as a
 * table, a conclusion per job drawn from the numbers, and a timeline of
 * the CPU job's two concurrent runs, read back from their WEFT_TRACE files:
 * one row per worker, one letter per task where it ran. --svg FILE draws
 * the same traces with tools/weft-trace-svg.
 *
 *   usage: lesson [--quick] [-w N] [--svg FILE]
 *
 * --quick makes the jobs several times smaller (for the tests). The
 * lesson picks the mode, the workers and the trace of each run itself, so
 * WEFT_MODE, WEFT_WORKERS and WEFT_TRACE are ignored (with a note); the
 * other WEFT_* variables apply. Exit status 1 if a run failed or a result
 * was wrong, 2 for a bad option.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

#define LCG_A 6364136223846793005ULL
#define LCG_C 1442695040888963407ULL
#define CHUNK 4096

#define MAX_WORKERS 1024
#define COLS 60     /* timeline width */
#define MAX_ROWS 16 /* workers drawn; the rest are counted */

static const char letters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static char letter_of(unsigned i)
{
    return i < sizeof letters - 1 ? letters[i] : '#';
}

/* ---- the jobs ----------------------------------------------------------- */

enum job_kind { IO_JOB, CPU_JOB, NJOBS };
enum way { ONE_AT_A_TIME, UNDER_GIL, IN_PARALLEL, NWAYS };
static const char *const way_name[NWAYS] = {"one at a time", "under the GIL", "in parallel"};

struct job {
    const char *name;
    unsigned ntasks;
    uint64_t wait_ns; /* I/O: each task's wait */
    uint64_t steps;   /* CPU: each task's LCG steps */
    weft_fn fn;
};

struct task_arg {
    const struct job *job;
    uint64_t seed;
    uint64_t result;
    char name[2]; /* the task's letter, its name in the trace */
};

static void *io_task(void *arg)
{
    struct task_arg *t = arg;
    int err = weft_sleep(t->job->wait_ns);
    return err < 0 ? WEFT_ERR(err) : NULL;
}

static void *cpu_task(void *arg)
{
    struct task_arg *t = arg;
    uint64_t x = t->seed, steps = t->job->steps;
    for (uint64_t done = 0; done < steps;) {
        uint64_t n = steps - done < CHUNK ? steps - done : CHUNK;
        for (uint64_t i = 0; i < n; i++)
            x = x * LCG_A + LCG_C;
        done += n;
        int err = weft_checkpoint();
        if (err < 0)
            return WEFT_ERR(err);
    }
    t->result = x;
    return NULL;
}

/* x after n steps of the LCG from x0, without taking them: n steps are one
 * affine map x -> a*x + c, composed from the map's powers of two. */
static uint64_t lcg_jump(uint64_t x0, uint64_t n)
{
    uint64_t a = 1, c = 0, pa = LCG_A, pc = LCG_C;
    for (; n; n >>= 1) {
        if (n & 1) {
            a *= pa;
            c = c * pa + pc;
        }
        pc = (pa + 1) * pc;
        pa *= pa;
    }
    return a * x0 + c;
}

/* ---- one run: one weft_run ----------------------------------------------- */

struct run {
    const struct job *job;
    enum way way;
    struct task_arg *args;
    weft_task **tasks;
    double seconds;
    int err;
};

static void *run_main(void *arg)
{
    struct run *r = arg;
    unsigned n = r->job->ntasks, spawned = 0;
    uint64_t t0 = weft_now();
    int err = 0;
    for (unsigned i = 0; i < n && !err; i++) {
        struct weft_task_opts opts = {.name = r->args[i].name};
        err = weft_spawn_opts(&r->tasks[i], r->job->fn, &r->args[i], &opts);
        if (err == 0)
            spawned++;
        /* One at a time: await each task before the next is created. */
        if (err == 0 && r->way == ONE_AT_A_TIME) {
            void *res;
            err = weft_join(r->tasks[i], &res);
            if (err == 0)
                err = weft_err_of(res);
            r->tasks[i] = NULL;
        }
    }
    for (unsigned i = 0; i < spawned; i++) {
        if (!r->tasks[i])
            continue;
        void *res;
        int e = weft_join(r->tasks[i], &res);
        if (e == 0)
            e = weft_err_of(res);
        if (!err)
            err = e;
    }
    r->seconds = (double)(weft_now() - t0) / 1e9;
    r->err = err;
    return NULL;
}

/* Runs the job one way; returns its time in seconds, or exits on failure.
 * *checked counts the CPU results found right. */
static double run_job(const struct job *job, enum way way, unsigned workers, const char *trace,
                      uint64_t *handoffs, unsigned *checked)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    cfg.workers = way == ONE_AT_A_TIME ? 1 : workers;
    cfg.mode = way == UNDER_GIL ? WEFT_GIL : WEFT_PARALLEL;
    cfg.trace_path = trace;
    struct run r = {.job = job, .way = way};
    r.args = calloc(job->ntasks, sizeof *r.args);
    r.tasks = calloc(job->ntasks, sizeof *r.tasks);
    if (!r.args || !r.tasks) {
        fprintf(stderr, "lesson: out of memory\n");
        exit(1);
    }
    for (unsigned i = 0; i < job->ntasks; i++)
        r.args[i] = (struct task_arg){.job = job, .seed = i + 1, .name = {letter_of(i), '\0'}};
    int err = weft_run(&cfg, run_main, &r, NULL);
    if (err == 0)
        err = r.err;
    if (err < 0) {
        fprintf(stderr, "lesson: the %s job %s: %s (%s)\n", job->name, way_name[way],
                weft_strerror(err), weft_err_name(err));
        exit(1);
    }
    if (handoffs) {
        struct weft_stats st;
        *handoffs = weft_stats_get(&st) == 0 ? st.gil_handoffs : 0;
    }
    if (job->fn == cpu_task) {
        for (unsigned i = 0; i < job->ntasks; i++) {
            uint64_t want = lcg_jump(r.args[i].seed, job->steps);
            if (r.args[i].result != want) {
                fprintf(stderr, "lesson: the %s job %s: task %c's LCG result is %llu, not %llu\n",
                        job->name, way_name[way], letter_of(i),
                        (unsigned long long)r.args[i].result, (unsigned long long)want);
                exit(1);
            }
            (*checked)++;
        }
    }
    free(r.args);
    free(r.tasks);
    return r.seconds;
}

static void *noop_main(void *arg)
{
    (void)arg;
    return NULL;
}

/* The workers weft picks by itself (one per core), from a run that does
 * nothing. */
static unsigned default_workers(void)
{
    struct weft_config cfg;
    weft_config_default(&cfg);
    int err = weft_run(&cfg, noop_main, NULL, NULL);
    struct weft_stats st;
    if (err < 0 || weft_stats_get(&st) < 0) {
        fprintf(stderr, "lesson: weft_run: %s\n", weft_strerror(err < 0 ? err : -ESRCH));
        exit(1);
    }
    return st.workers;
}

/* ---- the timeline, from a WEFT_TRACE file -------------------------------- */

struct span {
    double t0, t1; /* microseconds from the start of the run */
    unsigned worker;
    char letter;
};

struct trace {
    struct span *spans;
    size_t n;
    unsigned workers;
    double end;
};

/* The number after "key": in line, or -1. */
static double field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

/* Reads the run spans of the job's tasks (those named by one letter; main
 * is left out) from a file runtime/trace.c wrote: one event per line. */
static void read_trace(const char *path, struct trace *tr)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "lesson: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    memset(tr, 0, sizeof *tr);
    size_t cap = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "\"thread_name\"")) {
            double tid = field(line, "\"tid\":");
            if (tid >= 0 && tid < MAX_WORKERS && (unsigned)tid + 1 > tr->workers)
                tr->workers = (unsigned)tid + 1;
        }
        if (!strstr(line, "\"cat\":\"run\"") || strncmp(line, "{\"name\":\"", 9) != 0 ||
            line[10] != '"')
            continue;
        double ts = field(line, "\"ts\":"), dur = field(line, "\"dur\":"),
               tid = field(line, "\"tid\":");
        if (ts < 0 || dur < 0 || tid < 0 || tid >= MAX_WORKERS)
            continue;
        if (tr->n == cap) {
            cap = cap ? 2 * cap : 256;
            struct span *s = realloc(tr->spans, cap * sizeof *s);
            if (!s) {
                fprintf(stderr, "lesson: out of memory\n");
                exit(1);
            }
            tr->spans = s;
        }
        tr->spans[tr->n++] = (struct span){ts, ts + dur, (unsigned)tid, line[9]};
        if (ts + dur > tr->end)
            tr->end = ts + dur;
    }
    fclose(f);
    if (tr->workers == 0 || tr->n == 0) {
        fprintf(stderr, "lesson: %s: no task ran in this trace\n", path);
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median length of a run span: how long a task keeps a worker. */
static double median_span(const struct trace *tr)
{
    double *d = malloc(tr->n * sizeof *d);
    if (!d)
        return tr->end;
    for (size_t i = 0; i < tr->n; i++)
        d[i] = tr->spans[i].t1 - tr->spans[i].t0;
    qsort(d, tr->n, sizeof *d, cmp_double);
    double m = d[tr->n / 2];
    free(d);
    return m;
}

/* The most tasks of the job that ran at the same instant. */
struct edge {
    double t;
    int delta; /* +1: a span starts, -1: one ends */
};

static int cmp_edge(const void *a, const void *b)
{
    const struct edge *x = a, *y = b;
    /* An end sorts before a start at the same time: a hand-off. */
    return x->t < y->t ? -1 : x->t > y->t ? 1 : x->delta - y->delta;
}

static unsigned most_at_once(const struct trace *tr)
{
    struct edge *e = malloc(2 * tr->n * sizeof *e);
    if (!e)
        return 0;
    /* The file's times have three decimals: spans that touch may seem to
     * overlap by a nanosecond or two. */
    for (size_t i = 0; i < tr->n; i++) {
        e[2 * i] = (struct edge){tr->spans[i].t0 + 0.002, +1};
        e[2 * i + 1] = (struct edge){tr->spans[i].t1, -1};
    }
    qsort(e, 2 * tr->n, sizeof *e, cmp_edge);
    int now = 0, most = 0;
    for (size_t i = 0; i < 2 * tr->n; i++) {
        now += e[i].delta;
        if (now > most)
            most = now;
    }
    free(e);
    return (unsigned)most;
}

/* The largest 1, 2 or 5 times a power of ten that is at most x (x >= 1). */
static double nice_floor(double x)
{
    double p = 1;
    while (p * 10 <= x)
        p *= 10;
    return x >= 5 * p ? 5 * p : x >= 2 * p ? 2 * p : p;
}

/* One row: for each column, the letter of the task that ran there for at
 * least half the column, else '.'. */
static void draw_row(const struct trace *tr, unsigned worker, double col, char *row)
{
    for (int c = 0; c < COLS; c++) {
        double lo = c * col, hi = lo + col, best = 0;
        char best_letter = '.';
        double by[sizeof letters + 1] = {0};
        for (size_t i = 0; i < tr->n; i++) {
            const struct span *s = &tr->spans[i];
            if (s->worker != worker || s->t1 <= lo || s->t0 >= hi)
                continue;
            const char *p = strchr(letters, s->letter);
            size_t k = p ? (size_t)(p - letters) : sizeof letters - 1;
            by[k] += (s->t1 < hi ? s->t1 : hi) - (s->t0 > lo ? s->t0 : lo);
            if (by[k] > best) {
                best = by[k];
                best_letter = s->letter;
            }
        }
        row[c] = best >= col / 2 ? best_letter : '.';
    }
    row[COLS] = '\0';
}

/* "A, B" for two tasks (there are at least two), "A-F" for more. */
static void task_letters(unsigned n, char *buf, size_t len)
{
    snprintf(buf, len, n <= 2 ? "%c, %c" : "%c-%c", letter_of(0), letter_of(n - 1));
}

static void draw_panel(const char *title, const struct trace *tr, double col)
{
    char row[COLS + 1];
    printf("  %s:\n", title);
    for (unsigned w = 0; w < tr->workers && w < MAX_ROWS; w++) {
        draw_row(tr, w, col, row);
        printf("    worker %-2u %s\n", w, row);
    }
    if (tr->workers > MAX_ROWS)
        printf("    (%u more workers)\n", tr->workers - MAX_ROWS);
}

/* The CPU job's run under the GIL above its parallel run, on one time
 * axis. A column is a fifth of the time a task typically kept a worker
 * under the GIL (about one switch interval), so that the hand-offs show,
 * and at most a sixtieth of the longer run. */
static void draw_timeline(const struct trace *gil, const struct trace *par, unsigned ntasks,
                          uint64_t handoffs)
{
    double end = gil->end > par->end ? gil->end : par->end;
    double col = median_span(gil) / 5;
    if (col > end / COLS)
        col = end / COLS;
    col = col >= 1 ? nice_floor(col) : 1;
    char who[16];
    task_letters(ntasks, who, sizeof who);
    printf("The CPU job's first %g ms, one column = %g ms (%s: the tasks; '.': none):\n",
           COLS * col / 1e3, col / 1e3, who);
    draw_panel(way_name[UNDER_GIL], gil, col);
    draw_panel(way_name[IN_PARALLEL], par, col);
    unsigned g = most_at_once(gil), p = most_at_once(par);
    printf("At most %u task%s ran at once under the GIL (the token changed hands %llu times),\n"
           "%u in parallel.\n",
           g, g == 1 ? "" : "s", (unsigned long long)handoffs, p);
}

/* ---- the SVG picture: tools/weft-trace-svg ------------------------------- */

/* The drawing tool: the source tree's, or one on PATH (it installs to
 * bin/). NULL if there is none. */
static const char *find_svg_tool(char *buf, size_t len)
{
#ifdef LESSON_TRACE_SVG
    if (access(LESSON_TRACE_SVG, X_OK) == 0)
        return LESSON_TRACE_SVG;
#endif
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(buf, len, "%.*s/weft-trace-svg", (int)n, path) < len &&
            access(buf, X_OK) == 0)
            return buf;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Runs the tool on the two traces, its output to fd (closed). 0 or -1. */
static int write_svg(const char *tool, int fd, const char *gil, const char *par)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        execl(tool, tool, gil, par, (char *)NULL);
        fprintf(stderr, "lesson: %s: %s\n", tool, strerror(errno));
        _exit(127);
    }
    close(fd);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "lesson: --svg: %s failed\n", tool);
        return -1;
    }
    return 0;
}

/* ---- the table ----------------------------------------------------------- */

static void print_cell(double s, double base)
{
    char x[16];
    snprintf(x, sizeof x, "x%.1f", base / s);
    printf("  %6.3f s %6s", s, x);
}

/* What the numbers say, with g and p the speedups under the GIL and in
 * parallel. */
static void conclude(const char *job, double g, double p)
{
    const double some = 1.25; /* less is no speedup */
    if (g < some && p < some)
        printf("  %s: no speedup either way (x%.1f, x%.1f): a busy machine, or one core?\n", job,
               g, p);
    else if (g >= 0.8 * p)
        printf("  %s: concurrency is enough: x%.1f under the GIL, as in parallel (x%.1f).\n", job,
               g, p);
    else if (g < some)
        printf("  %s: it needs parallelism: no speedup under the GIL (x%.1f), x%.1f in parallel.\n",
               job, g, p);
    else
        printf("  %s: concurrency helps (x%.1f under the GIL), parallelism more (x%.1f).\n", job, g,
               p);
}

/* ---- main ---------------------------------------------------------------- */

static char tmp_dir[4096], gil_trace[4200], par_trace[4200];
static int keep_traces;

static void remove_traces(void)
{
    if (!tmp_dir[0] || keep_traces)
        return;
    unlink(gil_trace);
    unlink(par_trace);
    rmdir(tmp_dir);
}

static void usage(void)
{
    fprintf(stderr, "usage: lesson [--quick] [-w N] [--svg FILE]\n"
                    "  --quick     smaller jobs, for tests\n"
                    "  -w N        workers of the concurrent runs (2-%d; default: one per core, "
                    "at least 2)\n"
                    "  --svg FILE  also draw the CPU job's timeline as an SVG picture\n",
            MAX_WORKERS);
    exit(2);
}

int main(int argc, char **argv)
{
    int quick = 0;
    unsigned workers = 0;
    const char *svg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (!strcmp(a, "-w")) {
            char *end;
            errno = 0;
            unsigned long n = v ? strtoul(v, &end, 10) : 0;
            if (!v || errno || end == v || *end || v[0] == '-' || n < 2 || n > MAX_WORKERS) {
                fprintf(stderr, "lesson: -w %s: not a number of workers from 2 to %d (the lesson "
                                "compares 1 worker with several)\n",
                        v ? v : "", MAX_WORKERS);
                return 2;
            }
            workers = (unsigned)n;
            i++;
        } else if (!strcmp(a, "--svg") && v && *v) {
            svg = v;
            i++;
        } else {
            if (strcmp(a, "-h") && strcmp(a, "--help"))
                fprintf(stderr, "lesson: %s: %s\n", a,
                        !strcmp(a, "--svg") ? "needs a file name" : "not an option");
            usage();
        }
    }
    static const char *const ours[] = {"WEFT_MODE", "WEFT_WORKERS", "WEFT_TRACE"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (getenv(ours[i])) {
            fprintf(stderr, "lesson: %s=%s ignored: the lesson sets it for each run\n", ours[i],
                    getenv(ours[i]));
            unsetenv(ours[i]);
        }
    }
    char tool_buf[4200];
    const char *tool = svg ? find_svg_tool(tool_buf, sizeof tool_buf) : NULL;
    int svg_fd = -1; /* opened now, so that a bad path fails before the runs */
    if (svg && (svg_fd = open(svg, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "lesson: --svg %s: %s\n", svg, strerror(errno));
        return 1;
    }
    if (!workers) {
        workers = default_workers();
        if (workers < 2)
            workers = 2;
    }

    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/weft-lesson-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "lesson: cannot make a directory for the traces (%s): %s\n", tmp_dir,
                strerror(errno));
        return 1;
    }
    snprintf(gil_trace, sizeof gil_trace, "%s/gil.json", tmp_dir);
    snprintf(par_trace, sizeof par_trace, "%s/parallel.json", tmp_dir);
    atexit(remove_traces);

    uint64_t cpu_total = quick ? 48000000ULL : 640000000ULL;
    struct job jobs[NJOBS] = {
        [IO_JOB] = {.name = "I/O", .ntasks = quick ? 10 : 20, .wait_ns = (quick ? 20 : 50) * WEFT_MSEC,
                    .fn = io_task},
        [CPU_JOB] = {.name = "CPU", .ntasks = workers, .steps = cpu_total / workers, .fn = cpu_task},
    };
    char label[NJOBS][64];
    snprintf(label[IO_JOB], sizeof label[0], "I/O: %u tasks wait %llu ms each", jobs[IO_JOB].ntasks,
             (unsigned long long)(jobs[IO_JOB].wait_ns / WEFT_MSEC));
    snprintf(label[CPU_JOB], sizeof label[0], "CPU: %u tasks of %.0fM LCG steps",
             jobs[CPU_JOB].ntasks, (double)jobs[CPU_JOB].steps / 1e6);

    printf("The lesson: the same jobs one task at a time, concurrently under a GIL,\n"
           "and in parallel (%u workers).\n\n",
           workers);
    fflush(stdout);
    double secs[NJOBS][NWAYS];
    uint64_t handoffs = 0;
    unsigned checked = 0;
    for (int j = 0; j < NJOBS; j++) {
        for (int w = 0; w < NWAYS; w++) {
            int traced = j == CPU_JOB && w != ONE_AT_A_TIME;
            const char *trace = traced ? (w == UNDER_GIL ? gil_trace : par_trace) : NULL;
            secs[j][w] = run_job(&jobs[j], (enum way)w, workers, trace,
                                 j == CPU_JOB && w == UNDER_GIL ? &handoffs : NULL, &checked);
        }
    }

    printf("  %-30s %13s %16s %16s\n", "job", way_name[0], way_name[1], way_name[2]);
    for (int j = 0; j < NJOBS; j++) {
        printf("  %-30s      %6.3f s", label[j], secs[j][ONE_AT_A_TIME]);
        print_cell(secs[j][UNDER_GIL], secs[j][ONE_AT_A_TIME]);
        print_cell(secs[j][IN_PARALLEL], secs[j][ONE_AT_A_TIME]);
        printf("\n");
    }
    printf("\n");
    for (int j = 0; j < NJOBS; j++)
        conclude(jobs[j].name, secs[j][ONE_AT_A_TIME] / secs[j][UNDER_GIL],
                 secs[j][ONE_AT_A_TIME] / secs[j][IN_PARALLEL]);
    printf("\n  one at a time: 1 worker, each task awaited before the next starts.\n"
           "  under the GIL: %u workers, every task started at once, one executing at a time.\n"
           "  in parallel:   %u workers, every task started at once, all executing.\n\n",
           workers, workers);

    struct trace gil, par;
    read_trace(gil_trace, &gil);
    read_trace(par_trace, &par);
    draw_timeline(&gil, &par, jobs[CPU_JOB].ntasks, handoffs);
    free(gil.spans);
    free(par.spans);
    printf("LCG results checked: %u of %u right.\n", checked, 3 * jobs[CPU_JOB].ntasks);

    if (!svg) {
        printf("(--svg FILE draws the timeline as a picture.)\n");
        return 0;
    }
    if (!tool) {
        close(svg_fd);
        unlink(svg);
        keep_traces = 1;
        fprintf(stderr, "lesson: --svg: weft-trace-svg is not in the source tree's tools/ nor on "
                        "PATH; the traces are kept, to draw them:\n"
                        "  weft-trace-svg %s %s > %s\n",
                gil_trace, par_trace, svg);
        return 1;
    }
    if (write_svg(tool, svg_fd, gil_trace, par_trace) < 0)
        return 1;
    printf("The timeline as a picture: %s\n", svg);
    return 0;
}
