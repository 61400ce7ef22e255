/*
 * Suite "topo": the cgroup CPU quota read from fake cgroup trees, and on
 * this machine the worker count, the reason for it, the victim lists and
 * pinning. Each test runs in its own forked process, so pinning and
 * affinity changes do not leak between tests.
 */
#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "topo.h"
#include "util.h"

/* ---- fake cgroup trees --------------------------------------------------- */

static char tree[64];

/* Makes an empty directory for a fake tree (in the forked child). */
static void make_tree(void)
{
    snprintf(tree, sizeof tree, "/tmp/weft_topo_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tree));
}

/* Writes content to tree/rel, making the directories on the way. */
static void put(const char *rel, const char *content)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    for (char *p = path + strlen(tree) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
}

/* weft__cgroup_cpu_limit on the fake tree: its "cg" directory is the
 * cgroup root, its "self" file is /proc/self/cgroup. */
static double limit(void)
{
    char root[128], self[128];
    snprintf(root, sizeof root, "%s/cg", tree);
    snprintf(self, sizeof self, "%s/self", tree);
    return weft__cgroup_cpu_limit(root, self);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(void)
{
    ck_assert_int_eq(nftw(tree, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

START_TEST(cgroup_v2_max_is_unlimited)
{
    make_tree();
    put("self", "0::/app/job\n");
    put("cg/app/job/cpu.max", "max 100000\n");
    put("cg/app/cpu.max", "max 100000\n");
    ck_assert_double_eq(limit(), 0);
    remove_tree();
}
END_TEST

START_TEST(cgroup_v2_leaf_quota_is_quota_over_period)
{
    make_tree();
    put("self", "0::/app/job\n");
    put("cg/app/job/cpu.max", "150000 100000\n");
    put("cg/app/cpu.max", "max 100000\n");
    ck_assert_double_eq_tol(limit(), 1.5, 1e-9);
    remove_tree();
}
END_TEST

START_TEST(cgroup_v2_tighter_ancestor_wins)
{
    make_tree();
    put("self", "0::/app/job\n");
    put("cg/app/job/cpu.max", "max 100000\n");
    put("cg/app/cpu.max", "50000 100000\n");
    ck_assert_double_eq_tol(limit(), 0.5, 1e-9);
    put("cg/app/job/cpu.max", "20000 100000\n");
    ck_assert_double_eq_tol(limit(), 0.2, 1e-9);
    remove_tree();
}
END_TEST

START_TEST(cgroup_v2_namespace_root_level_counts)
{
    make_tree();
    put("self", "0::/\n");
    put("cg/cpu.max", "300000 100000\n");
    ck_assert_double_eq_tol(limit(), 3.0, 1e-9);
    remove_tree();
}
END_TEST

START_TEST(cgroup_missing_or_malformed_files_are_ignored)
{
    make_tree();
    /* No self file, then a self file without a usable line. */
    ck_assert_double_eq(limit(), 0);
    put("self", "garbage\n\n7:cpu\n0::relative\n");
    ck_assert_double_eq(limit(), 0);
    /* The leaf is malformed, its parent has no cpu.max, the root limits. */
    put("self", "0::/a/b/c\n");
    put("cg/cpu.max", "400000 100000\n");
    const char *bad[] = {"",           "max",           "150000",         "150000 0\n",
                         "0 100000\n", "-5 100000\n",   "150000 100000 x", "abc def\n",
                         "1.5 1\n",    "150000  100000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        put("cg/a/b/c/cpu.max", bad[i]);
        ck_assert_msg(limit() == 4.0, "cpu.max \"%s\" gave %g", bad[i], limit());
    }
    char huge[1024];
    memset(huge, '9', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    put("cg/a/b/c/cpu.max", huge);
    ck_assert_double_eq(limit(), 4.0);
    remove_tree();
}
END_TEST

START_TEST(cgroup_path_escaping_the_namespace_reads_the_root_only)
{
    make_tree();
    put("self", "0::/../../elsewhere\n");
    put("cg/cpu.max", "250000 100000\n");
    ck_assert_double_eq_tol(limit(), 2.5, 1e-9);
    remove_tree();
}
END_TEST

START_TEST(cgroup_v1_cfs_quota_over_period)
{
    make_tree();
    put("self", "5:memory:/m\n4:cpu,cpuacct:/app/job\n0::/\n");
    put("cg/cpu,cpuacct/app/job/cpu.cfs_quota_us", "-1\n");
    put("cg/cpu,cpuacct/app/job/cpu.cfs_period_us", "100000\n");
    ck_assert_double_eq(limit(), 0);
    put("cg/cpu,cpuacct/app/cpu.cfs_quota_us", "250000\n");
    put("cg/cpu,cpuacct/app/cpu.cfs_period_us", "100000\n");
    ck_assert_double_eq_tol(limit(), 2.5, 1e-9);
    /* A v2 limit elsewhere (hybrid layout) is also seen; the smaller wins. */
    put("cg/unified/cpu.max", "120000 100000\n");
    ck_assert_double_eq_tol(limit(), 1.2, 1e-9);
    remove_tree();
}
END_TEST

/* ---- this machine -------------------------------------------------------- */

/* The cores of t with a PU in the calling thread's affinity mask, counted
 * here without weft__topo's help. */
static unsigned cores_in_affinity(const struct weft__topo *t)
{
    cpu_set_t mask;
    ck_assert_int_eq(sched_getaffinity(0, sizeof mask, &mask), 0);
    hwloc_obj_type_t type =
        hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
    unsigned n = 0;
    hwloc_obj_t c = NULL;
    while ((c = hwloc_get_next_obj_by_type(t->topo, type, c)) != NULL) {
        bool in = false;
        unsigned cpu;
        hwloc_bitmap_foreach_begin(cpu, c->cpuset)
            in = in || (cpu < CPU_SETSIZE && CPU_ISSET(cpu, &mask));
        hwloc_bitmap_foreach_end();
        n += in;
    }
    return n;
}

/* Asserts each victim list of t holds every other worker exactly once. */
static void assert_victims_are_permutations(const struct weft__topo *t)
{
    unsigned n = t->nworkers;
    unsigned char *seen = calloc(n, 1);
    ck_assert_ptr_nonnull(seen);
    for (unsigned w = 0; w < n; w++) {
        memset(seen, 0, n);
        const unsigned *v = weft__topo_victims(t, w);
        ck_assert_ptr_nonnull(v);
        for (unsigned i = 0; i + 1 < n; i++) {
            ck_assert_uint_lt(v[i], n);
            ck_assert_uint_ne(v[i], w);
            ck_assert_msg(!seen[v[i]], "worker %u: victim %u twice", w, v[i]);
            seen[v[i]] = 1;
        }
    }
    free(seen);
}

START_TEST(default_count_is_allowed_cores_or_cgroup_cap)
{
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 0), 0);
    unsigned allowed = cores_in_affinity(&t);
    double q = weft__cgroup_cpu_limit("/sys/fs/cgroup", "/proc/self/cgroup");
    ck_assert_double_eq(t.cgroup_cpus, q);
    ck_assert_uint_eq(t.ncores_allowed, allowed);
    ck_assert_uint_le(t.ncores_allowed, t.ncores);
    unsigned want = allowed;
    if (q > 0 && q < allowed) {
        unsigned cap = (unsigned)q + ((double)(unsigned)q < q);
        want = cap < allowed ? (cap ? cap : 1) : allowed;
    }
    ck_assert_uint_ge(t.nworkers, 1);
    ck_assert_uint_eq(t.nworkers, want);
    if (want < allowed)
        ck_assert_int_eq(t.limit, WEFT_LIMIT_CGROUP);
    else
        ck_assert_int_eq(t.limit, allowed < t.ncores ? WEFT_LIMIT_AFFINITY : WEFT_LIMIT_CORES);
    for (unsigned w = 0; w < t.nworkers; w++)
        ck_assert(!hwloc_bitmap_iszero(t.cpuset[w]));
    assert_victims_are_permutations(&t);
    printf("topo: %u workers (limit: %s), %u cores, %u allowed, cgroup quota %g\n", t.nworkers,
           weft__topo_limit_name(t.limit), t.ncores, t.ncores_allowed, t.cgroup_cpus);
    weft__topo_term(&t);
    ck_assert_ptr_null(t.topo);
}
END_TEST

START_TEST(affinity_mask_limits_the_count)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    ck_assert_int_eq(sched_getaffinity(0, sizeof one, &one), 0);
    int first = 0;
    while (!CPU_ISSET(first, &one))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 0), 0);
    ck_assert_uint_eq(t.ncores_allowed, 1);
    ck_assert_uint_eq(t.nworkers, 1);
    ck_assert_int_eq(t.limit, t.ncores > 1 ? WEFT_LIMIT_AFFINITY : WEFT_LIMIT_CORES);
    ck_assert(hwloc_bitmap_isset(t.cpuset[0], (unsigned)first));
    ck_assert_int_eq(hwloc_bitmap_weight(t.cpuset[0]), 1);
    ck_assert_ptr_nonnull(weft__topo_victims(&t, 0));
    weft__topo_term(&t);
}
END_TEST

START_TEST(requested_count_is_obeyed_beyond_the_cores)
{
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 8), 0);
    ck_assert_uint_eq(t.nworkers, 8);
    ck_assert_int_eq(t.limit, WEFT_LIMIT_CONFIG);
    for (unsigned w = 0; w < 8; w++) {
        ck_assert(!hwloc_bitmap_iszero(t.cpuset[w]));
        ck_assert(hwloc_bitmap_isequal(t.cpuset[w], t.cpuset[w % t.ncores_allowed]));
    }
    assert_victims_are_permutations(&t);
    weft__topo_term(&t);
    ck_assert_int_eq(weft__topo_init(&t, 1), 0);
    ck_assert_uint_eq(t.nworkers, 1);
    ck_assert_ptr_nonnull(weft__topo_victims(&t, 0));
    weft__topo_term(&t);
}
END_TEST

START_TEST(victims_on_the_same_core_come_first)
{
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 0), 0);
    unsigned cores = t.ncores_allowed;
    weft__topo_term(&t);
    /* Two workers per allowed core: w's core mate is w + cores (mod n). */
    ck_assert_int_eq(weft__topo_init(&t, 2 * cores), 0);
    unsigned n = t.nworkers;
    for (unsigned w = 0; w < n; w++)
        ck_assert_uint_eq(weft__topo_victims(&t, w)[0], (w + cores) % n);
    assert_victims_are_permutations(&t);
    weft__topo_term(&t);
}
END_TEST

START_TEST(victim_ties_go_by_id_after_w)
{
    /* One core only: every worker shares it, so every list is one tie. */
    cpu_set_t one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof one, &one), 0);
    int first = 0;
    while (!CPU_ISSET(first, &one))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 5), 0);
    for (unsigned w = 0; w < 5; w++)
        for (unsigned i = 0; i < 4; i++)
            ck_assert_uint_eq(weft__topo_victims(&t, w)[i], (w + 1 + i) % 5);
    weft__topo_term(&t);
}
END_TEST

START_TEST(victims_follow_the_cache_hierarchy)
{
    /* A made-up machine (hwloc reads HWLOC_SYNTHETIC instead of this one):
     * 2 packages of 2 L3s of 2 L2s of 2 cores of 2 PUs. */
    setenv("HWLOC_SYNTHETIC", "pack:2 l3:2 l2:2 core:2 pu:2", 1);
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 16), 0);
    ck_assert_uint_eq(t.ncores, 16);
    ck_assert_int_eq(hwloc_bitmap_weight(t.cpuset[0]), 2);
    static const unsigned want[][15] = {
        /* w0: its L2 mate, its L3, its package, the other package. */
        {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {3, 0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
        {4, 6, 7, 0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15},
        {12, 14, 15, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 6, 7},
    };
    static const unsigned ws[] = {0, 2, 5, 13};
    for (size_t i = 0; i < 4; i++)
        for (unsigned k = 0; k < 15; k++)
            ck_assert_msg(weft__topo_victims(&t, ws[i])[k] == want[i][k],
                          "worker %u: victim %u is %u, not %u", ws[i], k,
                          weft__topo_victims(&t, ws[i])[k], want[i][k]);
    weft__topo_term(&t);
    /* Two workers per core: the core mate first, then the L2, ... */
    ck_assert_int_eq(weft__topo_init(&t, 32), 0);
    static const unsigned w0[] = {16, 1, 17, 2, 3, 18, 19};
    for (unsigned k = 0; k < 7; k++)
        ck_assert_uint_eq(weft__topo_victims(&t, 0)[k], w0[k]);
    assert_victims_are_permutations(&t);
    weft__topo_term(&t);
}
END_TEST

/* Asserts the calling thread's affinity mask lies within set. */
static void assert_mask_within(hwloc_const_cpuset_t set, bool equal)
{
    cpu_set_t mask;
    ck_assert_int_eq(sched_getaffinity(0, sizeof mask, &mask), 0);
    ck_assert_int_gt(CPU_COUNT(&mask), 0);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &mask))
            ck_assert_msg(hwloc_bitmap_isset(set, (unsigned)cpu), "cpu %d outside the set", cpu);
        else if (equal)
            ck_assert_msg(!hwloc_bitmap_isset(set, (unsigned)cpu), "cpu %d missing", cpu);
}

START_TEST(pin_binds_the_thread_to_its_core_and_unpin_restores)
{
    struct weft__topo t;
    ck_assert_int_eq(weft__topo_init(&t, 0), 0);
    ck_assert_int_eq(weft__topo_pin(&t, 0), 0);
    assert_mask_within(t.cpuset[0], true);
    unsigned last = t.nworkers - 1;
    ck_assert_int_eq(weft__topo_pin(&t, last), 0);
    assert_mask_within(t.cpuset[last], true);
    ck_assert_int_eq(weft__topo_pin(&t, t.nworkers), -EINVAL);
    ck_assert_int_eq(weft__topo_unpin(&t), 0);
    assert_mask_within(t.allowed, true);
    weft__topo_term(&t);
}
END_TEST

START_TEST(limit_names)
{
    ck_assert_str_eq(weft__topo_limit_name(WEFT_LIMIT_CORES), "cores");
    ck_assert_str_eq(weft__topo_limit_name(WEFT_LIMIT_AFFINITY), "affinity mask");
    ck_assert_str_eq(weft__topo_limit_name(WEFT_LIMIT_CGROUP), "cgroup cpu.max");
    ck_assert_str_eq(weft__topo_limit_name(WEFT_LIMIT_CONFIG), "WEFT_WORKERS");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("topo");
    TCase *cg = tcase_create("cgroup");
    tcase_add_test(cg, cgroup_v2_max_is_unlimited);
    tcase_add_test(cg, cgroup_v2_leaf_quota_is_quota_over_period);
    tcase_add_test(cg, cgroup_v2_tighter_ancestor_wins);
    tcase_add_test(cg, cgroup_v2_namespace_root_level_counts);
    tcase_add_test(cg, cgroup_missing_or_malformed_files_are_ignored);
    tcase_add_test(cg, cgroup_path_escaping_the_namespace_reads_the_root_only);
    tcase_add_test(cg, cgroup_v1_cfs_quota_over_period);
    suite_add_tcase(s, cg);
    TCase *m = tcase_create("machine");
    tcase_add_test(m, default_count_is_allowed_cores_or_cgroup_cap);
    tcase_add_test(m, affinity_mask_limits_the_count);
    tcase_add_test(m, requested_count_is_obeyed_beyond_the_cores);
    tcase_add_test(m, victims_on_the_same_core_come_first);
    tcase_add_test(m, victim_ties_go_by_id_after_w);
    tcase_add_test(m, victims_follow_the_cache_hierarchy);
    tcase_add_test(m, pin_binds_the_thread_to_its_core_and_unpin_restores);
    tcase_add_test(m, limit_names);
    suite_add_tcase(s, m);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
