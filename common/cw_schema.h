/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_schema — cart events written with other versions of
 * schemas/cart_event.avsc: the set of known writer schemas, each keyed by
 * the CRC-64-AVRO fingerprint of its Parsing Canonical Form, and a decoder
 * that resolves any of them to the processor's reader schema by Avro's
 * resolution rules, so producers and processors can be upgraded in either
 * order.
 *
 * A record framed with cw_event_fingerprint (the version cw_event.c was
 * written for) takes cw_event_decode(), the zero-allocation hot path. Any
 * other known fingerprint is decoded with avro-c (generic value of the writer
 * schema, avro_resolved_reader to the reader schema) after a bounds-checked
 * walk of the body, so avro-c only ever sees well-formed input. avro-c 1.11
 * cannot fill reader fields the writer lacks, so top-level fields that have
 * a default in the reader schema are left out of the resolution and take
 * their default here (the cw_event_init() defaults, which are the schema's).
 *
 * Not for: schema registries, nested-record defaults, aliases.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cw_event.h"

/* Error (negated) for a known writer schema that cannot be resolved to the
 * reader schema; the other errors are cw_event_decode()'s. */
#define CW_SCHEMA_EINCOMPATIBLE ENOTSUP

/* Built from schemas/ by common/embed_schemas.py. */
struct cw_schema_embedded {
	const char *name; /* file name in schemas/history */
	const char *json;
};
extern const char cw_schema_reader_json[];
extern const struct cw_schema_embedded cw_schema_history[];
extern const size_t cw_schema_history_count;

struct cw_schema_set;

/* Create a set whose reader schema is @reader_json (NULL: the embedded
 * schemas/cart_event.avsc), holding no writer schema yet. The reader must
 * be a record with cw_event's fields. With @no_fast_path, records framed
 * with cw_event_fingerprint are resolved like any other (for tests and
 * fuzzing; the processor passes false).
 * Returns 0 and sets *@out, -EINVAL with a reason in @errstr, or -ENOMEM.
 * The caller owns the set (cw_schema_set_free). Not thread-safe: one set per
 * thread. */
int cw_schema_set_new(const char *reader_json, bool no_fast_path,
		      struct cw_schema_set **out, char *errstr,
		      size_t errstr_size);

/* Free @set and every string a decode through it returned. NULL is a no-op. */
void cw_schema_set_free(struct cw_schema_set *set);

/* Parse writer schema @json (@len bytes) and add it under its fingerprint;
 * @origin names it in messages (copied). A schema already known is not
 * added twice. A schema that parses but does not resolve to the reader is
 * still added, so its records are refused with the reason.
 * Returns 0 (resolvable), -CW_SCHEMA_EINCOMPATIBLE (added, refused; reason
 * in @errstr), -EINVAL (not a schema; nothing added) or -ENOMEM.
 * If @fp is not NULL it receives the fingerprint whenever the schema parses. */
int cw_schema_set_add(struct cw_schema_set *set, const char *json, size_t len,
		      const char *origin, uint64_t *fp, char *errstr,
		      size_t errstr_size);

/* Add every embedded schemas/history/ schema.
 * Returns 0, or the first error of cw_schema_set_add() (a build bug). */
int cw_schema_set_add_history(struct cw_schema_set *set, char *errstr,
			      size_t errstr_size);

/* Add every *.avsc file of directory @dir (read now, in name order).
 * Incompatible schemas are added and counted, not errors.
 * Returns 0, or -errno if @dir or a file cannot be read, -EINVAL if a file
 * is not a schema (@errstr names it), -ENOMEM. */
int cw_schema_set_add_dir(struct cw_schema_set *set, const char *dir,
			  char *errstr, size_t errstr_size);

/* Number of writer schemas in @set: *@usable resolve, *@refused do not
 * (either may be NULL). Can't fail. */
void cw_schema_set_counts(const struct cw_schema_set *set, size_t *usable,
			  size_t *refused);

/* The reader fields a record of writer schema @fp gets from defaults, comma
 * separated ("" when none), or NULL if @fp is unknown or refused. Owned by
 * @set. */
const char *cw_schema_set_defaulted(const struct cw_schema_set *set,
				    uint64_t fp);

/* Parsing Canonical Form of @json (@len bytes) into @buf of @size bytes
 * (NUL-terminated). Returns its length, -EINVAL if @json is not a schema,
 * -ENOSPC if @buf is too small. Thread-safe. */
ssize_t cw_schema_pcf(const char *json, size_t len, char *buf, size_t size);

/* Decode a framed cart event of @len bytes at @buf into @ev: the fast
 * cw_event_decode() for cw_event_fingerprint, schema resolution for another
 * known fingerprint.
 * Returns 0, or -EINVAL (NULL argument), or a negated CW_EVENT_E* code
 * (unknown fingerprint: the same error and text as cw_event_decode();
 * body not matching its writer schema: CW_EVENT_EBADBODY), or
 * -CW_SCHEMA_EINCOMPATIBLE for a refused writer schema, with the reason in
 * @errstr. On success @ev's strings point into @buf (fast path) or into
 * storage owned by @set that stays valid until the next cw_schema_decode()
 * on @set or cw_schema_set_free(). The fast path never allocates. */
int cw_schema_decode(struct cw_schema_set *set, const uint8_t *buf, size_t len,
		     struct cw_event *ev, char *errstr, size_t errstr_size);
