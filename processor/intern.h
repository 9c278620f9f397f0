/* SPDX-License-Identifier: Apache-2.0 */
/*
 * intern — a table that maps the few distinct strings of the stream
 * (product ids, removal reasons, currencies) to small integers, so carts
 * store 4-byte ids instead of strings.
 *
 * Id 0 is reserved for "none" (an Avro null). Interned strings are never
 * freed while the table lives: the table is meant for low-cardinality
 * values (a catalog of products, a taxonomy of reasons), not user ids.
 * Single-threaded (the poll thread).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cw_str.h"

struct intern;

/* Create an empty table. Returns NULL on ENOMEM. */
struct intern *intern_new(void);

/* Free the table and every string in it. NULL is allowed. */
void intern_destroy(struct intern *in);

/* Return the id of @s, adding it when new; 0 when @s is null (ptr NULL).
 * Returns 0 also on ENOMEM, with *@err set to -ENOMEM (may be NULL). */
uint32_t intern_id(struct intern *in, struct cw_str s, int *err);

/* The id of @s if it is in the table, else 0 (nothing is added). Can't
 * fail. */
uint32_t intern_find(const struct intern *in, struct cw_str s);

/* The NUL-terminated string of @id, or NULL for id 0 / unknown ids. The
 * pointer stays valid as long as the table. */
const char *intern_str(const struct intern *in, uint32_t id);

/* Length of the string of @id (0 for id 0). */
size_t intern_len(const struct intern *in, uint32_t id);

/* The string of @id with its length (intern_str() and intern_len() in
 * one call), or CW_STR_NULL for id 0 / unknown ids. Can't fail. */
struct cw_str intern_cw_str(const struct intern *in, uint32_t id);

/* Number of distinct strings. */
size_t intern_count(const struct intern *in);
