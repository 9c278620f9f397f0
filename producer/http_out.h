/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_out — the --http sink's client: events as NDJSON lines, POSTed in
 * batches (up to HTTP_OUT_BATCH_EVENTS events or HTTP_OUT_BATCH_BYTES) to a
 * cartwatch-gateway's POST /v1/events over one keep-alive connection
 * (libcurl easy interface).
 *
 * A batch is delivered when the gateway answers 202 {"accepted": N}, which
 * it does only after Kafka acknowledged every event. 503 (Retry-After
 * honoured), other 5xx and transport errors are retried with backoff
 * (100 ms doubling to 5 s) until the retry timeout; every attempt of a
 * batch carries the same Idempotency-Key, so a retry after a lost answer
 * produces nothing twice. Any other answer (4xx: bad token, invalid event,
 * body too large) fails the run loudly with the gateway's error body.
 *
 * Not for: the JSON formatting of an event (sink.c) or parallel requests.
 * Locality: one thread (the run loop); calls block while a batch is sent.
 */
#pragma once

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_OUT_BATCH_EVENTS 500
#define HTTP_OUT_BATCH_BYTES  (512 * 1024) /* gateway's --max-body: 1MB */
#define HTTP_OUT_LINGER_MS    20	   /* like the Kafka sink's linger.ms */

struct http_out;

struct http_out_stats {
	uint64_t delivered; /* events answered 202 */
	uint64_t failed;    /* events of batches given up or refused */
};

/* Prepare a client for @url with the bearer token read from @token_file
 * (NULL: none); a batch is retried for up to @retry_timeout_ms, or until
 * *@stop (borrowed, may be NULL; set by the SIGINT/SIGTERM handler)
 * becomes non-zero, so a stop request never waits out an unavailable
 * gateway: the batch is then given up and counted as failed. Returns
 * NULL with the reason in @errstr (libcurl cannot start, token file
 * unreadable or empty, out of memory). Free with http_out_destroy(). */
struct http_out *http_out_new(const char *url, const char *token_file,
			      int64_t retry_timeout_ms,
			      const volatile sig_atomic_t *stop, char *errstr,
			      size_t errstr_size);

/* Free @h (NULL is fine); events not sent are dropped (call
 * http_out_send() first). */
void http_out_destroy(struct http_out *h);

/* Append one event, the @len bytes of JSON at @line (no newline), sending
 * the batch first when it is full. Returns 0, -EMSGSIZE when @line alone
 * is over the batch size (nothing added), or what http_out_send() returns
 * for the batch that was sent. */
int http_out_add(struct http_out *h, const char *line, size_t len);

/* Send the pending batch now, retrying as above; returns at once when
 * nothing is pending. Returns 0 (delivered), or -EPIPE when the batch was
 * refused or given up (logged with the status and body, counted as
 * failed): the caller should stop. */
int http_out_send(struct http_out *h);

/* Send the pending batch if its oldest event waited HTTP_OUT_LINGER_MS.
 * Returns as http_out_send(). */
int http_out_poll(struct http_out *h);

/* Events waiting in the pending batch. Can't fail. */
size_t http_out_pending(const struct http_out *h);

/* Copy the counters. Can't fail. */
void http_out_get_stats(const struct http_out *h, struct http_out_stats *st);
