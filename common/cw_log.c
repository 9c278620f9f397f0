/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_log — logfmt or JSON lines on stderr. See cw_log.h.
 *
 * cw_log() reads the caller's `key=value` format itself instead of handing
 * it to vsnprintf(): it splits it into fields, formats each conversion on
 * its own and escapes each value as a whole. That is what lets every call
 * site keep writing `error="%s"` while a PostgreSQL message full of quotes
 * and newlines still yields exactly one parseable record.
 */
#include "cw_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum {
	LINE_MAX_BYTES = 4096, /* one record, newline included */
	VALUE_MAX_BYTES = 2048,
	KEY_MAX_BYTES = 64,
	/* Kept free at the end of the line for closing a string, the JSON
	 * brace and the newline, whatever was cut before them. */
	LINE_RESERVE = 8,
};

static atomic_int log_min_level = CW_LOG_INFO;
static atomic_int log_format = CW_LOG_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cw_log_set_level(enum cw_log_level level)
{
	atomic_store(&log_min_level, (int)level);
}

int cw_log_parse_level(const char *name, enum cw_log_level *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (enum cw_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(name, "warning") == 0) {
		*level = CW_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

void cw_log_set_format(enum cw_log_format format)
{
	atomic_store(&log_format, (int)format);
}

int cw_log_parse_format(const char *name, enum cw_log_format *format)
{
	if (strcasecmp(name, "logfmt") == 0) {
		*format = CW_LOG_LOGFMT;
		return 0;
	}
	if (strcasecmp(name, "json") == 0) {
		*format = CW_LOG_JSON;
		return 0;
	}
	return -EINVAL;
}

/* ---- the output line -------------------------------------------------- */

struct log_line {
	char buf[LINE_MAX_BYTES];
	size_t n;
	bool json;
	bool full; /* something was cut: write no further field */
};

/* Append @len bytes if they fit before the reserve; all or nothing. */
static bool line_put(struct log_line *ll, const char *s, size_t len)
{
	if (ll->full || ll->n + len > sizeof(ll->buf) - LINE_RESERVE) {
		ll->full = true;
		return false;
	}
	memcpy(ll->buf + ll->n, s, len);
	ll->n += len;
	return true;
}

/* Append one byte inside the reserve (closing quote, brace, newline). */
static void line_force(struct log_line *ll, char c)
{
	if (ll->n < sizeof(ll->buf))
		ll->buf[ll->n++] = c;
}

/* Length of the valid UTF-8 sequence at @s (at most @len bytes), or 0 when
 * the bytes there are not valid UTF-8 (overlong, surrogate, truncated). */
static size_t utf8_len(const unsigned char *s, size_t len)
{
	size_t need;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need;
}

/* Does a logfmt value need double quotes? Empty values, spaces, '=', '"',
 * backslashes, control characters and invalid UTF-8 do. */
static bool logfmt_needs_quotes(const char *v, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)v[i];
		size_t u;

		if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
			return true;
		u = utf8_len((const unsigned char *)v + i, len - i);
		if (u == 0)
			return true;
		i += u;
	}
	return false;
}

/* Append @v as a double-quoted string, escaped the same way for logfmt
 * and JSON: \" \\ \n \r \t, other control bytes as \u00XX, bytes that are
 * not UTF-8 as \ufffd. Cuts at the end of the line between characters,
 * never inside an escape; the closing quote is always written. */
static void line_put_quoted(struct log_line *ll, const char *v, size_t len)
{
	if (!line_put(ll, "\"", 1))
		return;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)v[i];
		char esc[8];
		const char *out = esc;
		size_t outlen = 2, step = 1;

		esc[0] = '\\';
		if (c == '"' || c == '\\')
			esc[1] = (char)c;
		else if (c == '\n')
			esc[1] = 'n';
		else if (c == '\r')
			esc[1] = 'r';
		else if (c == '\t')
			esc[1] = 't';
		else if (c < 0x20 || c == 0x7f)
			outlen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x",
						  c);
		else if ((step = utf8_len((const unsigned char *)v + i,
					  len - i)) == 0) {
			out = "\\ufffd";
			outlen = 6;
			step = 1;
		} else {
			out = v + i;
			outlen = step;
		}
		if (!line_put(ll, out, outlen))
			break;
		i += step;
	}
	line_force(ll, '"');
}

/* Keys are written bare in both formats: anything but printable ASCII
 * without '=', '"' and '\\' becomes '_'. */
static void sanitize_key(char *key, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (c <= ' ' || c >= 0x7f || c == '=' || c == '"' || c == '\\')
			key[i] = '_';
	}
}

/* A JSON number exactly as RFC 8259 spells it (so "inf", "nan", "0x1f"
 * and "007" stay strings). */
static bool is_json_number(const char *v, size_t len)
{
	size_t i = 0, d;

	if (i < len && v[i] == '-')
		i++;
	if (i < len && v[i] == '0')
		i++;
	else if (i < len && v[i] >= '1' && v[i] <= '9')
		while (i < len && v[i] >= '0' && v[i] <= '9')
			i++;
	else
		return false;
	if (i < len && v[i] == '.') {
		for (d = ++i; i < len && v[i] >= '0' && v[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	if (i < len && (v[i] == 'e' || v[i] == 'E')) {
		i++;
		if (i < len && (v[i] == '+' || v[i] == '-'))
			i++;
		for (d = i; i < len && v[i] >= '0' && v[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	return i == len;
}

/* Write one field. @bare: the format had a word without '=' (logfmt's
 * valueless key, true in JSON). @number: the value is one numeric
 * conversion and nothing else. */
static void line_put_field(struct log_line *ll, char *key, size_t klen,
			   const char *v, size_t vlen, bool bare, bool number)
{
	if (klen == 0) {
		key = "_";
		klen = 1;
	} else {
		sanitize_key(key, klen);
	}
	/* Room for the key and a short value, or the field is left out
	 * whole: never a key without its value. */
	if (ll->full || ll->n + klen + 24 > sizeof(ll->buf) - LINE_RESERVE) {
		ll->full = true;
		return;
	}
	if (ll->json) {
		line_put(ll, ",\"", 2);
		line_put(ll, key, klen);
		line_put(ll, "\":", 2);
		if (bare)
			line_put(ll, "true", 4);
		else if (number && is_json_number(v, vlen)) {
			if (!line_put(ll, v, vlen)) {
				ll->full = false;
				line_put(ll, "null", 4);
				ll->full = true;
			}
		} else
			line_put_quoted(ll, v, vlen);
		return;
	}
	line_put(ll, " ", 1);
	line_put(ll, key, klen);
	if (bare)
		return;
	line_put(ll, "=", 1);
	if (logfmt_needs_quotes(v, vlen))
		line_put_quoted(ll, v, vlen);
	else if (!line_put(ll, v, vlen)) {
		/* Too long to fit unquoted: cut it as a quoted string. */
		ll->full = false;
		line_put_quoted(ll, v, vlen);
		ll->full = true;
	}
}

/* ---- reading the caller's format --------------------------------------- */

struct field {
	char key[KEY_MAX_BYTES];
	size_t klen;
	char val[VALUE_MAX_BYTES];
	size_t vlen;
	bool started;	 /* a key or value byte was seen */
	bool in_value;	 /* the '=' was seen */
	bool quoted;	 /* inside literal double quotes */
	int conversions; /* conversions in the value */
	bool literal;	 /* literal bytes in the value */
	bool numeric;	 /* the value's conversions are all numeric */
};

static void field_append(struct field *f, const char *s, size_t len)
{
	char *dst = f->in_value ? f->val : f->key;
	size_t *n = f->in_value ? &f->vlen : &f->klen;
	size_t cap = f->in_value ? sizeof(f->val) : sizeof(f->key);

	f->started = true;
	if (len > cap - *n)
		len = cap - *n;
	memcpy(dst + *n, s, len);
	*n += len;
}

static void field_reset(struct field *f)
{
	f->klen = f->vlen = 0;
	f->started = f->in_value = f->quoted = f->literal = f->numeric = false;
	f->conversions = 0;
}

static void field_end(struct log_line *ll, struct field *f)
{
	if (f->started)
		line_put_field(
			ll, f->key, f->klen, f->val, f->vlen, !f->in_value,
			f->conversions == 1 && !f->literal && f->numeric);
	field_reset(f);
}

/* The formatting below passes a conversion spec rebuilt from the caller's
 * format (already type-checked by the compiler through cw_log's format
 * attribute) to snprintf. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

/* Format the conversion at *@fmt (just past the '%') into @out, taking its
 * arguments from @ap. Advances *@fmt past the conversion. Returns the
 * number of bytes in @out, or -1 for a conversion it cannot type (the
 * rest of the format is then dropped, since the arguments are unknown).
 * Sets *@numeric for d i u f F e E g G. */
static int format_one(const char **fmt, va_list *ap, char *out, size_t size,
		      bool *numeric)
{
	const char *p = *fmt;
	char spec[64];
	size_t sn = 0;
	char len1 = 0, len2 = 0;
	int w;

	spec[sn++] = '%';
	while (*p && strchr("-+ #0'", *p) && sn < 16)
		spec[sn++] = *p++;
	if (*p == '*') {
		p++;
		sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn, "%d",
				       va_arg(*ap, int));
	} else {
		while (*p >= '0' && *p <= '9' && sn < 32)
			spec[sn++] = *p++;
	}
	if (*p == '.') {
		spec[sn++] = *p++;
		if (*p == '*') {
			p++;
			sn += (size_t)snprintf(spec + sn, sizeof(spec) - sn,
					       "%d", va_arg(*ap, int));
		} else {
			while (*p >= '0' && *p <= '9' && sn < 48)
				spec[sn++] = *p++;
		}
	}
	if (*p && strchr("hlLqjzZt", *p)) {
		len1 = *p;
		spec[sn++] = *p++;
		if ((len1 == 'h' || len1 == 'l') && *p == len1) {
			len2 = *p;
			spec[sn++] = *p++;
		}
	}
	if (!*p)
		return -1;
	spec[sn++] = *p;
	spec[sn] = '\0';
	*fmt = p + 1;
	*numeric = strchr("diufFeEgG", *p) != NULL;

	switch (*p) {
	case 'd':
	case 'i':
		if (len1 == 'l' && len2)
			w = snprintf(out, size, spec, va_arg(*ap, long long));
		else if (len1 == 'l')
			w = snprintf(out, size, spec, va_arg(*ap, long));
		else if (len1 == 'q' || len1 == 'L')
			w = snprintf(out, size, spec, va_arg(*ap, long long));
		else if (len1 == 'j')
			w = snprintf(out, size, spec, va_arg(*ap, intmax_t));
		else if (len1 == 'z' || len1 == 'Z')
			w = snprintf(out, size, spec, va_arg(*ap, ssize_t));
		else if (len1 == 't')
			w = snprintf(out, size, spec, va_arg(*ap, ptrdiff_t));
		else
			w = snprintf(out, size, spec, va_arg(*ap, int));
		break;
	case 'u':
	case 'o':
	case 'x':
	case 'X':
		if (len1 == 'l' && len2)
			w = snprintf(out, size, spec,
				     va_arg(*ap, unsigned long long));
		else if (len1 == 'l')
			w = snprintf(out, size, spec,
				     va_arg(*ap, unsigned long));
		else if (len1 == 'q' || len1 == 'L')
			w = snprintf(out, size, spec,
				     va_arg(*ap, unsigned long long));
		else if (len1 == 'j')
			w = snprintf(out, size, spec, va_arg(*ap, uintmax_t));
		else if (len1 == 'z' || len1 == 'Z')
			w = snprintf(out, size, spec, va_arg(*ap, size_t));
		else if (len1 == 't')
			w = snprintf(out, size, spec, va_arg(*ap, ptrdiff_t));
		else
			w = snprintf(out, size, spec,
				     va_arg(*ap, unsigned int));
		break;
	case 'f':
	case 'F':
	case 'e':
	case 'E':
	case 'g':
	case 'G':
	case 'a':
	case 'A':
		if (len1 == 'L')
			w = snprintf(out, size, spec, va_arg(*ap, long double));
		else
			w = snprintf(out, size, spec, va_arg(*ap, double));
		break;
	case 'c':
		w = snprintf(out, size, spec, va_arg(*ap, int));
		break;
	case 'p':
		w = snprintf(out, size, spec, va_arg(*ap, void *));
		break;
	case 's': {
		const char *s = va_arg(*ap, const char *);

		w = snprintf(out, size, spec, s ? s : "(null)");
		break;
	}
	default:
		return -1;
	}
	if (w < 0)
		return -1;
	return (size_t)w < size ? w : (int)size - 1;
}

#pragma GCC diagnostic pop

/* Split @kvfmt into fields and write them, formatting its conversions from
 * @ap. */
static void line_put_fields(struct log_line *ll, const char *kvfmt, va_list *ap)
{
	struct field f;
	char piece[VALUE_MAX_BYTES];
	const char *p = kvfmt;

	field_reset(&f);
	while (*p) {
		if (*p == '%' && p[1] == '%') {
			if (f.in_value)
				f.literal = true;
			field_append(&f, "%", 1);
			p += 2;
		} else if (*p == '%') {
			bool numeric = false;
			int w;

			p++;
			w = format_one(&p, ap, piece, sizeof(piece), &numeric);
			if (w < 0)
				break;
			if (f.in_value) {
				f.numeric = f.conversions == 0
						    ? numeric
						    : f.numeric && numeric;
				f.conversions++;
			}
			field_append(&f, piece, (size_t)w);
			f.started = true;
		} else if (*p == '"') {
			f.quoted = !f.quoted;
			f.started = true;
			p++;
		} else if (!f.quoted && (*p == ' ' || *p == '\t')) {
			field_end(ll, &f);
			p++;
		} else if (!f.in_value && *p == '=') {
			f.in_value = true;
			f.started = true;
			p++;
		} else {
			if (f.in_value)
				f.literal = true;
			field_append(&f, p, 1);
			p++;
		}
	}
	field_end(ll, &f);
}

void cw_log(enum cw_log_level level, const char *msg, const char *kvfmt, ...)
{
	struct log_line ll;
	struct timeval tv;
	struct tm tm;
	char ts[40];
	size_t tn;

	if ((int)level < atomic_load(&log_min_level))
		return;

	ll.n = 0;
	ll.full = false;
	ll.json = atomic_load(&log_format) == CW_LOG_JSON;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	tn = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	tn += (size_t)snprintf(ts + tn, sizeof(ts) - tn, ".%03ldZ",
			       (long)tv.tv_usec / 1000);
	if (!msg)
		msg = "";
	if (ll.json) {
		line_put(&ll, "{\"ts\":\"", 7);
		line_put(&ll, ts, tn);
		line_put(&ll, "\",\"level\":\"", 11);
		line_put(&ll, level_names[level], strlen(level_names[level]));
		line_put(&ll, "\",\"msg\":", 8);
	} else {
		line_put(&ll, "ts=", 3);
		line_put(&ll, ts, tn);
		line_put(&ll, " level=", 7);
		line_put(&ll, level_names[level], strlen(level_names[level]));
		line_put(&ll, " msg=", 5);
	}
	line_put_quoted(&ll, msg, strlen(msg));
	if (kvfmt && *kvfmt) {
		va_list ap;

		va_start(ap, kvfmt);
		line_put_fields(&ll, kvfmt, &ap);
		va_end(ap);
	}
	if (ll.json)
		line_force(&ll, '}');
	line_force(&ll, '\n');
	/* One write so concurrent lines never interleave. */
	if (write(STDERR_FILENO, ll.buf, ll.n) < 0) {
		/* Nowhere left to report it. */
	}
}
