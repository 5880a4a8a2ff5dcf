/* hashes.h - 32-bit hash and checksum functions over byte strings. */
#ifndef SORTCHECK_HASHES_H
#define SORTCHECK_HASHES_H

#include <stddef.h>
#include <stdint.h>

uint32_t hash_crc32(const uint8_t *data, size_t len);      /* IEEE 802.3 */
uint32_t hash_adler32(const uint8_t *data, size_t len);    /* zlib */
uint32_t hash_fnv1a(const uint8_t *data, size_t len);      /* FNV-1a 32 */
uint32_t hash_djb2(const uint8_t *data, size_t len);       /* Bernstein */
uint32_t hash_sdbm(const uint8_t *data, size_t len);
uint32_t hash_murmur3(const uint8_t *data, size_t len);    /* x86_32, seed 0 */
uint32_t hash_oaat(const uint8_t *data, size_t len);       /* Jenkins one-at-a-time */
uint32_t hash_fletcher32(const uint8_t *data, size_t len); /* little-endian words */

#endif
