/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cw_http — libmicrohttpd plumbing shared by the HTTP servers. See
 * cw_http.h.
 */
#include "cw_http.h"
#include "cw_time.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cw_log.h"

/* A client that opens sockets in a loop fills the accept queue faster than
 * a server can refuse them over its limits; a deep queue keeps a probe's
 * SYN from being dropped (and retried a second later). The kernel caps it
 * at net.core.somaxconn. */
#define LISTEN_BACKLOG	    1024
#define MHD_LOG_INTERVAL_MS 1000 /* at most one MHD log line a second */

/* Split "HOST:PORT" / "[V6]:PORT" into @host (empty: every address) and
 * @port. Returns 0 or -EINVAL with the reason in @errstr. */
static int split_addr(const char *addr, const char *what, char *host,
		      size_t host_size, char port[8], char *errstr,
		      size_t errstr_size)
{
	const char *colon, *h = addr;
	size_t hlen, digits;
	long p;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':') {
			snprintf(errstr, errstr_size,
				 "bad %s address '%s': expected "
				 "[IPV6]:PORT",
				 what, addr);
			return -EINVAL;
		}
		h = addr + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr))) {
			snprintf(errstr, errstr_size,
				 "bad %s address '%s': expected HOST:PORT "
				 "(IPv6 in brackets: [::1]:9464)",
				 what, addr);
			return -EINVAL;
		}
		hlen = (size_t)(colon - addr);
	}
	digits = strspn(colon + 1, "0123456789");
	p = digits >= 1 && digits <= 5 ? strtol(colon + 1, NULL, 10) : -1;
	if (colon[1 + digits] || p < 0 || p > 65535) {
		snprintf(errstr, errstr_size,
			 "bad %s address '%s': port must be 0-65535", what,
			 addr);
		return -EINVAL;
	}
	if (hlen >= host_size) {
		snprintf(errstr, errstr_size,
			 "bad %s address '%s': host too long", what, addr);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	snprintf(port, 8, "%ld", p);
	return 0;
}

/* A listening TCP socket on @addr. Returns the fd, its family in *@family
 * and bound port in *@port; or -errno with the reason in @errstr. */
int cw_http_listen(const char *addr, const char *what, int *family, int *port,
		   char *errstr, size_t errstr_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256], portstr[8];
	int fd = -1, err = 0, r;

	if ((r = split_addr(addr, what, host, sizeof(host), portstr, errstr,
			    errstr_size)) < 0)
		return r;
	r = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (r) {
		snprintf(errstr, errstr_size,
			 "cannot resolve %s address '%s': %s", what, addr,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EINVAL;
	}
	/* The first address that binds wins (a name may resolve to v4 and
	 * v6); the error reported is the last one. */
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int on = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		/* Restart without waiting for TIME_WAIT; on Linux this still
		 * refuses a port another socket is listening on. */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, LISTEN_BACKLOG) == 0 &&
		    getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
			*family = ai->ai_family;
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(errstr, errstr_size,
			 "cannot listen on %s address %s: %s", what, addr,
			 strerror(err));
		return -err;
	}
	*port = ss.ss_family == AF_INET6
			? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
			: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

enum MHD_Result cw_http_reply(struct MHD_Connection *conn, unsigned int status,
			      const char *content_type, const char *allow,
			      void *body, size_t len,
			      enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO; /* MHD closes the connection */
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    content_type) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				    "no-store") != MHD_YES ||
	    (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					      allow) != MHD_YES)) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result cw_http_reply_text(struct MHD_Connection *conn,
				   unsigned int status, const char *allow,
				   const char *body)
{
	return cw_http_reply(conn, status, CW_HTTP_CONTENT_TEXT, allow,
			     (void *)body, strlen(body),
			     MHD_RESPMEM_PERSISTENT);
}

/* MHD's own error messages (accept failures, broken clients, connections
 * refused over the limits) go to the process log, one line each, but at
 * most one a second: a client opening sockets in a loop must not flood the
 * log. The lines left out are counted in the next one written. Runs on
 * MHD's thread. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static _Atomic int64_t last_ms = INT64_MIN / 2;
	static atomic_uint_fast64_t suppressed;
	int64_t now = cw_mono_ms(), prev = atomic_load(&last_ms);
	uint64_t skipped;
	char buf[256];
	size_t n;

	if (now - prev < MHD_LOG_INTERVAL_MS ||
	    !atomic_compare_exchange_strong(&last_ms, &prev, now)) {
		atomic_fetch_add(&suppressed, 1);
		return;
	}
	skipped = atomic_exchange(&suppressed, 0);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '"')
			*p = '\'';
	cw_warn("http server", "server=%s detail=\"%s\" suppressed=%" PRIu64,
		(const char *)cls, buf, skipped);
}

struct MHD_Daemon *cw_http_start(int fd, int family, const char *what,
				 const struct cw_http_limits *lim,
				 MHD_AccessHandlerCallback handler, void *cls,
				 MHD_RequestCompletedCallback completed,
				 void *completed_cls)
{
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	struct MHD_Daemon *mhd;
	sigset_t all, old;

	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (lim->suspend)
		flags |= MHD_ALLOW_SUSPEND_RESUME;
	/* Internal threads (epoll or poll, never select: fds above
	 * FD_SETSIZE are normal next to librdkafka). The sockets are
	 * non-blocking, so a slow client holds a slot, never a thread. MHD
	 * owns @fd from here: it closes it in MHD_stop_daemon() and on its
	 * own failure paths. The threads start with every signal blocked,
	 * as librdkafka's do, so SIGTERM/SIGINT reach the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, handler, cls, MHD_OPTION_EXTERNAL_LOGGER,
		on_mhd_log, (void *)what, MHD_OPTION_LISTEN_SOCKET,
		(MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, lim->connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim->per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, lim->timeout_s,
		MHD_OPTION_THREAD_POOL_SIZE,
		lim->threads > 1 ? lim->threads : 1u,
		MHD_OPTION_NOTIFY_COMPLETED, completed, completed_cls,
		MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return mhd;
}
