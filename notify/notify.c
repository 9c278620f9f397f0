/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify — the cartwatch-notify daemon. See notify.h.
 *
 * Each consumed record becomes a job, kept in its partition's list in
 * offset order until it is handled. A job is WAITING (not started: not due
 * yet, or no free slot), INFLIGHT (a curl transfer), BACKOFF (waiting to
 * be retried), DLQ (its dead letter is being produced) or DONE. A
 * partition whose next record is not due, or that holds waiting_cap()
 * WAITING jobs, is paused, so a backlog stays in Kafka and not in memory;
 * the committed offset is the first job not DONE.
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "cw_abandonment.h"
#include "cw_kafka.h"
#include "cw_log.h"
#include "cw_time.h"
#include "metrics.h"
#include "webhook.h"

#define MAX_ITEMS	65536
#define EXCERPT_MAX	256
#define COMMIT_EVERY_MS 500
#define SECRET_MAX	4096
/* Due records a partition may hold (per --concurrency slot, and at
 * least WAITING_MIN) before it pauses: enough to keep the slots busy
 * while a resumed partition fetches again (librdkafka takes hundreds of
 * ms to resume). A paused partition resumes at half of it. */
#define WAITING_PER_SLOT 16
#define WAITING_MIN	 256
/* While Kafka is unreachable, ask it for metadata this often, waiting at
 * most PROBE_TIMEOUT_MS (the loop blocks meanwhile): the way back to a
 * healthy /healthz when no record comes to say so. */
#define PROBE_EVERY_MS	 1000
#define PROBE_TIMEOUT_MS 100

enum job_state { JOB_WAITING, JOB_INFLIGHT, JOB_BACKOFF, JOB_DLQ, JOB_DONE };

struct part;

struct job {
	struct job *prev, *next; /* in part's list, or the orphan list */
	struct part *part;	 /* NULL: its partition was revoked */
	int64_t offset;
	enum job_state state;
	int64_t due_ms;	  /* wall ms when it may be sent */
	int64_t retry_ms; /* BACKOFF, DLQ retry: wall ms of the next try */
	int attempts;
	bool dlq_retry; /* DLQ: produce failed, try again at retry_ms */
	void *key, *value;
	size_t key_len, value_len;
	char *body; /* JSON; NULL: undecodable, dead-letter */
	char id[40];
	char reason[160]; /* why it is dead-lettered */
	CURL *easy;
	struct curl_slist *hdrs;
	char excerpt[EXCERPT_MAX + 1];
	size_t excerpt_len;
	int64_t retry_after_ms; /* from the last answer, -1: none */
	int64_t started_mono_ms;
	long status; /* last HTTP status, 0: none */
};

struct part {
	struct part *next;
	int32_t partition;
	struct job *head, *tail;
	int64_t next_offset; /* after the last record taken */
	int64_t committed;   /* last position committed, -1: none */
	bool paused;
	int n_waiting; /* jobs in state WAITING */
};

struct notify {
	const struct notify_config *cfg;
	volatile sig_atomic_t *stop;
	rd_kafka_t *consumer, *producer;
	CURLM *multi;
	PGconn *pg;
	char secret[SECRET_MAX];
	size_t secret_len;
	struct part *parts;
	struct job orphans; /* sentinel of revoked jobs still in flight */
	struct cw_abandoned_item *items;
	int active;	     /* INFLIGHT + BACKOFF */
	int inflight;	     /* curl transfers */
	int dlq_pending;     /* dead letters not yet acknowledged */
	double next_send_ms; /* --max-rate: no request before this wall ms */
	bool rate_waiting;   /* a due record waits for next_send_ms */
	int64_t last_commit_ms;
	bool fatal;
	struct notify_stats st; /* for the logs and /metrics */
	uint64_t n_dup;
	struct notify_metrics *metrics;
	int64_t last_publish_ms;
	int64_t last_probe_ms;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double rnd01(void)
{
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint32_t)rand();
	return (double)r / 4294967296.0;
}

/* ---- jobs and partitions ---- */

static struct part *part_find(struct notify *n, int32_t partition)
{
	for (struct part *p = n->parts; p; p = p->next)
		if (p->partition == partition)
			return p;
	return NULL;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->key);
	free(j->value);
	free(j->body);
	curl_slist_free_all(j->hdrs);
	if (j->easy)
		curl_easy_cleanup(j->easy);
	free(j);
}

static void list_unlink(struct job *j)
{
	if (j->part) {
		if (j->prev)
			j->prev->next = j->next;
		else
			j->part->head = j->next;
		if (j->next)
			j->next->prev = j->prev;
		else
			j->part->tail = j->prev;
	} else {
		j->prev->next = j->next;
		j->next->prev = j->prev;
	}
	j->prev = j->next = NULL;
}

/* Forget a finished job: DONE jobs of a live partition stay in its list
 * until every predecessor is done (then the commit position moves past
 * them); a revoked partition's job is freed at once. */
static void job_finish(struct notify *n, struct job *j)
{
	j->state = JOB_DONE;
	if (!j->part) {
		list_unlink(j);
		job_free(j);
		return;
	}
	struct part *p = j->part;
	while (p->head && p->head->state == JOB_DONE) {
		struct job *h = p->head;
		list_unlink(h);
		job_free(h);
	}
	(void)n;
}

static int64_t part_position(const struct part *p)
{
	return p->head ? p->head->offset : p->next_offset;
}

/* ---- dead letters ---- */

static void dlq_produce(struct notify *n, struct job *j)
{
	char part[16], off[24], status[16], attempts[16];
	rd_kafka_headers_t *h = rd_kafka_headers_new(8);
	rd_kafka_resp_err_t err;

	snprintf(part, sizeof(part), "%" PRId32,
		 j->part ? j->part->partition : -1);
	snprintf(off, sizeof(off), "%" PRId64, j->offset);
	snprintf(status, sizeof(status), "%ld", j->status);
	snprintf(attempts, sizeof(attempts), "%d", j->attempts);
	rd_kafka_header_add(h, "cartwatch.error", -1, j->reason, -1);
	rd_kafka_header_add(h, "cartwatch.source.topic", -1, n->cfg->topic, -1);
	rd_kafka_header_add(h, "cartwatch.source.partition", -1, part, -1);
	rd_kafka_header_add(h, "cartwatch.source.offset", -1, off, -1);
	rd_kafka_header_add(h, "cartwatch.http.status", -1, status, -1);
	rd_kafka_header_add(h, "cartwatch.attempts", -1, attempts, -1);
	rd_kafka_header_add(h, "cartwatch.response", -1, j->excerpt,
			    (ssize_t)j->excerpt_len);
	err = rd_kafka_producev(
		n->producer, RD_KAFKA_V_TOPIC(n->cfg->dlq_topic),
		RD_KAFKA_V_KEY(j->key, j->key_len),
		RD_KAFKA_V_VALUE(j->value, j->value_len),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
		RD_KAFKA_V_OPAQUE(j), RD_KAFKA_V_END);
	if (err) {
		rd_kafka_headers_destroy(h);
		cw_warn("dead letter not queued, retrying",
			"offset=%" PRId64 " error=\"%s\"", j->offset,
			rd_kafka_err2str(err));
		j->dlq_retry = true;
		j->retry_ms = wall_ms() + 1000;
		return;
	}
	j->dlq_retry = false;
	n->dlq_pending++;
}

/* Send @j to the dead-letter topic for @why; it is handled once the
 * broker acknowledges. */
static void job_dead_letter(struct notify *n, struct job *j, const char *why)
{
	if (why != j->reason)
		snprintf(j->reason, sizeof(j->reason), "%s", why);
	j->state = JOB_DLQ;
	cw_warn("dead-lettering",
		"partition=%" PRId32 " offset=%" PRId64
		" id=%s status=%ld attempts=%d reason=\"%s\"",
		j->part ? j->part->partition : -1, j->offset,
		j->id[0] ? j->id : "-", j->status, j->attempts, why);
	dlq_produce(n, j);
}

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			    void *opaque)
{
	struct notify *n = opaque;
	struct job *j = m->_private;

	(void)rk;
	n->dlq_pending--;
	if (m->err && !j->part) { /* revoked: the next owner redoes it */
		list_unlink(j);
		job_free(j);
		return;
	}
	if (m->err) {
		cw_warn("dead letter failed, retrying",
			"offset=%" PRId64 " error=\"%s\"", j->offset,
			rd_kafka_err2str(m->err));
		j->dlq_retry = true;
		j->retry_ms = wall_ms() + 1000;
		return;
	}
	n->st.dead_lettered++;
	job_finish(n, j);
}

/* ---- HTTP ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t len = size * nmemb, room = EXCERPT_MAX - j->excerpt_len;
	size_t take = len < room ? len : room;

	memcpy(j->excerpt + j->excerpt_len, ptr, take);
	j->excerpt_len += take;
	j->excerpt[j->excerpt_len] = '\0';
	return len;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct job *j = ud;
	size_t len = size * nmemb;
	char val[128];

	if (len > 12 && len < 12 + sizeof(val) &&
	    strncasecmp(ptr, "Retry-After:", 12) == 0) {
		memcpy(val, ptr + 12, len - 12);
		val[len - 12] = '\0';
		j->retry_after_ms = webhook_retry_after_ms(val, time(NULL));
	}
	return len;
}

/* Start one attempt of @j. Returns 0 or -ENOMEM/-EIO (the caller
 * dead-letters the job). */
static int job_send(struct notify *n, struct job *j)
{
	char sig[128], hdr[200];
	size_t body_len = strlen(j->body);

	if (webhook_sign(n->secret, n->secret_len, time(NULL), j->body,
			 body_len, sig, sizeof(sig)) < 0)
		return -EIO;
	curl_slist_free_all(j->hdrs);
	j->hdrs = NULL;
	if (j->easy)
		curl_easy_cleanup(j->easy);
	j->easy = curl_easy_init();
	if (!j->easy)
		return -ENOMEM;
	struct curl_slist *h = NULL, *t;
	char ua[64];
	const char *lines[3] = {"Content-Type: application/json", ua, hdr};
	snprintf(ua, sizeof(ua), "User-Agent: cartwatch-notify/%s",
		 cw_version());
	snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", j->id);
	for (int i = 0; i < 3; i++) {
		t = curl_slist_append(h, lines[i]);
		if (!t)
			goto nomem;
		h = t;
	}
	char sighdr[160];
	snprintf(sighdr, sizeof(sighdr), "X-Cartwatch-Signature: %s", sig);
	t = curl_slist_append(h, sighdr);
	if (!t)
		goto nomem;
	h = t;
	j->hdrs = h;
	j->excerpt_len = 0;
	j->excerpt[0] = '\0';
	j->retry_after_ms = -1;
	j->status = 0;
	curl_easy_setopt(j->easy, CURLOPT_URL, n->cfg->webhook_url);
	curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->hdrs);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)body_len);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(j->easy, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS,
			 (long)n->cfg->request_timeout_ms);
	curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
	if (curl_multi_add_handle(n->multi, j->easy) != CURLM_OK)
		return -EIO;
	j->attempts++;
	n->st.attempts++;
	j->started_mono_ms = cw_mono_ms();
	j->state = JOB_INFLIGHT;
	n->inflight++;
	return 0;
nomem:
	curl_slist_free_all(h);
	return -ENOMEM;
}

static void on_done(struct notify *n, CURL *easy, CURLcode res)
{
	struct job *j = NULL;
	long status = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&j);
	if (res == CURLE_OK)
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(n->multi, easy);
	curl_easy_cleanup(easy);
	j->easy = NULL;
	n->inflight--;
	n->active--;
	j->status = status;
	cw_prom_observe(&n->st.latency, notify_latency_bounds,
			NOTIFY_LATENCY_BUCKETS,
			(double)(cw_mono_ms() - j->started_mono_ms) / 1000.0);
	if (res != CURLE_OK)
		snprintf(j->excerpt, sizeof(j->excerpt), "%s",
			 curl_easy_strerror(res));
	if (res != CURLE_OK)
		j->excerpt_len = strlen(j->excerpt);

	enum webhook_verdict v = webhook_verdict(status);
	if (v == WEBHOOK_DELIVERED) {
		n->st.delivered++;
		cw_debug("delivered", "id=%s status=%ld attempts=%d", j->id,
			 status, j->attempts);
		job_finish(n, j);
		return;
	}
	if (!j->part) { /* revoked meanwhile: the next owner sends it */
		list_unlink(j);
		job_free(j);
		return;
	}
	if (v == WEBHOOK_REFUSED) {
		job_dead_letter(n, j, "refused by the webhook");
		return;
	}
	if (j->attempts >= n->cfg->max_attempts) {
		job_dead_letter(n, j, "attempts exhausted");
		return;
	}
	int64_t wait = webhook_backoff_ms(j->attempts, n->cfg->retry_backoff_ms,
					  n->cfg->max_backoff_ms,
					  j->retry_after_ms, rnd01());
	cw_info("will retry",
		"id=%s status=%ld attempts=%d wait_ms=%" PRId64 " error=\"%s\"",
		j->id, status, j->attempts, wait,
		res != CURLE_OK ? curl_easy_strerror(res) : "");
	n->st.retries++;
	j->state = JOB_BACKOFF;
	j->retry_ms = wall_ms() + wait;
	n->active++;
}

/* ---- PostgreSQL: recovered? ---- */

/* 1: recovered, 0: not (or unknown to PostgreSQL), -EIO: ask later. */
static int pg_recovered(struct notify *n, const char *id)
{
	const char *params[1] = {id};
	PGresult *res;
	int r;

	if (PQstatus(n->pg) != CONNECTION_OK) {
		PQreset(n->pg);
		if (PQstatus(n->pg) != CONNECTION_OK)
			return -EIO;
	}
	res = PQexecParams(n->pg,
			   "SELECT recovered_at IS NOT NULL FROM "
			   "cart_abandonments WHERE abandonment_id = $1::uuid",
			   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cw_warn("recovery lookup failed", "error=\"%s\"",
			PQerrorMessage(n->pg));
		PQclear(res);
		return -EIO;
	}
	r = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return r;
}

/* ---- scheduling ---- */

static void part_pause(struct notify *n, struct part *p, bool pause)
{
	rd_kafka_topic_partition_list_t *l;

	if (p->paused == pause)
		return;
	l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, n->cfg->topic, p->partition);
	if (pause)
		rd_kafka_pause_partitions(n->consumer, l);
	else
		rd_kafka_resume_partitions(n->consumer, l);
	rd_kafka_topic_partition_list_destroy(l);
	p->paused = pause;
}

static int waiting_cap(const struct notify *n)
{
	int64_t cap = WAITING_PER_SLOT * n->cfg->concurrency;
	return cap > WAITING_MIN ? (int)cap : WAITING_MIN;
}

/* Start what may start in @p, in offset order. Pause it while its next
 * record is not due (the backlog stays in Kafka), or while it holds
 * waiting_cap() records that wait for a slot or --max-rate; not sooner,
 * since every pause and resume costs a fetch. */
static void part_schedule(struct notify *n, struct part *p, int64_t now)
{
	bool waiting = false; /* a record waits: those after it wait too */
	bool hold = *n->stop; /* stop fetching */
	int cap = waiting_cap(n);

	for (struct job *j = p->head, *next; j; j = next) {
		next = j->next;
		if (j->state == JOB_DLQ && j->dlq_retry && !*n->stop &&
		    j->retry_ms <= now) {
			dlq_produce(n, j);
			continue;
		}
		if (j->state == JOB_BACKOFF && j->retry_ms <= now &&
		    !*n->stop) {
			n->active--;
			if (job_send(n, j) < 0)
				job_dead_letter(n, j, "cannot build request");
			else
				n->active++;
			continue;
		}
		if (j->state != JOB_WAITING || waiting)
			continue;
		if (!j->body) {
			p->n_waiting--;
			job_dead_letter(n, j, j->reason);
			continue;
		}
		if (*n->stop || j->due_ms > now) {
			waiting = hold = true;
			continue;
		}
		if (n->active >= n->cfg->concurrency) {
			waiting = true;
			continue;
		}
		if (n->cfg->max_rate > 0 && n->next_send_ms > (double)now) {
			waiting = n->rate_waiting = true;
			continue;
		}
		if (n->pg) {
			int r = pg_recovered(n, j->id);
			if (r < 0) {
				j->due_ms = now + 1000;
				waiting = hold = true;
				continue;
			}
			if (r == 1) {
				p->n_waiting--;
				n->st.skipped_recovered++;
				cw_debug("skipped: recovered", "id=%s", j->id);
				job_finish(n, j);
				continue;
			}
		}
		/* Fractional ms, so that rates above 1000/s still limit. A
		 * turn that came late may make up one interval, no more: a
		 * second holds at most one request above the rate. */
		if (n->cfg->max_rate > 0) {
			double gap = 1000.0 / n->cfg->max_rate;
			if (n->next_send_ms < (double)now - gap)
				n->next_send_ms = (double)now - gap;
			n->next_send_ms += gap;
		}
		p->n_waiting--;
		if (job_send(n, j) < 0)
			job_dead_letter(n, j, "cannot build request");
		else
			n->active++;
	}
	part_pause(n, p,
		   hold || p->n_waiting >= cap ||
			   (p->paused && p->n_waiting > cap / 2));
}

/* ---- Kafka ---- */

/* Commit every partition whose position moved. @sync: wait for it. */
static void commit_positions(struct notify *n, bool sync)
{
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new(8);
	rd_kafka_resp_err_t err;

	for (struct part *p = n->parts; p; p = p->next) {
		int64_t pos = part_position(p);
		if (pos < 0 || pos <= p->committed)
			continue;
		rd_kafka_topic_partition_list_add(l, n->cfg->topic,
						  p->partition)
			->offset = pos;
		p->committed = pos;
	}
	if (l->cnt > 0) {
		err = rd_kafka_commit(n->consumer, l, !sync);
		if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
			cw_warn("commit failed", "error=\"%s\"",
				rd_kafka_err2str(err));
	}
	rd_kafka_topic_partition_list_destroy(l);
	n->last_commit_ms = cw_mono_ms();
}

/* Drop a revoked partition: finished and unstarted jobs go, jobs whose
 * transfer or dead letter is under way become orphans until it ends. */
static void part_drop(struct notify *n, struct part *p)
{
	for (struct job *j = p->head, *next; j; j = next) {
		next = j->next;
		if (j->state == JOB_BACKOFF)
			n->active--;
		if (j->state == JOB_INFLIGHT ||
		    (j->state == JOB_DLQ && !j->dlq_retry)) {
			j->part = NULL;
			j->prev = &n->orphans;
			j->next = n->orphans.next;
			n->orphans.next->prev = j;
			n->orphans.next = j;
			continue;
		}
		job_free(j);
	}
	free(p);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct notify *n = opaque;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++) {
			struct part *p = calloc(1, sizeof(*p));
			if (!p) {
				n->fatal = true;
				break;
			}
			p->partition = parts->elems[i].partition;
			p->next_offset = -1;
			p->committed = -1;
			p->next = n->parts;
			n->parts = p;
		}
		cw_info("partitions assigned", "count=%d", parts->cnt);
		rd_kafka_assign(rk, parts);
		return;
	}
	commit_positions(n, true);
	while (n->parts) {
		struct part *p = n->parts;
		n->parts = p->next;
		part_drop(n, p);
	}
	cw_info("partitions revoked", "count=%d", parts->cnt);
	rd_kafka_assign(rk, NULL);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct notify *n = opaque;

	(void)rk;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
		n->st.kafka_down = true;
	snprintf(n->st.kafka_error, sizeof(n->st.kafka_error), "%s", reason);
	if (rd_kafka_fatal_error(rk, NULL, 0))
		n->fatal = true;
	cw_warn("kafka error", "error=\"%s\"", reason);
}

/* Kafka was unreachable: once a broker answers a metadata request, it
 * is back, whether or not a record follows (a paused or caught-up
 * consumer gets none). Asked through the dead-letter producer: on the
 * consumer's connection the answer queues behind a fetch that waits up to
 * fetch.wait.max.ms (500 ms) for records. */
static void kafka_probe(struct notify *n)
{
	const struct rd_kafka_metadata *md = NULL;

	if (!n->st.kafka_down ||
	    cw_mono_ms() - n->last_probe_ms < PROBE_EVERY_MS)
		return;
	n->last_probe_ms = cw_mono_ms();
	if (rd_kafka_metadata(n->producer, 0, NULL, &md, PROBE_TIMEOUT_MS) !=
	    RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	rd_kafka_metadata_destroy(md);
	n->st.kafka_down = false;
	cw_info("kafka reachable again", NULL);
}

/* Due time of a record. In real time (--time-scale 1): abandoned_at plus
 * --delay. On a simulated clock running X times faster, the event clock
 * stood near abandoned_at when the processor wrote the record, so the
 * record is due --delay / X of wall time after it was written. */
static int64_t due_at(const struct notify *n, int64_t abandoned_at_ms,
		      int64_t written_ms)
{
	int64_t d = n->cfg->delay_ms;

	if (d <= 0)
		return 0;
	if (n->cfg->time_scale == 1.0)
		return abandoned_at_ms + d;
	return written_ms + (int64_t)((double)d / n->cfg->time_scale);
}

static void take_record(struct notify *n, rd_kafka_message_t *m)
{
	struct part *p = part_find(n, m->partition);
	struct cw_abandonment ab;
	char why[128] = "";
	struct job *j;
	int r;

	if (!p)
		return;
	if (p->next_offset >= 0 && m->offset < p->next_offset) {
		n->n_dup++; /* fetched again after a pause: already taken */
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j || (m->key_len && !(j->key = malloc(m->key_len))) ||
	    (m->len && !(j->value = malloc(m->len)))) {
		job_free(j);
		n->fatal = true;
		cw_error("out of memory", NULL);
		return;
	}
	if (m->key_len)
		memcpy(j->key, m->key, m->key_len);
	if (m->len)
		memcpy(j->value, m->payload, m->len);
	j->key_len = m->key_len;
	j->value_len = m->len;
	j->offset = m->offset;
	j->part = p;
	j->retry_after_ms = -1;
	r = cw_abandonment_decode(m->payload, m->len, &ab, n->items, MAX_ITEMS,
				  why, sizeof(why));
	if (r < 0) {
		n->st.undecodable++;
		snprintf(j->reason, sizeof(j->reason), "does not decode: %s",
			 why);
	} else {
		snprintf(j->id, sizeof(j->id), "%.*s",
			 (int)ab.abandonment_id.len, ab.abandonment_id.ptr);
		j->body = webhook_body(&ab, n->cfg->cart_url_template);
		if (!j->body) {
			n->st.undecodable++;
			snprintf(j->reason, sizeof(j->reason),
				 "cannot build the JSON body (not UTF-8?)");
		}
		rd_kafka_timestamp_type_t tt;
		int64_t ts = rd_kafka_message_timestamp(m, &tt);
		j->due_ms =
			due_at(n, ab.abandoned_at_ms, ts > 0 ? ts : wall_ms());
	}
	j->state = JOB_WAITING;
	j->prev = p->tail;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->next_offset = m->offset + 1;
	/* Not due, or enough waiting for a slot: stop fetching now, so what
	 * follows stays in Kafka rather than in memory. */
	p->n_waiting++;
	if (j->due_ms > wall_ms() || p->n_waiting >= waiting_cap(n))
		part_pause(n, p, true);
}

/* ---- setup, loop, teardown ---- */

static int read_secret(struct notify *n, const char *path, char *errstr,
		       size_t errstr_size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len;

	if (fd < 0) {
		snprintf(errstr, errstr_size,
			 "cannot open --secret-file %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	len = read(fd, n->secret, sizeof(n->secret));
	close(fd);
	if (len > 0 && n->secret[len - 1] == '\n')
		len--;
	if (len > 0 && n->secret[len - 1] == '\r')
		len--;
	if (len <= 0 || (size_t)len >= sizeof(n->secret)) {
		snprintf(errstr, errstr_size,
			 "--secret-file %s must hold 1 to %d bytes", path,
			 SECRET_MAX - 1);
		return -EINVAL;
	}
	n->secret_len = (size_t)len;
	return 0;
}

/* On top of the consumer's manual commits, whatever -X says: a group with
 * no committed offset (new, or expired) starts at the oldest record kept,
 * so no abandonment is skipped. */
static const struct cw_kafka_prop consumer_forced[] = {
	{"auto.offset.reset", "earliest"},
	{NULL, NULL},
};

struct notify *notify_new(const struct notify_config *cfg,
			  volatile sig_atomic_t *stop, char *errstr,
			  size_t errstr_size)
{
	struct notify *n = calloc(1, sizeof(*n));
	rd_kafka_conf_t *conf = NULL;

	if (!n) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	n->cfg = cfg;
	n->stop = stop;
	n->orphans.next = n->orphans.prev = &n->orphans;
	n->items = calloc(MAX_ITEMS, sizeof(*n->items));
	if (!n->items) {
		snprintf(errstr, errstr_size, "out of memory");
		goto fail;
	}
	if (read_secret(n, cfg->secret_file, errstr, errstr_size) < 0)
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    !(n->multi = curl_multi_init())) {
		snprintf(errstr, errstr_size, "cannot initialise libcurl");
		goto fail;
	}
	curl_multi_setopt(n->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)cfg->concurrency);
	if (cfg->pg) {
		n->pg = PQconnectdb(cfg->pg);
		if (PQstatus(n->pg) != CONNECTION_OK) {
			snprintf(errstr, errstr_size,
				 "cannot connect to PostgreSQL: %s",
				 PQerrorMessage(n->pg));
			goto fail;
		}
	}

	/* The dead-letter producer: idempotent, acks=all, whatever -X says. */
	conf = cw_kafka_conf_new(cfg->bootstrap_servers, NULL,
				 &cfg->kafka_props, errstr, errstr_size);
	if (!conf || cw_kafka_conf_set(conf, "enable.idempotence", "true",
				       errstr, errstr_size) < 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_dlq_delivery);
	rd_kafka_conf_set_opaque(conf, n);
	n->producer =
		cw_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	conf = NULL; /* cw_kafka_new() took it */
	if (!n->producer)
		goto fail;

	/* The consumer commits itself, only what is done; -X cannot change
	 * that, nor where a new group starts. */
	n->consumer = cw_kafka_consumer_new(
		&(struct cw_kafka_consumer_params){
			.bootstrap_servers = cfg->bootstrap_servers,
			.user = &cfg->kafka_props,
			.forced = consumer_forced,
			.group = cfg->group,
			.topic = cfg->topic,
			.rebalance_cb = on_rebalance,
			.error_cb = on_error,
			.opaque = n,
		},
		errstr, errstr_size);
	if (!n->consumer)
		goto fail;
	if (cfg->metrics_addr && cfg->metrics_addr[0]) {
		n->metrics = notify_metrics_start(cfg->metrics_addr, errstr,
						  errstr_size);
		if (!n->metrics)
			goto fail;
	}
	cw_info("started",
		"topic=%s group=%s concurrency=%" PRId64 " delay_ms=%" PRId64
		" recovery_check=%s",
		cfg->topic, cfg->group, cfg->concurrency, cfg->delay_ms,
		n->pg ? "on" : "off");
	return n;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	notify_destroy(n);
	return NULL;
}

static int count_waiting(const struct notify *n)
{
	int c = 0;
	for (const struct part *p = n->parts; p; p = p->next)
		for (const struct job *j = p->head; j; j = j->next)
			c += j->state == JOB_WAITING;
	return c;
}

/* Copy the numbers for /metrics, at most every 250 ms. */
static void publish(struct notify *n)
{
	int64_t now = cw_mono_ms(), lo, hi;

	if (!n->metrics || now - n->last_publish_ms < 250)
		return;
	n->last_publish_ms = now;
	n->st.waiting = n->st.backoff = n->st.lag = 0;
	n->st.in_flight = n->inflight;
	for (const struct part *p = n->parts; p; p = p->next) {
		for (const struct job *j = p->head; j; j = j->next) {
			n->st.waiting += j->state == JOB_WAITING;
			n->st.backoff += j->state == JOB_BACKOFF;
		}
		if (rd_kafka_get_watermark_offsets(n->consumer, n->cfg->topic,
						   p->partition, &lo,
						   &hi) == 0 &&
		    hi >= 0 && part_position(p) >= 0 && hi > part_position(p))
			n->st.lag += hi - part_position(p);
	}
	notify_metrics_publish(n->metrics, &n->st);
}

static void loop_once(struct notify *n, int wait_ms)
{
	rd_kafka_message_t *m;
	CURLMsg *cm;
	int left, running;
	int64_t now;

	/* Records, rebalances and errors; at most a batch per turn. */
	for (int i = 0; i < 500; i++) {
		m = rd_kafka_consumer_poll(n->consumer, 0);
		if (!m)
			break;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			n->st.kafka_down = false;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				cw_warn("consume error", "error=\"%s\"",
					rd_kafka_message_errstr(m));
		} else {
			n->st.kafka_down = false;
			take_record(n, m);
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_poll(n->producer, 0);
	kafka_probe(n);

	curl_multi_perform(n->multi, &running);
	while ((cm = curl_multi_info_read(n->multi, &left)))
		if (cm->msg == CURLMSG_DONE)
			on_done(n, cm->easy_handle, cm->data.result);

	now = wall_ms();
	n->rate_waiting = false;
	for (struct part *p = n->parts; p; p = p->next)
		part_schedule(n, p, now);
	/* Take turns: the partition scheduled first gets the free slots,
	 * and one with a long backlog must not starve the others. */
	if (n->parts && n->parts->next) {
		struct part *first = n->parts, *last = first;
		while (last->next)
			last = last->next;
		n->parts = first->next;
		first->next = NULL;
		last->next = first;
	}
	if (cw_mono_ms() - n->last_commit_ms >= COMMIT_EVERY_MS)
		commit_positions(n, false);
	publish(n);
	/* --max-rate: wake when the next request may go, not a turn later. */
	if (n->rate_waiting && n->next_send_ms - (double)now < wait_ms)
		wait_ms = n->next_send_ms > (double)now
				  ? (int)(n->next_send_ms - (double)now)
				  : 0;
	curl_multi_poll(n->multi, NULL, 0, wait_ms, NULL);
}

int notify_run(struct notify *n)
{
	int64_t deadline, last_report = cw_mono_ms();

	while (!*n->stop && !n->fatal) {
		loop_once(n, 20);
		if (cw_mono_ms() - last_report >= 10000) {
			last_report = cw_mono_ms();
			cw_info("progress",
				"delivered=%" PRIu64
				" skipped_recovered=%" PRIu64
				" dead_lettered=%" PRIu64 " attempts=%" PRIu64
				" in_flight=%d waiting=%d",
				n->st.delivered, n->st.skipped_recovered,
				n->st.dead_lettered, n->st.attempts,
				n->inflight, count_waiting(n));
		}
	}
	/* Stop taking records (the partitions pause in part_schedule), let
	 * requests and dead letters in flight finish within the bound. */
	cw_info("stopping", "in_flight=%d dead_letters_pending=%d", n->inflight,
		n->dlq_pending);
	deadline = cw_mono_ms() + n->cfg->shutdown_timeout_ms;
	while (!n->fatal && (n->inflight > 0 || n->dlq_pending > 0) &&
	       cw_mono_ms() < deadline) {
		loop_once(n, 20);
		rd_kafka_poll(n->producer, 10);
	}
	if (n->inflight > 0 || n->dlq_pending > 0)
		cw_warn("stopped with work in flight (redelivered after "
			"restart)",
			"in_flight=%d dead_letters_pending=%d", n->inflight,
			n->dlq_pending);
	commit_positions(n, true);
	cw_info("stopped",
		"delivered=%" PRIu64 " skipped_recovered=%" PRIu64
		" dead_lettered=%" PRIu64 " attempts=%" PRIu64
		" undecodable=%" PRIu64,
		n->st.delivered, n->st.skipped_recovered, n->st.dead_lettered,
		n->st.attempts, n->st.undecodable);
	return n->fatal ? -EIO : 0;
}

void notify_destroy(struct notify *n)
{
	if (!n)
		return;
	if (n->consumer) {
		rd_kafka_consumer_close(n->consumer); /* revokes: commits */
		rd_kafka_destroy(n->consumer);
	}
	while (n->parts) {
		struct part *p = n->parts;
		n->parts = p->next;
		part_drop(n, p);
	}
	if (n->producer) {
		rd_kafka_flush(n->producer, 2000);
		rd_kafka_purge(n->producer, RD_KAFKA_PURGE_F_QUEUE |
						    RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(n->producer, 0);
	}
	/* Orphans: transfers still registered with curl, unacked letters. */
	while (n->orphans.next != &n->orphans) {
		struct job *j = n->orphans.next;
		if (j->easy)
			curl_multi_remove_handle(n->multi, j->easy);
		list_unlink(j);
		job_free(j);
	}
	if (n->producer)
		rd_kafka_destroy(n->producer);
	notify_metrics_stop(n->metrics);
	if (n->multi)
		curl_multi_cleanup(n->multi);
	if (n->pg)
		PQfinish(n->pg);
	curl_global_cleanup();
	free(n->items);
	free(n);
}
