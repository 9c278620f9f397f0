/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify — the cartwatch-notify daemon: consume cart-abandonments in a
 * consumer group, hold each partition (paused) until its head record is
 * due, POST each abandonment to the webhook with libcurl's multi
 * interface, retry what may succeed later, dead-letter the rest, and
 * commit a partition's offset only up to the last record whose
 * predecessors are all handled (delivered, skipped or dead-lettered).
 *
 * Everything runs on the caller's thread: one loop drives Kafka, curl and
 * the optional PostgreSQL lookups. Not for: exactly-once delivery (the
 * receiver de-duplicates by Idempotency-Key), ordering across records.
 */
#pragma once

#include <signal.h>
#include <stddef.h>

#include "config.h"

struct notify;

/* Read the secret, connect Kafka (and PostgreSQL when --pg is given) and
 * start the metrics endpoint. @stop is polled by notify_run() (set from a
 * signal handler). Returns the daemon, or NULL with a reason in @errstr.
 * @cfg must outlive the daemon. Main thread only. */
struct notify *notify_new(const struct notify_config *cfg,
			  volatile sig_atomic_t *stop, char *errstr,
			  size_t errstr_size);

/* Run until *stop is set, then stop taking records, let requests in
 * flight finish within --shutdown-timeout, commit what was handled and
 * leave the group. Returns 0, or -EIO after a fatal Kafka error. */
int notify_run(struct notify *n);

/* Free everything; NULL is fine. */
void notify_destroy(struct notify *n);
