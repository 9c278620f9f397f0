/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_schema — known writer schemas of cartwatch.CartEvent and their
 * resolution to the processor's reader schema. See cw_schema.h.
 *
 * Each writer schema gets, once when it is added: its Parsing Canonical
 * Form and fingerprint, an avro-c generic value of the writer schema, and a
 * resolved-reader value onto a "projected" reader schema (the reader's
 * record minus the top-level fields the writer lacks and the reader has a
 * default for). Decoding a record through it is: walk the body against the
 * writer schema with the bounds-checked cw_avro readers (so a hostile length
 * or an endless block count never reaches avro-c's allocations), let avro-c
 * read it, then copy the nine cw_event fields out of the resolved value.
 *
 * Not for: the hot path; cw_event_decode() keeps that.
 */
#include "cw_schema.h"

#include <avro.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cw_avro.h"

/* Deepest nesting of the body walk, and most items in one array or map. */
#define WALK_MAX_DEPTH 32
#define WALK_MAX_ITEMS (1 << 20)
/* Longest schema file --schema-dir accepts. */
#define SCHEMA_FILE_MAX (1 << 20)

/* The struct cw_event fields, in the order the fill code expects. */
enum field {
	F_EVENT_ID,
	F_EVENT_TYPE,
	F_EVENT_TIME,
	F_USER_ID,
	F_PRODUCT_ID,
	F_QUANTITY,
	F_UNIT_PRICE,
	F_CURRENCY,
	F_REASON,
	F_COUNT
};
static const char *const field_names[F_COUNT] = {
	"event_id", "event_type",	"event_time", "user_id", "product_id",
	"quantity", "unit_price_cents", "currency",   "reason",
};

struct writer {
	uint64_t fp;
	char *origin;
	avro_schema_t schema;
	/* NULL when refused; then refusal says why. */
	avro_value_iface_t *generic;
	avro_value_iface_t *resolver;
	avro_value_t value;    /* generic value of the writer schema */
	avro_value_t resolved; /* reads value as the projected reader */
	int index[F_COUNT];    /* field index in the projected reader, -1:
				  default */
	char *defaulted;       /* reader fields taken from defaults */
	char *refusal;
};

struct cw_schema_set {
	avro_schema_t reader;
	char **reader_defaults; /* names of reader fields with a default */
	size_t n_reader_defaults;
	bool no_fast_path;
	avro_reader_t input;
	struct writer *w;
	size_t n, cap;
};

/* ---- Parsing Canonical Form --------------------------------------------- */

struct pcf_buf {
	char *p;
	size_t size, len;
};

static void put(struct pcf_buf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n < b->size)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* The fullname of named schema @s, defined inside namespace @ns. */
static void put_fullname(struct pcf_buf *b, avro_schema_t s, const char *ns,
			 const char **own_ns)
{
	const char *name = avro_schema_name(s);
	const char *space = avro_schema_namespace(s);

	if (!space || !*space)
		space = ns;
	if (strchr(name, '.') || !space || !*space) {
		*own_ns = strchr(name, '.') ? NULL : space;
		put(b, "\"");
		put(b, name);
		put(b, "\"");
		return;
	}
	*own_ns = space;
	put(b, "\"");
	put(b, space);
	put(b, ".");
	put(b, name);
	put(b, "\"");
}

static int pcf_walk(struct pcf_buf *b, avro_schema_t s, const char *ns,
		    int depth)
{
	const char *own_ns = ns;
	char num[32];
	int err;

	if (depth > 64)
		return -EINVAL;
	switch (avro_typeof(s)) {
	case AVRO_NULL:
		put(b, "\"null\"");
		return 0;
	case AVRO_BOOLEAN:
		put(b, "\"boolean\"");
		return 0;
	case AVRO_INT32:
		put(b, "\"int\"");
		return 0;
	case AVRO_INT64:
		put(b, "\"long\"");
		return 0;
	case AVRO_FLOAT:
		put(b, "\"float\"");
		return 0;
	case AVRO_DOUBLE:
		put(b, "\"double\"");
		return 0;
	case AVRO_BYTES:
		put(b, "\"bytes\"");
		return 0;
	case AVRO_STRING:
		put(b, "\"string\"");
		return 0;
	case AVRO_LINK:
		put_fullname(b, avro_schema_link_target(s), ns, &own_ns);
		return 0;
	case AVRO_RECORD:
		put(b, "{\"name\":");
		put_fullname(b, s, ns, &own_ns);
		put(b, ",\"type\":\"record\",\"fields\":[");
		for (size_t i = 0; i < avro_schema_record_size(s); i++) {
			put(b, i ? ",{\"name\":\"" : "{\"name\":\"");
			put(b, avro_schema_record_field_name(s, (int)i));
			put(b, "\",\"type\":");
			err = pcf_walk(b,
				       avro_schema_record_field_get_by_index(
					       s, (int)i),
				       own_ns, depth + 1);
			if (err)
				return err;
			put(b, "}");
		}
		put(b, "]}");
		return 0;
	case AVRO_ENUM:
		put(b, "{\"name\":");
		put_fullname(b, s, ns, &own_ns);
		put(b, ",\"type\":\"enum\",\"symbols\":[");
		for (int i = 0; i < avro_schema_enum_number_of_symbols(s);
		     i++) {
			put(b, i ? ",\"" : "\"");
			put(b, avro_schema_enum_get(s, i));
			put(b, "\"");
		}
		put(b, "]}");
		return 0;
	case AVRO_FIXED:
		put(b, "{\"name\":");
		put_fullname(b, s, ns, &own_ns);
		snprintf(num, sizeof(num), "%" PRId64,
			 avro_schema_fixed_size(s));
		put(b, ",\"type\":\"fixed\",\"size\":");
		put(b, num);
		put(b, "}");
		return 0;
	case AVRO_ARRAY:
		put(b, "{\"type\":\"array\",\"items\":");
		err = pcf_walk(b, avro_schema_array_items(s), ns, depth + 1);
		put(b, "}");
		return err;
	case AVRO_MAP:
		put(b, "{\"type\":\"map\",\"values\":");
		err = pcf_walk(b, avro_schema_map_values(s), ns, depth + 1);
		put(b, "}");
		return err;
	case AVRO_UNION:
		put(b, "[");
		for (size_t i = 0; i < avro_schema_union_size(s); i++) {
			if (i)
				put(b, ",");
			err = pcf_walk(b, avro_schema_union_branch(s, (int)i),
				       ns, depth + 1);
			if (err)
				return err;
		}
		put(b, "]");
		return 0;
	}
	return -EINVAL;
}

/* PCF of a parsed schema into @buf; length or -ENOSPC / -EINVAL. */
static ssize_t pcf_of(avro_schema_t s, char *buf, size_t size)
{
	struct pcf_buf b = {buf, size, 0};
	int err = pcf_walk(&b, s, NULL, 0);

	if (err)
		return err;
	if (b.len >= size)
		return -ENOSPC;
	buf[b.len] = '\0';
	return (ssize_t)b.len;
}

ssize_t cw_schema_pcf(const char *json, size_t len, char *buf, size_t size)
{
	avro_schema_t s;
	ssize_t n;

	if (!json || !buf || avro_schema_from_json_length(json, len, &s))
		return -EINVAL;
	n = pcf_of(s, buf, size);
	avro_schema_decref(s);
	return n;
}

/* Fingerprint of @s (PCF in a heap buffer sized on a first pass). */
static int fingerprint_of(avro_schema_t s, uint64_t *fp)
{
	struct pcf_buf probe = {NULL, 0, 0};
	char *buf;
	ssize_t n;

	if (pcf_walk(&probe, s, NULL, 0))
		return -EINVAL;
	if (!(buf = malloc(probe.len + 1)))
		return -ENOMEM;
	n = pcf_of(s, buf, probe.len + 1);
	if (n >= 0)
		*fp = cw_avro_fingerprint64(buf, (size_t)n);
	free(buf);
	return n < 0 ? (int)n : 0;
}

/* ---- body walk: is this body well-formed for its writer schema? ---------- */

static int walk(avro_schema_t s, struct cw_avro_reader *r, int depth,
		const char **why)
{
	int64_t v, count, total = 0;
	struct cw_str str;
	int err;

	if (depth > WALK_MAX_DEPTH) {
		*why = "nested too deep";
		return -EBADMSG;
	}
	switch (avro_typeof(s)) {
	case AVRO_NULL:
		return 0;
	case AVRO_BOOLEAN:
		if (!cw_avro_reader_left(r) || *r->p > 1) {
			*why = "bad boolean";
			return -EBADMSG;
		}
		r->p++;
		return 0;
	case AVRO_INT32: {
		int32_t i;
		return cw_avro_read_int(r, &i);
	}
	case AVRO_INT64:
		return cw_avro_read_long(r, &v);
	case AVRO_FLOAT:
	case AVRO_DOUBLE: {
		size_t n = avro_typeof(s) == AVRO_FLOAT ? 4 : 8;
		if (cw_avro_reader_left(r) < n)
			return -ENODATA;
		r->p += n;
		return 0;
	}
	case AVRO_STRING:
	case AVRO_BYTES:
		return cw_avro_read_string(r, &str);
	case AVRO_FIXED:
		if ((uint64_t)avro_schema_fixed_size(s) >
		    cw_avro_reader_left(r))
			return -ENODATA;
		r->p += avro_schema_fixed_size(s);
		return 0;
	case AVRO_ENUM:
		if ((err = cw_avro_read_long(r, &v)))
			return err;
		if (v < 0 || v >= avro_schema_enum_number_of_symbols(s)) {
			*why = "enum index out of range";
			return -EBADMSG;
		}
		return 0;
	case AVRO_UNION:
		if ((err = cw_avro_read_long(r, &v)))
			return err;
		if (v < 0 || (uint64_t)v >= avro_schema_union_size(s)) {
			*why = "union branch index out of range";
			return -EBADMSG;
		}
		return walk(avro_schema_union_branch(s, (int)v), r, depth + 1,
			    why);
	case AVRO_RECORD:
		for (size_t i = 0; i < avro_schema_record_size(s); i++) {
			err = walk(avro_schema_record_field_get_by_index(
					   s, (int)i),
				   r, depth + 1, why);
			if (err)
				return err;
		}
		return 0;
	case AVRO_LINK:
		return walk(avro_schema_link_target(s), r, depth + 1, why);
	case AVRO_ARRAY:
	case AVRO_MAP:
		for (;;) {
			if ((err = cw_avro_read_long(r, &count)))
				return err;
			if (!count)
				return 0;
			if (count < 0) {
				if (count == INT64_MIN)
					return -EOVERFLOW;
				count = -count;
				if ((err = cw_avro_read_long(r, &v)))
					return err;
				if (v < 0) {
					*why = "negative block size";
					return -EBADMSG;
				}
			}
			/* Bounds what avro-c allocates by the input size:
			 * arrays of zero-byte items (null) are refused. */
			if ((uint64_t)count > cw_avro_reader_left(r)) {
				*why = "block count larger than the bytes "
				       "left";
				return -EBADMSG;
			}
			if (count > WALK_MAX_ITEMS - total) {
				*why = "too many items in an array or map";
				return -EBADMSG;
			}
			total += count;
			for (int64_t i = 0; i < count; i++) {
				if (avro_typeof(s) == AVRO_MAP &&
				    (err = cw_avro_read_string(r, &str)))
					return err;
				err = walk(avro_typeof(s) == AVRO_MAP
						   ? avro_schema_map_values(s)
						   : avro_schema_array_items(s),
					   r, depth + 1, why);
				if (err)
					return err;
			}
		}
	}
	*why = "unsupported schema type";
	return -EBADMSG;
}

/* ---- the set ------------------------------------------------------------- */

static bool reader_has_default(const struct cw_schema_set *set,
			       const char *name)
{
	for (size_t i = 0; i < set->n_reader_defaults; i++)
		if (!strcmp(set->reader_defaults[i], name))
			return true;
	return false;
}

int cw_schema_set_new(const char *reader_json, bool no_fast_path,
		      struct cw_schema_set **out, char *errstr,
		      size_t errstr_size)
{
	struct cw_schema_set *set;
	json_t *doc = NULL, *fields;
	json_error_t jerr;
	int err = -ENOMEM;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!reader_json)
		reader_json = cw_schema_reader_json;
	if (!(set = calloc(1, sizeof(*set))))
		return cw_avro_fail(errstr, errstr_size, -ENOMEM,
				    "out of memory");
	set->no_fast_path = no_fast_path;
	if (avro_schema_from_json_length(reader_json, strlen(reader_json),
					 &set->reader)) {
		err = cw_avro_fail(errstr, errstr_size, -EINVAL,
				   "reader schema does not parse: %s",
				   avro_strerror());
		goto fail;
	}
	if (!is_avro_record(set->reader)) {
		err = cw_avro_fail(errstr, errstr_size, -EINVAL,
				   "reader schema is not a record");
		goto fail;
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (avro_schema_record_field_get_index(set->reader,
						       field_names[f]) < 0) {
			err = cw_avro_fail(errstr, errstr_size, -EINVAL,
					   "reader schema has no field %s",
					   field_names[f]);
			goto fail;
		}
	}
	/* avro-c keeps field defaults to itself: find them in the JSON. */
	doc = json_loads(reader_json, 0, &jerr);
	fields = doc ? json_object_get(doc, "fields") : NULL;
	if (!json_is_array(fields)) {
		err = cw_avro_fail(errstr, errstr_size, -EINVAL,
				   "reader schema has no fields array");
		goto fail;
	}
	set->reader_defaults =
		calloc(json_array_size(fields) + 1, sizeof(char *));
	if (!set->reader_defaults)
		goto fail;
	for (size_t i = 0; i < json_array_size(fields); i++) {
		json_t *fd = json_array_get(fields, i);
		const char *name =
			json_string_value(json_object_get(fd, "name"));

		if (!name || !json_object_get(fd, "default"))
			continue;
		if (!(set->reader_defaults[set->n_reader_defaults] =
			      strdup(name)))
			goto fail;
		set->n_reader_defaults++;
	}
	json_decref(doc);
	doc = NULL;
	if (!(set->input = avro_reader_memory("", 0)))
		goto fail;
	*out = set;
	return 0;
fail:
	if (err == -ENOMEM)
		cw_avro_fail(errstr, errstr_size, err, "out of memory");
	json_decref(doc);
	cw_schema_set_free(set);
	return err;
}

static void writer_clear(struct writer *w)
{
	if (w->resolver) {
		avro_value_decref(&w->resolved);
		avro_value_iface_decref(w->resolver);
	}
	if (w->generic) {
		avro_value_decref(&w->value);
		avro_value_iface_decref(w->generic);
	}
	if (w->schema)
		avro_schema_decref(w->schema);
	free(w->origin);
	free(w->defaulted);
	free(w->refusal);
}

void cw_schema_set_free(struct cw_schema_set *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		writer_clear(&set->w[i]);
	free(set->w);
	for (size_t i = 0; i < set->n_reader_defaults; i++)
		free(set->reader_defaults[i]);
	free(set->reader_defaults);
	if (set->input)
		avro_reader_free(set->input);
	if (set->reader)
		avro_schema_decref(set->reader);
	free(set);
}

static struct writer *find(const struct cw_schema_set *set, uint64_t fp)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->w[i].fp == fp)
			return &set->w[i];
	return NULL;
}

/* Append to a comma-separated list; -ENOMEM. */
static int list_add(char **list, const char *name)
{
	size_t old = *list ? strlen(*list) : 0;
	char *p = realloc(*list, old + strlen(name) + 2);

	if (!p)
		return -ENOMEM;
	snprintf(p + old, strlen(name) + 2, "%s%s", old ? "," : "", name);
	*list = p;
	return 0;
}

/* Set up @w's resolution to the reader. 0, -ENOMEM, or
 * -CW_SCHEMA_EINCOMPATIBLE with w->refusal set. */
static int writer_resolve(struct cw_schema_set *set, struct writer *w)
{
	char why[512];
	avro_schema_t proj = NULL;
	const char *name;
	int err = -ENOMEM, n = 0;

	if (!is_avro_record(w->schema)) {
		snprintf(why, sizeof(why), "writer schema is not a record");
		goto refuse;
	}
	if (!(w->defaulted = strdup("")))
		goto out;
	proj = avro_schema_record(avro_schema_name(set->reader),
				  avro_schema_namespace(set->reader));
	if (!proj)
		goto out;
	for (size_t i = 0; i < avro_schema_record_size(set->reader); i++) {
		name = avro_schema_record_field_name(set->reader, (int)i);
		if (avro_schema_record_field_get_index(w->schema, name) >= 0) {
			if (avro_schema_record_field_append(
				    proj, name,
				    avro_schema_record_field_get_by_index(
					    set->reader, (int)i)))
				goto out;
			n++;
			continue;
		}
		if (!reader_has_default(set, name)) {
			snprintf(why, sizeof(why),
				 "reader field %s is not in the writer schema "
				 "and has no default",
				 name);
			goto refuse;
		}
		if (list_add(&w->defaulted, name))
			goto out;
	}
	for (int f = 0; f < F_COUNT; f++)
		w->index[f] = avro_schema_record_field_get_index(
			proj, field_names[f]);
	if (!(w->resolver = avro_resolved_reader_new(w->schema, proj))) {
		snprintf(why, sizeof(why), "%s", avro_strerror());
		goto refuse;
	}
	if (!(w->generic = avro_generic_class_from_schema(w->schema))) {
		avro_value_iface_decref(w->resolver);
		w->resolver = NULL;
		goto out;
	}
	if (avro_generic_value_new(w->generic, &w->value)) {
		avro_value_iface_decref(w->generic);
		avro_value_iface_decref(w->resolver);
		w->generic = w->resolver = NULL;
		goto out;
	}
	if (avro_resolved_reader_new_value(w->resolver, &w->resolved)) {
		avro_value_decref(&w->value);
		avro_value_iface_decref(w->generic);
		avro_value_iface_decref(w->resolver);
		w->generic = w->resolver = NULL;
		goto out;
	}
	avro_resolved_reader_set_source(&w->resolved, &w->value);
	err = 0;
	goto out;
refuse:
	err = -CW_SCHEMA_EINCOMPATIBLE;
	free(w->defaulted);
	w->defaulted = NULL;
	if (!(w->refusal = strdup(why)))
		err = -ENOMEM;
out:
	(void)n;
	if (proj)
		avro_schema_decref(proj);
	return err;
}

int cw_schema_set_add(struct cw_schema_set *set, const char *json, size_t len,
		      const char *origin, uint64_t *fp, char *errstr,
		      size_t errstr_size)
{
	struct writer w = {0}, *old;
	int err;

	if (!set || !json || !origin)
		return -EINVAL;
	if (avro_schema_from_json_length(json, len, &w.schema))
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "%s: not an Avro schema: %s", origin,
				    avro_strerror());
	if ((err = fingerprint_of(w.schema, &w.fp))) {
		avro_schema_decref(w.schema);
		return cw_avro_fail(errstr, errstr_size, err,
				    "%s: no canonical form", origin);
	}
	if (fp)
		*fp = w.fp;
	if ((old = find(set, w.fp))) {
		avro_schema_decref(w.schema);
		if (old->refusal)
			return cw_avro_fail(errstr, errstr_size,
					    -CW_SCHEMA_EINCOMPATIBLE, "%s: %s",
					    origin, old->refusal);
		return 0;
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 8;
		struct writer *p = realloc(set->w, cap * sizeof(*p));

		if (!p) {
			avro_schema_decref(w.schema);
			return cw_avro_fail(errstr, errstr_size, -ENOMEM,
					    "out of memory");
		}
		set->w = p;
		set->cap = cap;
	}
	err = writer_resolve(set, &w);
	if (err == -ENOMEM || !(w.origin = strdup(origin))) {
		writer_clear(&w);
		return cw_avro_fail(errstr, errstr_size, -ENOMEM,
				    "out of memory");
	}
	set->w[set->n++] = w;
	if (err)
		return cw_avro_fail(errstr, errstr_size, err,
				    "%s: writer schema %016" PRIx64
				    " cannot be read as %s: %s",
				    origin, w.fp, avro_schema_name(set->reader),
				    w.refusal);
	return 0;
}

int cw_schema_set_add_history(struct cw_schema_set *set, char *errstr,
			      size_t errstr_size)
{
	char origin[256];
	int err;

	for (size_t i = 0; i < cw_schema_history_count; i++) {
		snprintf(origin, sizeof(origin), "schemas/history/%s",
			 cw_schema_history[i].name);
		err = cw_schema_set_add(set, cw_schema_history[i].json,
					strlen(cw_schema_history[i].json),
					origin, NULL, errstr, errstr_size);
		if (err)
			return err;
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read a whole small file; -errno or -EFBIG. */
static int slurp(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;
	int err = 0;

	if (!f)
		return -errno;
	if (!(buf = malloc(SCHEMA_FILE_MAX + 1))) {
		err = -ENOMEM;
		goto out;
	}
	n = fread(buf, 1, SCHEMA_FILE_MAX + 1, f);
	if (ferror(f))
		err = -EIO;
	else if (n > SCHEMA_FILE_MAX)
		err = -EFBIG;
	if (err)
		goto out;
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return err;
}

int cw_schema_set_add_dir(struct cw_schema_set *set, const char *dir,
			  char *errstr, size_t errstr_size)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, path[4096], *json = NULL;
	size_t n = 0, cap = 0, len = 0;
	int err = 0;

	if (!set || !dir)
		return -EINVAL;
	if (!(d = opendir(dir)))
		return cw_avro_fail(errstr, errstr_size, -errno,
				    "--schema-dir %s: %s", dir,
				    strerror(errno));
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char **p;

		if (l < 6 || strcmp(de->d_name + l - 5, ".avsc"))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			if (!(p = realloc(names, cap * sizeof(*p)))) {
				err = -ENOMEM;
				goto out;
			}
			names = p;
		}
		if (!(names[n] = strdup(de->d_name))) {
			err = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n && !err; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((err = slurp(path, &json, &len))) {
			cw_avro_fail(errstr, errstr_size, err, "%s: %s", path,
				     strerror(-err));
			break;
		}
		err = cw_schema_set_add(set, json, len, path, NULL, errstr,
					errstr_size);
		free(json);
		if (err == -CW_SCHEMA_EINCOMPATIBLE)
			err = 0; /* kept, refused; see cw_schema_set_counts */
	}
out:
	if (err == -ENOMEM)
		cw_avro_fail(errstr, errstr_size, err, "out of memory");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return err;
}

void cw_schema_set_counts(const struct cw_schema_set *set, size_t *usable,
			  size_t *refused)
{
	size_t u = 0, r = 0;

	for (size_t i = 0; set && i < set->n; i++) {
		if (set->w[i].refusal)
			r++;
		else
			u++;
	}
	if (usable)
		*usable = u;
	if (refused)
		*refused = r;
}

const char *cw_schema_set_defaulted(const struct cw_schema_set *set,
				    uint64_t fp)
{
	const struct writer *w = set ? find(set, fp) : NULL;

	return w && !w->refusal ? w->defaulted : NULL;
}

/* ---- decoding ------------------------------------------------------------ */

/* Field @f of the resolved record, unwrapping a union; 1 if it is null or
 * defaulted (then @out is untouched), 0, or an avro-c error. */
static int get_field(struct writer *w, enum field f, avro_value_t *out)
{
	avro_value_t v;
	int err;

	if (w->index[f] < 0)
		return 1;
	if ((err = avro_value_get_by_index(&w->resolved, (size_t)w->index[f],
					   &v, NULL)))
		return err;
	if (avro_value_get_type(&v) == AVRO_UNION) {
		avro_value_t branch;

		if ((err = avro_value_get_current_branch(&v, &branch)))
			return err;
		v = branch;
	}
	if (avro_value_get_type(&v) == AVRO_NULL)
		return 1;
	*out = v;
	return 0;
}

static int get_str(struct writer *w, enum field f, struct cw_str *out,
		   bool nullable)
{
	avro_value_t v;
	const char *p;
	size_t size;
	int err = get_field(w, f, &v);

	if (err == 1) {
		if (w->index[f] >= 0 && nullable)
			*out = CW_STR_NULL;
		return 0;
	}
	if (err || (err = avro_value_get_string(&v, &p, &size)))
		return err;
	out->ptr = p;
	out->len = size ? size - 1 : 0; /* avro-c counts the NUL */
	return 0;
}

int cw_schema_decode(struct cw_schema_set *set, const uint8_t *buf, size_t len,
		     struct cw_event *ev, char *errstr, size_t errstr_size)
{
	struct cw_avro_reader r;
	struct writer *w;
	const char *why = NULL;
	avro_value_t v;
	uint64_t fp;
	int err, e;

	if (!set || (!buf && len) || !ev)
		return cw_avro_fail(errstr, errstr_size, -EINVAL,
				    "cart event: NULL argument");
	if (cw_avro_frame_parse(buf, len, &fp))
		return cw_event_decode(buf, len, ev, errstr, errstr_size);
	if (fp == cw_event_fingerprint && !set->no_fast_path)
		return cw_event_decode_body(buf, len, ev, errstr, errstr_size);
	if (!(w = find(set, fp)))
		return cw_event_decode(buf, len, ev, errstr, errstr_size);
	if (w->refusal)
		return cw_avro_fail(errstr, errstr_size,
				    -CW_SCHEMA_EINCOMPATIBLE,
				    "cart event: writer schema %016" PRIx64
				    " (%s) cannot be read as %s: %s",
				    fp, w->origin,
				    avro_schema_name(set->reader), w->refusal);

	r = cw_avro_reader_init(buf + CW_AVRO_FRAME_HEADER,
				len - CW_AVRO_FRAME_HEADER);
	err = walk(w->schema, &r, 0, &why);
	if (!err && r.p != r.end) {
		err = -EBADMSG;
		why = "trailing bytes after the body";
	}
	if (err)
		return cw_avro_fail(
			errstr, errstr_size, -CW_EVENT_EBADBODY,
			"cart event: body does not match writer schema "
			"%016" PRIx64 " (%s) at byte %zu: %s",
			fp, w->origin, (size_t)(r.p - buf),
			why ? why : cw_avro_strerror(err));
	avro_reader_memory_set_source(set->input,
				      (const char *)buf + CW_AVRO_FRAME_HEADER,
				      (int64_t)(len - CW_AVRO_FRAME_HEADER));
	if (avro_value_read(set->input, &w->value))
		return cw_avro_fail(errstr, errstr_size, -CW_EVENT_EBADBODY,
				    "cart event: avro-c cannot read the body "
				    "(writer schema %016" PRIx64 "): %s",
				    fp, avro_strerror());

	cw_event_init(ev);
	if ((e = get_str(w, F_EVENT_ID, &ev->event_id, false)) ||
	    (e = get_str(w, F_USER_ID, &ev->user_id, false)) ||
	    (e = get_str(w, F_PRODUCT_ID, &ev->product_id, true)) ||
	    (e = get_str(w, F_CURRENCY, &ev->currency, false)) ||
	    (e = get_str(w, F_REASON, &ev->reason, true)))
		goto bad;
	if (!(e = get_field(w, F_EVENT_TYPE, &v))) {
		int sym;

		if ((e = avro_value_get_enum(&v, &sym)))
			goto bad;
		if (sym < 0 || sym >= CW_EVENT_TYPE_COUNT) {
			why = "event_type symbol out of range";
			goto bad;
		}
		ev->type = (enum cw_event_type)sym;
	} else if (e < 0 || e > 1) {
		goto bad;
	}
	if (!(e = get_field(w, F_EVENT_TIME, &v)) &&
	    (e = avro_value_get_long(&v, &ev->event_time_ms)))
		goto bad;
	if (e > 1)
		goto bad;
	if (!(e = get_field(w, F_QUANTITY, &v)) &&
	    (e = avro_value_get_int(&v, &ev->quantity)))
		goto bad;
	if (e > 1)
		goto bad;
	if (!(e = get_field(w, F_UNIT_PRICE, &v)) &&
	    (e = avro_value_get_long(&v, &ev->unit_price_cents)))
		goto bad;
	if (e > 1)
		goto bad;
	if (!ev->event_id.ptr || !ev->user_id.ptr || !ev->currency.ptr) {
		why = "a required string is null";
		goto bad;
	}
	return 0;
bad:
	return cw_avro_fail(
		errstr, errstr_size, -CW_EVENT_EBADBODY,
		"cart event: writer schema %016" PRIx64
		" (%s) resolves to a value cartwatch cannot use: %s",
		fp, w->origin, why ? why : avro_strerror());
}
