/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench-producer-kcatfeed — turn `cartwatch-producer --output F --format
 * avro` (4-byte big-endian length + framed event, repeated) into input for
 * `kcat -P -K '\t' -D '\xff' x10 -l`, so bench-producer.sh can time kcat
 * sending exactly the messages cartwatch-producer sends, with the same keys.
 *
 * Why ten 0xFF bytes can delimit binary Avro: our events' strings are ASCII
 * (< 0x80), so bytes >= 0x80 only occur in the fingerprint (which contains
 * 0x0d) and in varints, where a run of continuation bytes is at most nine
 * long before a byte < 0x80 ends it. The delimiter is still checked for in
 * every message, and the key (user_id) for the tab.
 *
 * Not for: anything but the benchmark.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cw_event.h"

#define DELIM	  "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
#define DELIM_LEN 10

int main(int argc, char **argv)
{
	FILE *in = argc > 1 ? fopen(argv[1], "rb") : NULL;
	static uint8_t buf[1 << 16];
	uint64_t n = 0;
	uint8_t be[4];

	if (!in) {
		fprintf(stderr, "usage: %s EVENTS.avro > kcat-input\n",
			argv[0]);
		return 2;
	}
	while (fread(be, 1, 4, in) == 4) {
		size_t len = (size_t)be[0] << 24 | (size_t)be[1] << 16 |
			     (size_t)be[2] << 8 | be[3];
		struct cw_event ev;
		char errstr[256];

		if (len > sizeof(buf) || fread(buf, 1, len, in) != len) {
			fprintf(stderr, "message %llu: truncated input\n",
				(unsigned long long)n);
			return 1;
		}
		if (cw_event_decode(buf, len, &ev, errstr, sizeof(errstr))) {
			fprintf(stderr, "message %llu: %s\n",
				(unsigned long long)n, errstr);
			return 1;
		}
		if (memchr(ev.user_id.ptr, '\t', ev.user_id.len) ||
		    memmem(buf, len, DELIM, DELIM_LEN)) {
			fprintf(stderr, "message %llu: contains a delimiter\n",
				(unsigned long long)n);
			return 1;
		}
		fwrite(ev.user_id.ptr, 1, ev.user_id.len, stdout);
		fputc('\t', stdout);
		fwrite(buf, 1, len, stdout);
		fwrite(DELIM, 1, DELIM_LEN, stdout);
		n++;
	}
	fclose(in);
	return fflush(stdout) == 0 ? 0 : 1;
}
