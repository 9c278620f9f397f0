/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pack — (key, value) records in one byte string. See pack.h.
 */
#include "pack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int pack_put(struct pack_buf *b, const void *key, size_t klen, const void *val,
	     size_t vlen)
{
	size_t need;

	if (!val)
		vlen = 0;
	if (klen >= PACK_NONE || vlen >= PACK_NONE)
		return -EMSGSIZE;
	need = 8 + klen + vlen;
	if (b->cap - b->len < need) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap - b->len < need)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return -ENOMEM;
		}
		b->p = p;
		b->cap = cap;
	}
	put_u32(b->p + b->len, (uint32_t)klen);
	if (klen)
		memcpy(b->p + b->len + 4, key, klen);
	b->len += 4 + klen;
	put_u32(b->p + b->len, val ? (uint32_t)vlen : PACK_NONE);
	if (vlen)
		memcpy(b->p + b->len + 4, val, vlen);
	b->len += 4 + vlen;
	b->records++;
	return 0;
}

void pack_reset(struct pack_buf *b, size_t keep)
{
	if (b->cap > keep) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
	b->len = 0;
	b->records = 0;
	b->oom = false;
}

void pack_free(struct pack_buf *b)
{
	free(b->p);
	*b = (struct pack_buf){0};
}

int pack_next(struct pack_reader *r, const uint8_t **key, size_t *klen,
	      const uint8_t **val, size_t *vlen)
{
	uint32_t kl, vl;

	if (r->p == r->end)
		return 0;
	if (r->end - r->p < 4)
		return -EBADMSG;
	kl = get_u32(r->p);
	if ((size_t)(r->end - r->p) - 4 < (size_t)kl + 4)
		return -EBADMSG;
	*key = r->p + 4;
	*klen = kl;
	r->p += 4 + kl;
	vl = get_u32(r->p);
	r->p += 4;
	if (vl == PACK_NONE) {
		*val = NULL;
		*vlen = 0;
		return 1;
	}
	if ((size_t)(r->end - r->p) < vl)
		return -EBADMSG;
	*val = r->p;
	*vlen = vl;
	r->p += vl;
	return 1;
}
