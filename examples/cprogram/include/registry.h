/* registry.h - the tables of algorithms that main() iterates over. */
#ifndef SORTCHECK_REGISTRY_H
#define SORTCHECK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef void (*sort_fn)(int32_t *a, size_t n);
typedef uint32_t (*hash_fn)(const uint8_t *data, size_t len);

typedef struct {
    const char *name;
    sort_fn fn;
} sort_entry_t;

typedef struct {
    const char *name;
    hash_fn fn;
    const char *vector;   /* a published test input ... */
    uint32_t expected;    /* ... and its published digest */
} hash_entry_t;

extern const sort_entry_t SORT_TABLE[];
extern const size_t SORT_COUNT;
extern const hash_entry_t HASH_TABLE[];
extern const size_t HASH_COUNT;

#endif
