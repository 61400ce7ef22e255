/*
 * Machine topology: how many workers, where each one runs, and whom each
 * one robs first.
 *
 * What it owns: the hwloc topology of the machine, the affinity mask the
 * process started with, each worker's core, and each worker's victim list.
 * It is the one file (with arch/ and poll.c) that touches platform
 * specifics; everything else asks it.
 *
 * How many. One worker per core, not per hardware thread: two workers on
 * SMT siblings compete for one core's execution units, and the sibling
 * left idle serves the kernel and the blocking pool. Three things can lower
 * the count, and t->limit names the one that did, so that WEFT_STATS can
 * say why a 64-core machine runs 4 workers:
 *   - the affinity mask (taskset, numactl, a cpuset cgroup): a core counts
 *     when at least one of its PUs is in the mask (WEFT_LIMIT_AFFINITY);
 *   - the cgroup CPU quota (docker --cpus, Kubernetes limits): a quota of
 *     q CPUs allows ceil(q) workers, at least one (WEFT_LIMIT_CGROUP).
 *     Rounded up, not down: at 1.5 CPUs two workers each get 75% of a CPU,
 *     where one would leave half a CPU unused; the kernel throttles the
 *     excess either way;
 *   - WEFT_WORKERS, which is obeyed exactly, even above the core count
 *     (oversubscription on purpose: tests, or workers that block).
 *
 * Where. Worker w is bound to core w mod ncores_allowed (the allowed cores
 * in hwloc's logical order, so the first workers share the nearest caches),
 * to that core's allowed PUs only. Pinning is weft__topo_pin's job and the
 * caller decides whether to pin at all (WEFT_PIN).
 *
 * Whom to rob. A thief should find work where it is cheapest to move: the
 * victim list of w orders the other workers by the depth of the smallest
 * hwloc object containing both workers' cores, deepest first. That object
 * is the core itself for two workers on one core, a cache (L2, then L3)
 * for cores that share one, a die, group or package for cores on one NUMA
 * node or socket, and the machine for the rest. Equal depths are ordered
 * w+1, w+2, ... wrapping, so that thieves at one level start at different
 * victims. The lists are computed once here (nworkers * (nworkers - 1)
 * ids: 4 MiB at the 1024-worker maximum) so that a steal reads an array.
 *
 * Threads: weft__topo_init and weft__topo_term run alone, before the
 * workers start and after they stop; in between the struct is read-only
 * and any thread may read it or call pin, unpin and victims (hwloc's
 * binding calls only read the topology).
 *
 * Rejected: reading /sys/devices/system/cpu by hand. It would save a
 * dependency but re-derive what hwloc already knows (caches, dies, NUMA
 * nodes, offline and disallowed CPUs), for Linux on x86 only. hwloc does
 * not read cgroup CPU quotas, so those are read here, from files: the
 * function takes its paths as arguments so that a test can hand it a fake
 * tree.
 */
#include "topo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"

const char *weft__topo_limit_name(enum weft__topo_limit l)
{
    switch (l) {
    case WEFT_LIMIT_CORES:
        return "cores";
    case WEFT_LIMIT_AFFINITY:
        return "affinity mask";
    case WEFT_LIMIT_CGROUP:
        return "cgroup cpu.max";
    case WEFT_LIMIT_CONFIG:
        return "WEFT_WORKERS";
    }
    return "?";
}

/* ---- cgroup CPU quota ---------------------------------------------------- */

/* Reads the file at path into buf (NUL-terminated). Returns its length, or
 * -errno; a file too large for buf is -EFBIG. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (err < 0)
        return err;
    if ((size_t)n == size - 1)
        return -EFBIG;
    buf[n] = '\0';
    return n;
}

/* Parses a decimal number at *s (digits only, no sign) and advances *s. */
static bool parse_u64(const char **s, unsigned long long *out)
{
    if (**s < '0' || **s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(*s, &end, 10);
    if (errno == ERANGE)
        return false;
    *s = end;
    *out = v;
    return true;
}

/* True if only white space is left at s. */
static bool at_end(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    return *s == '\0';
}

/* The limit of one cgroup v2 level, from its cpu.max ("max 100000" or
 * "150000 100000"): quota/period in CPUs, or 0 for none or unreadable. */
static double level_v2(const char *dir)
{
    char path[PATH_MAX], buf[128];
    if (snprintf(path, sizeof path, "%s/cpu.max", dir) >= (int)sizeof path)
        return 0;
    if (read_small(path, buf, sizeof buf) < 0)
        return 0;
    const char *s = buf;
    unsigned long long quota, period;
    if (strncmp(s, "max", 3) == 0 || !parse_u64(&s, &quota) || quota == 0)
        return 0;
    if (*s != ' ')
        return 0;
    s++;
    if (!parse_u64(&s, &period) || period == 0 || !at_end(s))
        return 0;
    return (double)quota / (double)period;
}

/* Reads a file holding one decimal number; "-1" (no quota) and anything
 * malformed read as false. */
static bool read_number(const char *dir, const char *name, unsigned long long *out)
{
    char path[PATH_MAX], buf[64];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return false;
    if (read_small(path, buf, sizeof buf) < 0)
        return false;
    const char *s = buf;
    return parse_u64(&s, out) && at_end(s) && *out > 0;
}

/* The limit of one cgroup v1 level, from cpu.cfs_quota_us and
 * cpu.cfs_period_us, or 0. */
static double level_v1(const char *dir)
{
    unsigned long long quota, period;
    if (!read_number(dir, "cpu.cfs_quota_us", &quota) ||
        !read_number(dir, "cpu.cfs_period_us", &period))
        return 0;
    return (double)quota / (double)period;
}

/* The smallest nonzero limit over base+rel and each ancestor up to base
 * itself, as level() reads them; 0 if none limits. */
static double walk(const char *base, const char *rel, double (*level)(const char *))
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s%s", base, rel);
    if (n < 0 || n >= (int)sizeof dir)
        return 0;
    size_t stop = strlen(base);
    double best = 0;
    for (;;) {
        while ((size_t)n > stop && dir[n - 1] == '/')
            dir[--n] = '\0';
        double l = level(dir);
        if (l > 0 && (best == 0 || l < best))
            best = l;
        if ((size_t)n <= stop)
            return best;
        while ((size_t)n > stop && dir[n - 1] != '/')
            n--;
        dir[n] = '\0';
    }
}

static double min_limit(double a, double b)
{
    if (a == 0)
        return b;
    return b == 0 || a < b ? a : b;
}

/* True if the comma-separated list of controllers names the cpu one. */
static bool names_cpu(const char *list, size_t len)
{
    const char *end = list + len;
    while (list < end) {
        const char *comma = memchr(list, ',', (size_t)(end - list));
        size_t n = comma ? (size_t)(comma - list) : (size_t)(end - list);
        if (n == 3 && memcmp(list, "cpu", 3) == 0)
            return true;
        list += n + 1;
    }
    return false;
}

/* True if path has a ".." component: a cgroup outside this cgroup
 * namespace, which the mount under the root cannot show (only its root). */
static bool escapes(const char *path)
{
    for (const char *p = strstr(path, "/.."); p; p = strstr(p + 1, "/.."))
        if (p[3] == '/' || p[3] == '\0')
            return true;
    return false;
}

/* The limit one line of /proc/self/cgroup ("id:controllers:/path") leads
 * to: the v2 line under root (or root/unified, the hybrid layout), the v1
 * line of the cpu controller under root/cpu or root/cpu,cpuacct. */
static double line_limit(const char *root, char *line)
{
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || c2[1] != '/')
        return 0;
    const char *path = c2 + 1;
    if (escapes(path))
        path = "/";
    char base[PATH_MAX];
    double best = 0;
    if (strncmp(line, "0::", 3) == 0) {
        best = walk(root, path, level_v2);
        if (snprintf(base, sizeof base, "%s/unified", root) < (int)sizeof base)
            best = min_limit(best, walk(base, path, level_v2));
        return best;
    }
    if (!names_cpu(c1 + 1, (size_t)(c2 - c1 - 1)))
        return 0;
    static const char *const dirs[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (snprintf(base, sizeof base, "%s/%s", root, dirs[i]) < (int)sizeof base)
            best = min_limit(best, walk(base, path, level_v1));
    return best;
}

double weft__cgroup_cpu_limit(const char *cgroup_root, const char *proc_self_cgroup)
{
    FILE *f = fopen(proc_self_cgroup, "re");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    double best = 0;
    while (getline(&line, &cap, f) > 0)
        best = min_limit(best, line_limit(cgroup_root, line));
    free(line); /* getline's buffer comes from the C library's malloc */
    fclose(f);
    return best;
}

/* ---- discovery ----------------------------------------------------------- */

/* Creates and loads the topology. */
static int load(struct weft__topo *t)
{
    unsigned have = hwloc_get_api_version();
    if ((have >> 16) != (HWLOC_API_VERSION >> 16)) {
        weft__say("hwloc: built for API %#x, running with %#x", (unsigned)HWLOC_API_VERSION,
                  have);
        return -ENOSYS;
    }
    if (hwloc_topology_init(&t->topo) < 0) {
        weft__say("hwloc: topology_init: %s", strerror(errno));
        t->topo = NULL;
        return -ENOSYS;
    }
    if (hwloc_topology_load(t->topo) < 0) {
        weft__say("hwloc: topology_load: %s", strerror(errno));
        return -ENOSYS;
    }
    return 0;
}

/* Sets t->allowed: the process's binding within the topology's allowed
 * PUs. An empty intersection (a mask hwloc does not see) falls back to the
 * allowed PUs. */
static int find_allowed(struct weft__topo *t)
{
    t->allowed = hwloc_bitmap_alloc();
    if (!t->allowed)
        return -ENOMEM;
    if (hwloc_get_cpubind(t->topo, t->allowed, HWLOC_CPUBIND_PROCESS) < 0 &&
        hwloc_get_cpubind(t->topo, t->allowed, HWLOC_CPUBIND_THREAD) < 0) {
        weft__say("hwloc: get_cpubind: %s", strerror(errno));
        return -ENOSYS;
    }
    hwloc_const_cpuset_t all = hwloc_topology_get_allowed_cpuset(t->topo);
    if (hwloc_bitmap_and(t->allowed, t->allowed, all) < 0)
        return -ENOMEM;
    if (hwloc_bitmap_iszero(t->allowed) && hwloc_bitmap_copy(t->allowed, all) < 0)
        return -ENOMEM;
    return 0;
}

/* The type workers are spread over: cores, or PUs where hwloc finds no
 * cores. */
static hwloc_obj_type_t unit_type(hwloc_topology_t topo)
{
    return hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

/* Counts the cores and lists the allowed ones in *cores (ncores_allowed
 * entries, weft__alloc'd with ncores entries). */
static int find_cores(struct weft__topo *t, hwloc_obj_t **cores)
{
    hwloc_obj_type_t type = unit_type(t->topo);
    int n = hwloc_get_nbobjs_by_type(t->topo, type);
    if (n <= 0) {
        weft__say("hwloc: no cores and no PUs in the topology");
        return -ENOSYS;
    }
    t->ncores = (unsigned)n;
    *cores = weft__alloc(t->ncores * sizeof **cores);
    if (!*cores)
        return -ENOMEM;
    for (unsigned i = 0; i < t->ncores; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(t->topo, type, i);
        if (c && hwloc_bitmap_intersects(c->cpuset, t->allowed))
            (*cores)[t->ncores_allowed++] = c;
    }
    if (t->ncores_allowed == 0) {
        weft__say("hwloc: no core intersects the affinity mask");
        return -ENOSYS;
    }
    return 0;
}

/* Sets nworkers and limit from the request, the allowed cores and the
 * cgroup quota. */
static void choose_count(struct weft__topo *t, unsigned requested)
{
    if (requested > 0) {
        t->nworkers = requested;
        t->limit = WEFT_LIMIT_CONFIG;
        return;
    }
    t->nworkers = t->ncores_allowed;
    t->limit = t->ncores_allowed < t->ncores ? WEFT_LIMIT_AFFINITY : WEFT_LIMIT_CORES;
    double q = t->cgroup_cpus;
    if (q <= 0 || q >= (double)t->nworkers)
        return;
    unsigned cap = (unsigned)q;
    if ((double)cap < q)
        cap++;
    if (cap == 0)
        cap = 1;
    if (cap < t->nworkers) {
        t->nworkers = cap;
        t->limit = WEFT_LIMIT_CGROUP;
    }
}

/* Gives each worker its core and that core's allowed PUs. */
static int place(struct weft__topo *t, hwloc_obj_t *cores)
{
    t->cpuset = weft__zalloc(t->nworkers * sizeof *t->cpuset);
    t->core = weft__alloc(t->nworkers * sizeof *t->core);
    if (!t->cpuset || !t->core)
        return -ENOMEM;
    for (unsigned w = 0; w < t->nworkers; w++) {
        t->core[w] = w % t->ncores_allowed;
        t->cpuset[w] = hwloc_bitmap_dup(cores[t->core[w]]->cpuset);
        if (!t->cpuset[w] || hwloc_bitmap_and(t->cpuset[w], t->cpuset[w], t->allowed) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Fills worker w's victim list: for each depth, deepest first, the workers
 * whose common ancestor with w is at that depth, in order w+1, w+2, ... */
static void order_victims(struct weft__topo *t, hwloc_obj_t *cores, unsigned w, int *depth)
{
    unsigned n = t->nworkers;
    hwloc_obj_t mine = cores[t->core[w]];
    int deepest = 0;
    for (unsigned v = 0; v < n; v++) {
        hwloc_obj_t a = hwloc_get_common_ancestor_obj(t->topo, mine, cores[t->core[v]]);
        depth[v] = a->depth;
        if (v != w && depth[v] > deepest)
            deepest = depth[v];
    }
    unsigned *out = t->order + (size_t)w * (n - 1);
    unsigned k = 0;
    for (int d = deepest; d >= 0; d--)
        for (unsigned i = 1; i < n; i++) {
            unsigned v = (w + i) % n;
            if (depth[v] == d)
                out[k++] = v;
        }
    if (k != n - 1)
        weft__panic("topo: worker %u has %u victims, not %u", w, k, n - 1);
}

/* Computes every worker's victim list. */
static int order_all(struct weft__topo *t, hwloc_obj_t *cores)
{
    size_t n = t->nworkers;
    /* One spare entry, so that a single worker's empty list is not NULL. */
    t->order = weft__alloc((n * (n - 1) + 1) * sizeof *t->order);
    int *depth = weft__alloc(n * sizeof *depth);
    if (!t->order || !depth) {
        if (depth)
            weft__free(depth, n * sizeof *depth);
        return -ENOMEM;
    }
    for (unsigned w = 0; w < t->nworkers; w++)
        order_victims(t, cores, w, depth);
    weft__free(depth, n * sizeof *depth);
    return 0;
}

int weft__topo_init(struct weft__topo *t, unsigned requested)
{
    memset(t, 0, sizeof *t);
    hwloc_obj_t *cores = NULL;
    int err = load(t);
    if (err == 0)
        err = find_allowed(t);
    if (err == 0)
        err = find_cores(t, &cores);
    if (err == 0) {
        t->cgroup_cpus = weft__cgroup_cpu_limit("/sys/fs/cgroup", "/proc/self/cgroup");
        choose_count(t, requested);
        err = place(t, cores);
    }
    if (err == 0)
        err = order_all(t, cores);
    if (cores)
        weft__free(cores, t->ncores * sizeof *cores);
    if (err < 0)
        weft__topo_term(t);
    return err;
}

void weft__topo_term(struct weft__topo *t)
{
    size_t n = t->nworkers;
    if (t->order)
        weft__free(t->order, (n * (n - 1) + 1) * sizeof *t->order);
    if (t->cpuset) {
        for (size_t w = 0; w < n; w++)
            hwloc_bitmap_free(t->cpuset[w]);
        weft__free(t->cpuset, n * sizeof *t->cpuset);
    }
    if (t->core)
        weft__free(t->core, n * sizeof *t->core);
    hwloc_bitmap_free(t->allowed);
    if (t->topo)
        hwloc_topology_destroy(t->topo);
    memset(t, 0, sizeof *t);
}

/* ---- binding and victims ------------------------------------------------- */

/* Binds the calling thread to set. */
static int bind_thread(const struct weft__topo *t, hwloc_const_cpuset_t set)
{
    errno = 0;
    if (hwloc_set_cpubind(t->topo, set, HWLOC_CPUBIND_THREAD) < 0)
        return errno ? -errno : -EINVAL;
    return 0;
}

int weft__topo_pin(const struct weft__topo *t, unsigned w)
{
    if (w >= t->nworkers)
        return -EINVAL;
    return bind_thread(t, t->cpuset[w]);
}

int weft__topo_unpin(const struct weft__topo *t)
{
    return bind_thread(t, t->allowed);
}

const unsigned *weft__topo_victims(const struct weft__topo *t, unsigned w)
{
    if (w >= t->nworkers)
        weft__panic("topo: victims of worker %u of %u", w, t->nworkers);
    return t->order + (size_t)w * (t->nworkers - 1);
}
