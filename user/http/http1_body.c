/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * http1_body: streaming body framing. Counts which bytes belong to the current
 * message so the proxy can forward them untouched and find the next pipelined head;
 * the chunked coding is validated byte by byte (RFC 9112 7.1) with all state in
 * struct http_body, so any split of the input gives the same answer.
 */
#include <limits.h>
#include <string.h>

#include "http/http1.h"
#include "http/http1_int.h"

enum {
	CS_SIZE_FIRST, /* expecting the first hex digit of a chunk-size */
	CS_SIZE,       /* more hex digits, BWS, ';' or CR */
	CS_BWS,	       /* whitespace after the size: only ';' may follow */
	CS_EXT,	       /* inside chunk extensions, up to CR */
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER_START, /* start of a trailer line or of the final empty line */
	CS_TRAILER_NAME,
	CS_TRAILER_VALUE,
	CS_TRAILER_LF,
	CS_FINAL_LF,
};

void http_body_init(struct http_body *b, enum http_body_kind kind, uint64_t length,
		    const struct http_limits *lim)
{
	memset(b, 0, sizeof(*b));
	b->kind = kind;
	b->state = CS_SIZE_FIRST;
	b->max_chunk_line =
	    lim && lim->max_chunk_line ? lim->max_chunk_line : HTTP_DEF_MAX_CHUNK_LINE;
	b->max_trailer = lim && lim->max_head ? lim->max_head : HTTP_DEF_MAX_HEAD;
	if (kind == HTTP_BODY_LENGTH)
		b->remaining = length;
	b->done = kind == HTTP_BODY_NONE || (kind == HTTP_BODY_LENGTH && length == 0);
}

static ssize_t body_fail(struct http_body *b, enum http_err e)
{
	b->err = e;
	return -1;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static ssize_t chunked_feed(struct http_body *b, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && !b->done) {
		unsigned char c = (unsigned char)buf[i];

		switch (b->state) {
		case CS_DATA: {
			size_t n = len - i;

			if (n > b->remaining)
				n = (size_t)b->remaining;
			b->remaining -= n;
			b->payload += n;
			i += n;
			if (!b->remaining)
				b->state = CS_DATA_CR;
			continue;
		}
		case CS_SIZE_FIRST:
		case CS_SIZE: {
			int d = hexval(c);

			/* the limit counts the line's bytes before its CR */
			if (c != '\r' && ++b->line > b->max_chunk_line)
				return body_fail(b, HTTP_E_CHUNK_EXT);
			if (d >= 0) {
				if (b->remaining > (UINT64_MAX >> 4))
					return body_fail(b, HTTP_E_CHUNK_SIZE);
				b->remaining = (b->remaining << 4) | (uint64_t)d;
				b->state = CS_SIZE;
			} else if (b->state == CS_SIZE_FIRST) {
				return body_fail(b, HTTP_E_CHUNK_SIZE);
			} else if (c == ';') {
				b->state = CS_EXT;
			} else if (c == ' ' || c == '\t') {
				b->state = CS_BWS;
			} else if (c == '\r') {
				b->state = CS_SIZE_LF;
			} else if (c == '\n') {
				return body_fail(b, HTTP_E_BARE_LF);
			} else {
				return body_fail(b, HTTP_E_CHUNK_SIZE);
			}
			break;
		}
		case CS_BWS:
			if (++b->line > b->max_chunk_line)
				return body_fail(b, HTTP_E_CHUNK_EXT);
			if (c == ';')
				b->state = CS_EXT;
			else if (c != ' ' && c != '\t')
				return body_fail(b, HTTP_E_CHUNK_EXT);
			break;
		case CS_EXT:
			/* extensions are ignored, but only field-value bytes may appear: a
			 * bare LF or CR here is how lenient parsers get desynchronised */
			if (c != '\r' && ++b->line > b->max_chunk_line)
				return body_fail(b, HTTP_E_CHUNK_EXT);
			if (c == '\r')
				b->state = CS_SIZE_LF;
			else if (c == '\n')
				return body_fail(b, HTTP_E_BARE_LF);
			else if (!http_is(c, HTTP_C_VALUE))
				return body_fail(b, HTTP_E_CHUNK_EXT);
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				return body_fail(b, HTTP_E_BARE_CR);
			b->line = 0;
			b->state = b->remaining ? CS_DATA : CS_TRAILER_START;
			break;
		case CS_DATA_CR:
			if (c != '\r')
				return body_fail(b, c == '\n' ? HTTP_E_BARE_LF
							      : HTTP_E_CHUNK_DATA_END);
			b->state = CS_DATA_LF;
			break;
		case CS_DATA_LF:
			if (c != '\n')
				return body_fail(b, HTTP_E_CHUNK_DATA_END);
			b->state = CS_SIZE_FIRST;
			break;
		case CS_TRAILER_START:
			if (++b->line > b->max_trailer)
				return body_fail(b, HTTP_E_TRAILER_TOO_LARGE);
			if (c == '\r')
				b->state = CS_FINAL_LF;
			else if (c == '\n')
				return body_fail(b, HTTP_E_BARE_LF);
			else if (http_is(c, HTTP_C_TCHAR))
				b->state = CS_TRAILER_NAME;
			else
				return body_fail(b, http_is_ows((char)c) ? HTTP_E_OBS_FOLD
									 : HTTP_E_TRAILER);
			break;
		case CS_TRAILER_NAME:
			if (++b->line > b->max_trailer)
				return body_fail(b, HTTP_E_TRAILER_TOO_LARGE);
			if (c == ':')
				b->state = CS_TRAILER_VALUE;
			else if (http_is_ows((char)c))
				return body_fail(b, HTTP_E_HEADER_WS_COLON);
			else if (!http_is(c, HTTP_C_TCHAR))
				return body_fail(b, HTTP_E_TRAILER);
			break;
		case CS_TRAILER_VALUE:
			if (++b->line > b->max_trailer)
				return body_fail(b, HTTP_E_TRAILER_TOO_LARGE);
			if (c == '\r')
				b->state = CS_TRAILER_LF;
			else if (c == '\n')
				return body_fail(b, HTTP_E_BARE_LF);
			else if (!http_is(c, HTTP_C_VALUE))
				return body_fail(b, HTTP_E_TRAILER);
			break;
		case CS_TRAILER_LF:
			if (++b->line > b->max_trailer)
				return body_fail(b, HTTP_E_TRAILER_TOO_LARGE);
			if (c != '\n')
				return body_fail(b, HTTP_E_BARE_CR);
			b->state = CS_TRAILER_START;
			break;
		case CS_FINAL_LF:
			if (++b->line > b->max_trailer)
				return body_fail(b, HTTP_E_TRAILER_TOO_LARGE);
			if (c != '\n')
				return body_fail(b, HTTP_E_BARE_CR);
			b->done = true;
			break;
		}
		i++;
	}
	return (ssize_t)i;
}

ssize_t http_body_feed(struct http_body *b, const char *buf, size_t len)
{
	ssize_t n;

	if (b->err)
		return -1;
	if (b->done)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;

	switch (b->kind) {
	case HTTP_BODY_LENGTH:
		n = (ssize_t)(len < b->remaining ? len : b->remaining);
		b->remaining -= (uint64_t)n;
		b->payload += (uint64_t)n;
		b->done = !b->remaining;
		break;
	case HTTP_BODY_CHUNKED:
		n = chunked_feed(b, buf, len);
		if (n < 0)
			return n;
		break;
	case HTTP_BODY_UNTIL_CLOSE:
	case HTTP_BODY_TUNNEL:
		n = (ssize_t)len;
		b->payload += len;
		break;
	default:
		n = 0;
		break;
	}
	b->wire += (uint64_t)n;
	return n;
}
