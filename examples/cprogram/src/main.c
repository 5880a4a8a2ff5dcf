/* main.c - sortcheck: generate data sets with a fixed seed, sort them with
 * every algorithm, check that all results agree with the C library, exercise
 * the hash functions and binary searches, and print a deterministic report
 * that ends with "ALL OK" (exit status 0) or "FAILED" (exit status 1). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "hashes.h"
#include "prng.h"
#include "registry.h"
#include "report.h"
#include "search.h"
#include "stats.h"
#include "util.h"
#include "verify.h"

#define SORTCHECK_VERSION "1.0"
#define SEED UINT64_C(0x5EED0000C0FFEE)
#define SEARCH_PROBES 200
#define FLIP_PROBES 5

static void check_prng(report_t *rep)
{
    prng_t a, b;
    uint32_t lo = UINT32_MAX, hi = 0;
    int same = 1;

    report_section("prng");
    prng_seed(&a, SEED);
    printf("first draws:");
    for (int i = 0; i < 4; i++)
        printf(" %016" PRIx64, prng_next(&a));
    printf("\n");

    for (int i = 0; i < 10000; i++) {
        uint32_t v = prng_below(&a, 1000);
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    printf("below(1000) x 10000: min %" PRIu32 " max %" PRIu32 " %s\n", lo, hi,
           report_check(rep, hi < 1000) ? "OK" : "FAIL");

    prng_seed(&a, SEED);
    prng_seed(&b, SEED);
    for (int i = 0; i < 1000; i++)
        if (prng_next(&a) != prng_next(&b))
            same = 0;
    printf("same seed, same sequence: %s\n", report_check(rep, same) ? "OK" : "FAIL");
}

static void show_datasets(const dataset_t *sets, size_t count, int32_t **sorted)
{
    report_section("datasets");
    for (size_t d = 0; d < count; d++) {
        stats_t st;
        stats_compute(sets[d].data, sorted[d], sets[d].n, &st);
        printf("%-14s n=%-5lu min=%-7" PRId32 " max=%-7" PRId32 " sum=%-10" PRId64
               " median=%-7" PRId32 " distinct=%-5lu runs=%-5lu inversions=%" PRIu64 "\n",
               sets[d].name, (unsigned long)st.n, st.min, st.max, st.sum, st.median,
               (unsigned long)st.distinct, (unsigned long)st.runs, st.inversions);
    }
}

static void check_sorts(report_t *rep, const dataset_t *sets, size_t count, int32_t **sorted)
{
    report_section("sorts");
    for (size_t s = 0; s < SORT_COUNT; s++) {
        unsigned ok = 0;
        char failed[256] = "";

        for (size_t d = 0; d < count; d++) {
            int32_t *work = copy_array(sets[d].data, sets[d].n);
            int good;
            SORT_TABLE[s].fn(work, sets[d].n);
            good = verify_sorted(work, sets[d].n) &&
                   verify_equal(work, sorted[d], sets[d].n);
            if (report_check(rep, good)) {
                ok++;
            } else if (strlen(failed) + strlen(sets[d].name) + 2 < sizeof failed) {
                strcat(failed, " ");
                strcat(failed, sets[d].name);
            }
            free(work);
        }
        printf("%-17s %2u/%-2lu %s%s\n", SORT_TABLE[s].name, ok, (unsigned long)count,
               ok == count ? "OK" : "FAIL:", failed);
    }
    printf("digests of the sorted data sets (crc32):\n");
    for (size_t d = 0; d < count; d++)
        printf("  %-14s %08" PRIX32 "\n", sets[d].name, digest_array(sorted[d], sets[d].n));
}

static void check_hashes(report_t *rep, const dataset_t *sets, size_t count)
{
    const dataset_t *big = &sets[0];
    size_t nbytes = 4 * big->n;
    uint8_t *bytes = xmalloc(nbytes);

    report_section("hashes");
    printf("published test vectors:\n");
    for (size_t h = 0; h < HASH_COUNT; h++) {
        const hash_entry_t *e = &HASH_TABLE[h];
        uint32_t got = e->fn((const uint8_t *)e->vector, strlen(e->vector));
        printf("  %-10s %08" PRIX32 " %s  \"%s\"\n", e->name, got,
               report_check(rep, got == e->expected) ? "OK  " : "FAIL", e->vector);
    }

    printf("digests of each data set as generated:\n  %-14s", "");
    for (size_t h = 0; h < HASH_COUNT; h++)
        printf(h + 1 < HASH_COUNT ? " %-10s" : " %s", HASH_TABLE[h].name);
    printf("\n");
    for (size_t d = 0; d < count; d++) {
        uint8_t *buf = xmalloc(4 * sets[d].n);
        to_le_bytes(sets[d].data, sets[d].n, buf);
        printf("  %-14s", sets[d].name);
        for (size_t h = 0; h < HASH_COUNT; h++)
            printf(h + 1 < HASH_COUNT ? " %08" PRIX32 "  " : " %08" PRIX32,
                   HASH_TABLE[h].fn(buf, 4 * sets[d].n));
        printf("\n");
        free(buf);
    }

    to_le_bytes(big->data, big->n, bytes);
    printf("one-bit flips in '%s' change every digest:", big->name);
    for (size_t h = 0; h < HASH_COUNT; h++) {
        int all = 1;
        uint32_t base = HASH_TABLE[h].fn(bytes, nbytes);
        for (size_t p = 0; p < FLIP_PROBES && nbytes > 0; p++) {
            size_t bit = (p * 7919u + h * 104729u) % (nbytes * 8);
            bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            if (HASH_TABLE[h].fn(bytes, nbytes) == base)
                all = 0;
            bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        printf(" %s", report_check(rep, all) ? "ok" : "FAIL");
    }
    printf("\n");
    free(bytes);
}

static void check_search(report_t *rep, const dataset_t *sets, size_t count, int32_t **sorted)
{
    prng_t rng;

    report_section("search");
    prng_seed(&rng, SEED ^ UINT64_C(0xABCDEF));
    for (size_t d = 0; d < count; d++) {
        size_t bad = search_selftest(sorted[d], sets[d].n, &rng, SEARCH_PROBES);
        printf("%-14s %d probes, %lu mismatches %s\n", sets[d].name, SEARCH_PROBES,
               (unsigned long)bad, report_check(rep, bad == 0) ? "OK" : "FAIL");
    }
}

int main(void)
{
    dataset_t sets[DATASET_MAX];
    int32_t *sorted[DATASET_MAX];
    report_t rep;
    size_t count;
    int status;

    report_init(&rep);
    count = dataset_build_all(sets, DATASET_MAX, SEED);
    printf("sortcheck %s: %lu sorting algorithms, %lu hash functions, %lu data sets, seed %016"
           PRIX64 "\n", SORTCHECK_VERSION, (unsigned long)SORT_COUNT, (unsigned long)HASH_COUNT,
           (unsigned long)count, SEED);

    for (size_t d = 0; d < count; d++) {
        sorted[d] = copy_array(sets[d].data, sets[d].n);
        reference_sort(sorted[d], sets[d].n);
    }

    check_prng(&rep);
    show_datasets(sets, count, sorted);
    check_sorts(&rep, sets, count, sorted);
    check_hashes(&rep, sets, count);
    check_search(&rep, sets, count, sorted);

    status = report_finish(&rep);
    for (size_t d = 0; d < count; d++)
        free(sorted[d]);
    dataset_free_all(sets, count);
    return status;
}
