/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* http1_int: byte classes and list helpers shared by the http1*.c files only. */
#ifndef RM_HTTP1_INT_H
#define RM_HTTP1_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "http/http1.h"

#define HTTP_C_TCHAR 0x01  /* token character (RFC 9110 5.6.2) */
#define HTTP_C_VALUE 0x02  /* field-vchar, SP or HTAB */
#define HTTP_C_TARGET 0x04 /* request-target byte (visible ASCII but '#') */
#define HTTP_C_HOST 0x08   /* uri-host [":" port] byte, incl. IP-literal brackets */
#define HTTP_C_HEX 0x10

extern const uint8_t http_cclass[256];

static inline bool http_is(unsigned char c, uint8_t cls)
{
	return (http_cclass[c] & cls) != 0;
}

static inline bool http_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool http_token_valid(const char *p, size_t len);
bool http_value_valid(const char *p, size_t len);

#endif /* RM_HTTP1_INT_H */
