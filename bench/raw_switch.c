/*
 * The raw register swap with no scheduler, W1's floor: two contexts bounce
 * with weft__ctx_swap 10,000,000 times in all. Prints ns per switch.
 *   usage: raw_switch [SWITCHES]
 */
#include <stdint.h>
#include <sys/mman.h>

#include "arch/context.h"
#include "bench.h"
#include "weft.h"

static void *main_sp, *ctx_sp;
static unsigned long rounds;

static void bounce(void *arg)
{
    (void)arg;
    for (;;)
        weft__ctx_swap(&ctx_sp, main_sp, NULL);
}

int main(int argc, char **argv)
{
    rounds = arg_or(argc, argv, 1, 10000000) / 2;
    size_t len = 64 * 1024;
    char *stack = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stack == MAP_FAILED)
        return 1;
    ctx_sp = weft__ctx_make(stack + len, bounce);
    uint64_t t0 = weft_now();
    for (unsigned long i = 0; i < rounds; i++)
        weft__ctx_swap(&main_sp, ctx_sp, NULL);
    uint64_t t1 = weft_now();
    printf("raw_switch switches=%lu ok=1 figure=%.2f unit=ns/switch maxrss_kib=%ld\n", 2 * rounds,
           (double)(t1 - t0) / (double)(2 * rounds), peak_rss_kib());
    return 0;
}
