/*
 * static: serving the dashboard's files from the web root.
 *
 * The resolver is a pure function of the file system, exported so that
 * unit tests and the fuzzer call exactly what the handler calls.
 */
#ifndef CONLAB_STATIC_H
#define CONLAB_STATIC_H

#include <stddef.h>

/*
 * Maps a decoded request path to a file under root_real (a path already
 * passed through realpath()). "/" and paths ending in '/' name index.html
 * of that directory. On success the real path of the file is in out.
 *
 * Returns 0; -EINVAL when the path is not absolute or has a "." or ".."
 * segment or a backslash; -ENOENT when nothing is there, the name is hidden
 * (a segment starts with '.'), or the real path leaves the root (symbolic
 * links included) or is not a regular file; -EISDIR when it is a directory
 * named without a trailing '/'; -ENAMETOOLONG when out is too small.
 */
int static_resolve(const char *root_real, const char *path, char *out,
                   size_t out_len);

/*
 * Opens real, a path static_resolve() returned for root_real, for reading
 * without following any symbolic link: one component at a time from
 * root_real with O_NOFOLLOW, so that a link swapped in after
 * static_resolve() checked the path is refused, not followed.
 *
 * Returns the descriptor (O_CLOEXEC; the caller closes it), a regular
 * file; -EINVAL when real is not a path under root_real; -ELOOP when a
 * component is now a symbolic link; -ENOENT when it is gone or not a
 * regular file; another negative errno from openat(2).
 */
int static_open(const char *root_real, const char *real);

/*
 * Writes the redirect target for a directory named without its final '/':
 * path (decoded, starting with '/') with runs of '/' collapsed into one,
 * percent-encoded as uri_encode_path() does, plus a final '/'. The result
 * is path-only and starts with exactly one '/' ("//sub" gives "/sub/", not
 * "//sub/", which a browser reads as the host "sub"). Returns 0; -EINVAL
 * when path does not start with '/' or out_len < 2; -ENAMETOOLONG when out
 * (out_len bytes, NUL included) is too small.
 */
int static_location(char *out, size_t out_len, const char *path);

/* The Content-Type for a file name, from its extension. */
const char *static_content_type(const char *file_name);

#endif
