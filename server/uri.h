/*
 * uri: strict percent-decoding of request paths and query components.
 *
 * Pure functions on caller-owned buffers; any thread.
 */
#ifndef CONLAB_URI_H
#define CONLAB_URI_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Decodes src[0..src_len) into dst, which must hold src_len + 1 bytes (a
 * decoded text is never longer). "%HH" becomes the byte 0xHH; with
 * plus_is_space, '+' becomes ' ' (query components). The result is
 * NUL-terminated and its length stored in *out_len.
 *
 * Returns 0; -EINVAL for a '%' not followed by two hex digits; -EILSEQ when
 * the decoded text would contain a NUL byte (never accepted anywhere).
 */
int uri_decode(char *dst, const char *src, size_t src_len, bool plus_is_space,
               size_t *out_len);

/*
 * Percent-encodes a decoded path for a header such as Location: every byte
 * but the unreserved characters (RFC 3986: letters, digits, "-._~") and
 * '/' becomes %HH. Returns 0, or -ENAMETOOLONG when out (out_len bytes,
 * NUL included) is too small.
 */
int uri_encode_path(char *out, size_t out_len, const char *path);

/*
 * Copies user text for echoing in a message or a log line: printable ASCII
 * is kept, any other byte (and the quote character ') becomes \xHH, and the
 * copy ends with "..." when it would exceed out_len - 1 bytes. The result
 * is NUL-terminated, valid UTF-8 and safe in a terminal. out_len >= 8.
 * Returns out.
 */
char *uri_quote(char *out, size_t out_len, const char *text);

#endif
