/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_http — the libmicrohttpd plumbing every cartwatch HTTP server shares:
 * a listening socket from "HOST:PORT", a daemon started with the limits
 * that keep idle or slow clients from crowding others out, MHD's own log
 * lines rate-limited into logfmt, and reply helpers.
 *
 * Not for: routing or rendering (each server has its own handler; see
 * cw_status for the /metrics + health side door).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#define CW_HTTP_CONTENT_TEXT "text/plain; charset=utf-8"
#define CW_HTTP_CONTENT_JSON "application/json"
#define CW_HTTP_CONTENT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* Bind and listen on @addr: "HOST:PORT", "[V6]:PORT", ":PORT" or
 * "0.0.0.0:PORT"; port 0 picks a free one. @what names the server in
 * errors ("metrics", "gateway"). Returns the socket (close-on-exec) with
 * its family in *@family and bound port in *@port, or -EINVAL (bad or
 * unresolvable address) / -errno (bind, listen) with the reason in
 * @errstr. */
int cw_http_listen(const char *addr, const char *what, int *family, int *port,
		   char *errstr, size_t errstr_size);

/* How a server protects itself: at most @connections sockets in all and
 * @per_ip from one address; a client silent for @timeout_s seconds is
 * dropped. @threads > 1 runs a pool of that many internal threads (1: one
 * thread). @suspend allows MHD_suspend_connection(). */
struct cw_http_limits {
	unsigned int connections;
	unsigned int per_ip;
	unsigned int timeout_s;
	unsigned int threads;
	bool suspend;
};

/* Start an MHD daemon on the listening socket @fd (from cw_http_listen(),
 * of address family @family), handing every request to @handler(@cls).
 * @completed (may be NULL) is MHD's request-completed callback, for
 * per-request state. The internal threads start with every signal
 * blocked, so SIGTERM reaches the main thread. MHD owns @fd from this
 * call on, also when it fails. @what names the server in log lines.
 * Returns the daemon or NULL (MHD logged why). */
struct MHD_Daemon *cw_http_start(int fd, int family, const char *what,
				 const struct cw_http_limits *lim,
				 MHD_AccessHandlerCallback handler, void *cls,
				 MHD_RequestCompletedCallback completed,
				 void *completed_cls);

/* Queue a response: @body of @len bytes (freed by MHD for
 * MHD_RESPMEM_MUST_FREE, also on failure), Content-Type @content_type,
 * Cache-Control: no-store, and Allow: @allow when not NULL. Returns MHD's
 * verdict; MHD_NO closes the connection. */
enum MHD_Result cw_http_reply(struct MHD_Connection *conn, unsigned int status,
			      const char *content_type, const char *allow,
			      void *body, size_t len,
			      enum MHD_ResponseMemoryMode mode);

/* cw_http_reply() with a constant text/plain @body. */
enum MHD_Result cw_http_reply_text(struct MHD_Connection *conn,
				   unsigned int status, const char *allow,
				   const char *body);
