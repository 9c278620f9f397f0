/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_out — NDJSON batches to the gateway over HTTP. See http_out.h.
 */
#include "http_out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "clock.h"
#include "cw_log.h"
#include "cw_uuid.h"

#define RESP_MAX	4096
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	5000
#define RETRY_AFTER_MAX 60    /* s: a longer Retry-After is capped */
#define ATTEMPT_TIMEOUT 60000 /* ms for one request, answer included */
#define CONNECT_TIMEOUT 5000
#define TOKEN_MAX	4096

struct http_out {
	CURL *curl;
	char *url;
	char *auth; /* "Authorization: Bearer ..." or NULL */
	int64_t retry_timeout_ms;
	const volatile sig_atomic_t *stop;
	struct http_out_stats st;
	char *body;
	size_t len, nevents;
	int64_t first_ms; /* monotonic ms when the batch's first event came */
	char resp[RESP_MAX + 1];
	size_t resp_len;
};

static int64_t mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

static size_t on_body(char *data, size_t size, size_t n, void *opaque)
{
	struct http_out *h = opaque;
	size_t len = size * n, room = RESP_MAX - h->resp_len;

	memcpy(h->resp + h->resp_len, data, len < room ? len : room);
	h->resp_len += len < room ? len : room;
	h->resp[h->resp_len] = '\0';
	return len; /* the rest is dropped, not an error */
}

/* Read the token in @path (first line, surrounding blanks trimmed) into a
 * malloc'd "Authorization: Bearer TOKEN" header. */
static char *read_token(const char *path, char *errstr, size_t errstr_size)
{
	FILE *f = fopen(path, "r");
	char buf[TOKEN_MAX], *p, *end, *hdr;
	size_t n;

	if (!f) {
		snprintf(errstr, errstr_size, "cannot read token file %s: %s",
			 path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (p = buf; *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'; p++)
		;
	end = p + strcspn(p, "\r\n");
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end == p) {
		snprintf(errstr, errstr_size, "token file %s is empty", path);
		return NULL;
	}
	*end = '\0';
	if (!(hdr = malloc(strlen(p) + 32))) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	sprintf(hdr, "Authorization: Bearer %s", p);
	return hdr;
}

struct http_out *http_out_new(const char *url, const char *token_file,
			      int64_t retry_timeout_ms,
			      const volatile sig_atomic_t *stop, char *errstr,
			      size_t errstr_size)
{
	struct http_out *h = calloc(1, sizeof(*h));

	if (!h || !(h->url = strdup(url)) ||
	    !(h->body = malloc(HTTP_OUT_BATCH_BYTES))) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	h->retry_timeout_ms = retry_timeout_ms;
	h->stop = stop;
	if (token_file &&
	    !(h->auth = read_token(token_file, errstr, errstr_size)))
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    !(h->curl = curl_easy_init())) {
		snprintf(errstr, errstr_size, "cannot start libcurl");
		goto fail;
	}
	return h;
fail:
	http_out_destroy(h);
	return NULL;
}

void http_out_destroy(struct http_out *h)
{
	if (!h)
		return;
	if (h->curl) {
		curl_easy_cleanup(h->curl);
		curl_global_cleanup();
	}
	free(h->auth);
	free(h->body);
	free(h->url);
	free(h);
}

/* The response body as one printable line for a log value. */
static const char *resp_text(struct http_out *h)
{
	for (size_t i = 0; i < h->resp_len; i++)
		if (h->resp[i] < 0x20 || h->resp[i] == '"' ||
		    h->resp[i] == '\\')
			h->resp[i] = h->resp[i] == '"' ? '\'' : ' ';
	return h->resp;
}

/* One POST of the batch. Returns the HTTP status, or 0 on a transport
 * error (its text in @cerr); *@retry_after_s is the answer's Retry-After
 * or -1. */
static long post_once(struct http_out *h, struct curl_slist *hdrs, char *cerr,
		      long *retry_after_s)
{
	curl_off_t ra = -1;
	long status = 0;
	CURLcode rc;

	h->resp_len = 0;
	h->resp[0] = '\0';
	cerr[0] = '\0';
	curl_easy_reset(h->curl); /* keeps the connection cache */
	curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, h->body);
	curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)h->len);
	curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)CONNECT_TIMEOUT);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, (long)ATTEMPT_TIMEOUT);
	curl_easy_setopt(h->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "cartwatch-producer");
	rc = curl_easy_perform(h->curl);
	if (rc != CURLE_OK) {
		if (!cerr[0])
			snprintf(cerr, CURL_ERROR_SIZE, "%s",
				 curl_easy_strerror(rc));
		*retry_after_s = -1;
		return 0;
	}
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(h->curl, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK)
		ra = -1;
	*retry_after_s = ra > 0 ? (long)ra : -1;
	return status;
}

/* The N of a 202's {"accepted": N}, or -1. */
static long long accepted(const struct http_out *h)
{
	json_t *j = json_loadb(h->resp, h->resp_len, 0, NULL);
	json_t *v = json_object_get(j, "accepted");
	long long n = json_is_integer(v) ? json_integer_value(v) : -1;

	json_decref(j);
	return n;
}

static bool stopping(const struct http_out *h)
{
	return h->stop && *h->stop;
}

/* Sleep @ms, or less when a stop is requested. */
static void sleep_ms(const struct http_out *h, int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !stopping(h))
		;
}

/* The batch is over: count it and start an empty one. */
static void batch_done(struct http_out *h, bool delivered)
{
	if (delivered)
		h->st.delivered += h->nevents;
	else
		h->st.failed += h->nevents;
	h->len = h->nevents = 0;
}

int http_out_send(struct http_out *h)
{
	struct curl_slist *hdrs = NULL, *t;
	char key[CW_UUID_LEN + 1], keyhdr[64], cerr[CURL_ERROR_SIZE];
	int64_t deadline, backoff = BACKOFF_MIN_MS, wait;
	int attempt = 0, r;

	if (!h->nevents)
		return 0;
	if ((r = cw_uuid_v7(key)) < 0) {
		cw_error("cannot make an Idempotency-Key", "error=\"%s\"",
			 strerror(-r));
		batch_done(h, false);
		return -EPIPE;
	}
	snprintf(keyhdr, sizeof(keyhdr), "Idempotency-Key: %s", key);
	const char *lines[] = {"Content-Type: application/x-ndjson",
			       "Expect:", keyhdr, h->auth};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!lines[i])
			continue;
		if (!(t = curl_slist_append(hdrs, lines[i]))) {
			curl_slist_free_all(hdrs);
			cw_error("out of memory", NULL);
			batch_done(h, false);
			return -EPIPE;
		}
		hdrs = t;
	}
	deadline = mono_ms() + h->retry_timeout_ms;
	for (;;) {
		long retry_after, status;
		long long n;

		attempt++;
		status = post_once(h, hdrs, cerr, &retry_after);
		if (status == 202) {
			n = accepted(h);
			if (n != (long long)h->nevents)
				cw_warn("gateway accepted another count",
					"sent=%zu accepted=%lld body=\"%s\"",
					h->nevents, n, resp_text(h));
			batch_done(h, true);
			r = 0;
			break;
		}
		if (status && status != 503 && status < 500) {
			cw_error("gateway refused the batch, stopping",
				 "url=%s status=%ld events=%zu body=\"%s\"",
				 h->url, status, h->nevents, resp_text(h));
			batch_done(h, false);
			r = -EPIPE;
			break;
		}
		wait = retry_after > 0 ? (retry_after > RETRY_AFTER_MAX
						  ? RETRY_AFTER_MAX
						  : retry_after) *
						 1000
				       : backoff;
		if (mono_ms() + wait > deadline || stopping(h)) {
			cw_error("gateway unavailable, giving up the batch",
				 "url=%s status=%ld error=\"%s\" body=\"%s\" "
				 "attempts=%d events=%zu stop_requested=%s",
				 h->url, status, cerr, resp_text(h), attempt,
				 h->nevents, stopping(h) ? "true" : "false");
			batch_done(h, false);
			r = -EPIPE;
			break;
		}
		if (attempt == 1 || attempt % 10 == 0)
			cw_warn("gateway unavailable, retrying",
				"url=%s status=%ld error=\"%s\" body=\"%s\" "
				"attempt=%d retry_in_ms=%" PRId64,
				h->url, status, cerr, resp_text(h), attempt,
				wait);
		sleep_ms(h, wait);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
						       : backoff * 2;
	}
	curl_slist_free_all(hdrs);
	return r;
}

int http_out_add(struct http_out *h, const char *line, size_t len)
{
	int r;

	if (len + 1 > HTTP_OUT_BATCH_BYTES)
		return -EMSGSIZE;
	if ((h->nevents == HTTP_OUT_BATCH_EVENTS ||
	     h->len + len + 1 > HTTP_OUT_BATCH_BYTES) &&
	    (r = http_out_send(h)) < 0)
		return r;
	if (!h->nevents)
		h->first_ms = mono_ms();
	memcpy(h->body + h->len, line, len);
	h->body[h->len + len] = '\n';
	h->len += len + 1;
	h->nevents++;
	return 0;
}

int http_out_poll(struct http_out *h)
{
	if (!h->nevents || mono_ms() - h->first_ms < HTTP_OUT_LINGER_MS)
		return 0;
	return http_out_send(h);
}

size_t http_out_pending(const struct http_out *h)
{
	return h->nevents;
}

void http_out_get_stats(const struct http_out *h, struct http_out_stats *st)
{
	*st = h->st;
}
