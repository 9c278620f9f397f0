/* SPDX-License-Identifier: Apache-2.0 */
/*
 * webhook — body, signature and retry policy of one delivery. See
 * webhook.h.
 */
#include "webhook.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static json_t *str_json(struct cw_str s)
{
	if (!s.ptr)
		return json_null();
	return json_stringn(s.ptr, s.len); /* NULL if not UTF-8 */
}

static json_t *time_json(int64_t ms)
{
	char buf[96];
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	struct tm tm;

	if (!gmtime_r(&s, &tm))
		return NULL;
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, frac);
	return json_string(buf);
}

/* Append @s percent-encoded (RFC 3986 unreserved kept) to @out at @len. */
static int url_encode_append(char **out, size_t *len, size_t *cap,
			     struct cw_str s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		if (*len + 4 > *cap) {
			size_t ncap = *cap * 2 + 64;
			char *n = realloc(*out, ncap);
			if (!n)
				return -ENOMEM;
			*out = n;
			*cap = ncap;
		}
		if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
		    c == '~') {
			(*out)[(*len)++] = (char)c;
		} else {
			(*out)[(*len)++] = '%';
			(*out)[(*len)++] = hex[c >> 4];
			(*out)[(*len)++] = hex[c & 15];
		}
	}
	return 0;
}

static char *cart_url(const char *tpl, const struct cw_abandonment *ab)
{
	size_t len = 0, cap = strlen(tpl) + 64;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	for (const char *p = tpl; *p;) {
		struct cw_str piece = {p, 1};
		bool encode = false;
		if (strncmp(p, "{user_id}", 9) == 0) {
			piece = ab->user_id;
			encode = true;
			p += 9;
		} else if (strncmp(p, "{abandonment_id}", 16) == 0) {
			piece = ab->abandonment_id;
			encode = true;
			p += 16;
		} else {
			p++;
		}
		if (encode) {
			if (url_encode_append(&out, &len, &cap, piece) < 0)
				goto fail;
			continue;
		}
		if (len + 2 > cap) {
			char *n = realloc(out, cap * 2);
			if (!n)
				goto fail;
			out = n;
			cap *= 2;
		}
		out[len++] = *piece.ptr;
	}
	out[len] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

char *webhook_body(const struct cw_abandonment *ab, const char *cart_url_tpl)
{
	json_t *o = json_object(), *items = json_array();
	char *url = NULL, *text = NULL;
	int bad = !o || !items;

	for (size_t i = 0; !bad && i < ab->n_items; i++) {
		const struct cw_abandoned_item *it = &ab->items[i];
		json_t *j = json_object();
		bad |= !j;
		bad |= json_object_set_new(j, "product_id",
					   str_json(it->product_id)) != 0;
		bad |= json_object_set_new(j, "quantity",
					   json_integer(it->quantity)) != 0;
		bad |= json_object_set_new(
			       j, "unit_price_cents",
			       json_integer(it->unit_price_cents)) != 0;
		bad |= json_array_append_new(items, j) != 0;
	}
	if (bad)
		goto out;
	bad |= json_object_set_new(o, "abandonment_id",
				   str_json(ab->abandonment_id)) != 0;
	bad |= json_object_set_new(o, "user_id", str_json(ab->user_id)) != 0;
	bad |= json_object_set_new(o, "session_start",
				   time_json(ab->session_start_ms)) != 0;
	bad |= json_object_set_new(o, "abandoned_at",
				   time_json(ab->abandoned_at_ms)) != 0;
	bad |= json_object_set(o, "items", items) != 0;
	bad |= json_object_set_new(o, "item_count",
				   json_integer(ab->item_count)) != 0;
	bad |= json_object_set_new(o, "cart_value_cents",
				   json_integer(ab->cart_value_cents)) != 0;
	bad |= json_object_set_new(o, "currency", str_json(ab->currency)) != 0;
	bad |= json_object_set_new(o, "last_remove_reason",
				   str_json(ab->last_remove_reason)) != 0;
	if (cart_url_tpl) {
		url = cart_url(cart_url_tpl, ab);
		bad |= !url || json_object_set_new(o, "cart_url",
						   json_string(url)) != 0;
	}
	if (!bad)
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
	free(url);
	json_decref(items);
	json_decref(o);
	return text;
}

int webhook_sign(const void *secret, size_t secret_len, int64_t t,
		 const char *body, size_t body_len, char *out, size_t out_size)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char prefix[32];
	int plen = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
	unsigned char *msg;
	bool ok;

	if (out_size < 96)
		return -EINVAL;
	msg = malloc((size_t)plen + body_len + 1);
	if (!msg)
		return -ENOMEM;
	memcpy(msg, prefix, (size_t)plen);
	memcpy(msg + plen, body, body_len);
	ok = HMAC(EVP_sha256(), secret, (int)secret_len, msg,
		  (size_t)plen + body_len, mac, &mac_len) != NULL;
	free(msg);
	if (!ok || mac_len != 32)
		return -EIO;
	int n = snprintf(out, out_size, "t=%" PRId64 ",v1=", t);
	for (unsigned i = 0; i < mac_len; i++)
		n += snprintf(out + n, out_size - (size_t)n, "%02x", mac[i]);
	return 0;
}

enum webhook_verdict webhook_verdict(long status)
{
	if (status >= 200 && status < 300)
		return WEBHOOK_DELIVERED;
	if (status == 0 || status == 408 || status == 429 || status >= 500)
		return WEBHOOK_RETRY;
	return WEBHOOK_REFUSED;
}

int64_t webhook_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
			   int64_t retry_after_ms, double rnd)
{
	int64_t b = base_ms;

	if (retry_after_ms >= 0)
		return retry_after_ms < max_ms ? retry_after_ms : max_ms;
	for (int i = 1; i < attempt && b < max_ms; i++)
		b *= 2;
	if (b > max_ms)
		b = max_ms;
	return b / 2 + (int64_t)((double)(b - b / 2) * rnd);
}

int64_t webhook_retry_after_ms(const char *value, int64_t now_s)
{
	char *end;
	long long s;
	time_t t;

	while (*value == ' ' || *value == '\t')
		value++;
	if (isdigit((unsigned char)*value)) {
		errno = 0;
		s = strtoll(value, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' ||
		       *end == '\n')
			end++;
		if (errno || *end || s > 86400LL * 366)
			return -1;
		return s * 1000;
	}
	t = curl_getdate(value, NULL);
	if (t < 0)
		return -1;
	return t > now_s ? ((int64_t)t - now_s) * 1000 : 0;
}
