/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_uuid — UUIDv7 from the wall clock and getrandom(2). See cw_uuid.h.
 */
#include "cw_uuid.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

void cw_uuid_format(const uint8_t b[16], char out[CW_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	/* Where each byte's two digits go in 8-4-4-4-12. */
	static const uint8_t at[16] = {0,  2,  4,  6,  9,  11, 14, 16,
				       19, 21, 24, 26, 28, 30, 32, 34};

	for (int i = 0; i < 16; i++) {
		out[at[i]] = hex[b[i] >> 4];
		out[at[i] + 1] = hex[b[i] & 0x0f];
	}
	out[8] = out[13] = out[18] = out[23] = '-';
	out[CW_UUID_LEN] = '\0';
}

void cw_uuid_v7_format(int64_t unix_ms, const uint8_t rnd[10],
		       char out[CW_UUID_LEN + 1])
{
	uint64_t ms = (uint64_t)unix_ms & UINT64_C(0xffffffffffff);
	uint8_t b[16];

	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (rnd[0] & 0x0f)); /* version 7 */
	b[7] = rnd[1];
	b[8] = (uint8_t)(0x80 | (rnd[2] & 0x3f)); /* variant 10 */
	for (int i = 9; i < 16; i++)
		b[i] = rnd[i - 6];
	cw_uuid_format(b, out);
}

int cw_uuid_v7(char out[CW_UUID_LEN + 1])
{
	uint8_t rnd[10];
	size_t got = 0;
	struct timespec ts;

	/* Ten bytes never block once the pool is initialised and are never
	 * cut short, but a signal before that may interrupt the call. */
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	cw_uuid_v7_format((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, rnd,
			  out);
	return 0;
}
