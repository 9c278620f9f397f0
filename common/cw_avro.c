/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_avro — out-of-line part of the shared Avro helpers: the CRC-64-AVRO
 * (Rabin) schema fingerprint. Everything on the hot path (framing, varints,
 * strings) is static inline in cw_avro.h.
 *
 * Not for: hashing data (it is only used on schema canonical forms, once per
 * schema, so it is bitwise rather than table-driven).
 */
#include "cw_avro.h"

#include <stdarg.h>
#include <stdio.h>

uint64_t cw_avro_fingerprint64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t fp = CW_AVRO_FP_EMPTY;

	/* Bit-at-a-time form of the spec's table-driven loop
	 * fp = (fp >> 8) ^ FP_TABLE[(fp ^ b) & 0xff]. */
	for (size_t i = 0; i < len; i++) {
		fp ^= p[i];
		for (int bit = 0; bit < 8; bit++)
			fp = (fp >> 1) ^ (CW_AVRO_FP_EMPTY & -(fp & 1));
	}
	return fp;
}

int cw_avro_fail(char *errstr, size_t errstr_size, int err, const char *fmt,
		 ...)
{
	va_list ap;

	if (errstr && errstr_size) {
		va_start(ap, fmt);
		vsnprintf(errstr, errstr_size, fmt, ap);
		va_end(ap);
	}
	return err;
}
