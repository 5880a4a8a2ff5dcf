/* registry.c - the algorithms sortcheck runs, with hash test vectors. */
#include "hashes.h"
#include "registry.h"
#include "sorts.h"

const sort_entry_t SORT_TABLE[] = {
    {"insertion", sort_insertion},
    {"binary_insertion", sort_binary_insertion},
    {"selection", sort_selection},
    {"bubble", sort_bubble},
    {"cocktail", sort_cocktail},
    {"gnome", sort_gnome},
    {"oddeven", sort_oddeven},
    {"shell", sort_shell},
    {"comb", sort_comb},
    {"cycle", sort_cycle},
    {"pancake", sort_pancake},
    {"merge", sort_merge},
    {"quick", sort_quick},
    {"heap", sort_heap},
    {"counting", sort_counting},
    {"radix", sort_radix},
    {"bitonic", sort_bitonic},
};
const size_t SORT_COUNT = sizeof SORT_TABLE / sizeof SORT_TABLE[0];

const hash_entry_t HASH_TABLE[] = {
    {"crc32", hash_crc32, "123456789", 0xCBF43926u},
    {"adler32", hash_adler32, "Wikipedia", 0x11E60398u},
    {"fnv1a", hash_fnv1a, "foobar", 0xBF9CF968u},
    {"djb2", hash_djb2, "hello world", 0x3551C8C1u},
    {"sdbm", hash_sdbm, "hello world", 0x19AE84C4u},
    {"murmur3", hash_murmur3, "hello", 0x248BFA47u},
    {"oaat", hash_oaat, "The quick brown fox jumps over the lazy dog", 0x519E91F5u},
    {"fletcher32", hash_fletcher32, "abcde", 0xF04FC729u},
};
const size_t HASH_COUNT = sizeof HASH_TABLE / sizeof HASH_TABLE[0];
