/*
 * Machine topology: how many workers to run, which core each one is pinned
 * to, and in which order each one looks at the others when it steals. Built
 * on hwloc; see topo.c for the rules.
 */
#ifndef WEFT_TOPO_H
#define WEFT_TOPO_H

#include <hwloc.h>

/* Why the worker count is what it is. */
enum weft__topo_limit { WEFT_LIMIT_CORES, WEFT_LIMIT_AFFINITY, WEFT_LIMIT_CGROUP, WEFT_LIMIT_CONFIG };

/* "cores", "affinity mask", "cgroup cpu.max" or "WEFT_WORKERS". Any thread. */
const char *weft__topo_limit_name(enum weft__topo_limit l);

/* What weft__topo_init found. Every field is written by weft__topo_init and
 * only read afterwards (by any thread) until weft__topo_term. */
struct weft__topo {
    unsigned nworkers;           /* workers to run */
    enum weft__topo_limit limit; /* what chose nworkers */
    unsigned ncores;             /* cores hwloc found (all, before any limit) */
    unsigned ncores_allowed;     /* cores with at least one PU in the affinity mask */
    double cgroup_cpus;          /* cpu.max quota/period of the tightest ancestor, 0 if unlimited */
    hwloc_bitmap_t allowed;      /* the PUs this process may run on (affinity mask at init) */
    hwloc_bitmap_t *cpuset;      /* [nworkers]: worker w's core, its allowed PUs only */
    unsigned *core;              /* [nworkers]: index of worker w's core among the allowed ones */
    unsigned *order;             /* [nworkers][nworkers - 1]: victims of w, nearest first */
    hwloc_topology_t topo;
};

/* Discovers the machine. requested = 0 means one worker per allowed core,
 * capped by the cgroup CPU quota (the quota rounded up, at least 1); else
 * exactly `requested` workers (limit = WEFT_LIMIT_CONFIG), more than there
 * are cores if so asked: oversubscription on purpose. Returns 0, -ENOMEM,
 * or -ENOSYS when hwloc fails (after one weft__say line saying how). Any
 * thread, before the workers start. */
int weft__topo_init(struct weft__topo *t, unsigned requested);

/* Frees what weft__topo_init made. Any thread, after the workers stopped. */
void weft__topo_term(struct weft__topo *t);

/* Binds the calling thread to worker w's core. Returns 0, -EINVAL for a w
 * out of range, or the -errno of the failed binding. Any thread (usually
 * worker w itself, as it starts). */
int weft__topo_pin(const struct weft__topo *t, unsigned w);

/* Binds the calling thread back to every PU the process was allowed at
 * init. Returns 0 or -errno. Any thread. */
int weft__topo_unpin(const struct weft__topo *t);

/* The victims of worker w, nearest first: workers on w's own core (when
 * workers outnumber cores), then those sharing a cache with it (the
 * smallest cache first), then on the same NUMA node or package, then the
 * rest; ties by increasing worker id after w, wrapping. Returns nworkers - 1
 * worker ids, valid until weft__topo_term. Any thread. */
const unsigned *weft__topo_victims(const struct weft__topo *t, unsigned w);

/* The CPU limit the cgroups of this process impose, in CPUs: the smallest
 * quota/period over the process's cgroup and its ancestors, or 0 when none
 * limits. cgroup v2: the "0::/path" line of proc_self_cgroup, each level's
 * cpu.max under cgroup_root. cgroup v1: the line naming the cpu controller,
 * each level's cpu.cfs_quota_us and cpu.cfs_period_us under
 * <cgroup_root>/cpu (or cpu,cpuacct). Missing or malformed files are
 * skipped. Normally ("/sys/fs/cgroup", "/proc/self/cgroup"); tests point it
 * at a fake tree. Any thread. */
double weft__cgroup_cpu_limit(const char *cgroup_root, const char *proc_self_cgroup);

#endif
