/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_status — /metrics, /livez, /readyz and /healthz. See cw_status.h.
 */
#include "cw_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cw_http.h"
#include "cw_log.h"

/* Scrapers and probes send their request at once and read the answer;
 * anything else (idle sockets, a slowloris dribbling header bytes) must
 * not crowd them out. So: many slots in all, few per client address (a
 * Prometheus and a kubelet each need one or two), and a client that sends
 * nothing for 2 seconds is dropped. Clients on one address hold at most
 * 16 slots however they behave; the others stay answerable. */
static const struct cw_http_limits status_limits = {
	.connections = 256,
	.per_ip = 16,
	.timeout_s = 2,
	.threads = 1,
};

struct cw_status {
	struct MHD_Daemon *mhd;
	int port;
	const char *binary;
	const struct cw_status_ops *ops;
	void *opaque;
};

static enum MHD_Result serve_metrics(struct cw_status *s,
				     struct MHD_Connection *conn)
{
	struct cw_text t = {0};

	s->ops->metrics(s->opaque, &t);
	cw_prom_process(&t, s->binary);
	if (t.oom || !t.buf) {
		cw_text_free(&t);
		return MHD_NO;
	}
	return cw_http_reply(conn, MHD_HTTP_OK, CW_HTTP_CONTENT_PROM, NULL,
			     t.buf, t.len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_health(struct cw_status *s,
				    struct MHD_Connection *conn, bool live)
{
	char reason[192] = "", body[224];
	enum cw_health h = s->ops->health(s->opaque, reason, sizeof(reason));
	bool ok = live ? h != CW_HEALTH_STALLED : h == CW_HEALTH_READY;
	int n;

	reason[sizeof(reason) - 1] = '\0';
	if (ok)
		n = snprintf(body, sizeof(body),
			     reason[0] ? "ok: %s\n" : "ok\n", reason);
	else
		n = snprintf(body, sizeof(body), "%s\n",
			     reason[0] ? reason : "not ready");
	if (n < 0)
		return MHD_NO;
	if ((size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	return cw_http_reply(conn,
			     ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			     CW_HTTP_CONTENT_TEXT, NULL, body, (size_t)n,
			     MHD_RESPMEM_MUST_COPY);
}

/* MHD's access handler, on the HTTP thread. Every answer is decided on the
 * first call (headers only); a request body, if any, is discarded. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct cw_status *s = cls;
	enum { METRICS, LIVEZ, READYZ, NONE } what = NONE;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(url, "/metrics") == 0)
		what = METRICS;
	else if (strcmp(url, "/livez") == 0)
		what = LIVEZ;
	else if (strcmp(url, "/readyz") == 0 || strcmp(url, "/healthz") == 0)
		what = READYZ;
	if (what == NONE)
		return cw_http_reply_text(
			conn, MHD_HTTP_NOT_FOUND, NULL,
			"not found: try /metrics, /livez, /readyz or "
			"/healthz\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return cw_http_reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  "GET, HEAD", "method not allowed\n");
	/* HEAD: MHD sends the headers of the same response, no body. */
	if (what == METRICS)
		return serve_metrics(s, conn);
	return serve_health(s, conn, what == LIVEZ);
}

struct cw_status *cw_status_start(const char *addr, const char *binary,
				  const struct cw_status_ops *ops, void *opaque,
				  char *errstr, size_t errstr_size)
{
	struct cw_status *s = calloc(1, sizeof(*s));
	int fd, family = AF_INET;

	if (!s) {
		snprintf(errstr, errstr_size, "out of memory");
		return NULL;
	}
	s->binary = binary;
	s->ops = ops;
	s->opaque = opaque;
	fd = cw_http_listen(addr, "metrics", &family, &s->port, errstr,
			    errstr_size);
	if (fd < 0)
		goto fail;
	s->mhd = cw_http_start(fd, family, "metrics", &status_limits,
			       on_request, s, NULL, NULL);
	if (!s->mhd) {
		snprintf(errstr, errstr_size,
			 "cannot start the metrics HTTP server on %s "
			 "(libmicrohttpd refused; see the log)",
			 addr);
		goto fail;
	}
	cw_info("metrics listening", "addr=%s port=%d", addr, s->port);
	return s;

fail:
	free(s);
	return NULL;
}

int cw_status_port(const struct cw_status *s)
{
	return s->port;
}

void cw_status_stop(struct cw_status *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->mhd);
	free(s);
}
