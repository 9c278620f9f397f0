/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_str — a non-owning string view (pointer + length), used for strings
 * decoded in place from Kafka messages. Not NUL-terminated in general.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct cw_str {
	const char *ptr; /* NULL means "absent" (Avro null) */
	size_t len;
};

#define CW_STR_NULL ((struct cw_str){NULL, 0})

/* A view of a NUL-terminated C string (NULL gives CW_STR_NULL). */
static inline struct cw_str cw_str_c(const char *s)
{
	return s ? (struct cw_str){s, strlen(s)} : CW_STR_NULL;
}

static inline bool cw_str_is_null(struct cw_str s)
{
	return s.ptr == NULL;
}

static inline bool cw_str_eq(struct cw_str a, struct cw_str b)
{
	if (!a.ptr || !b.ptr)
		return a.ptr == b.ptr;
	return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}
