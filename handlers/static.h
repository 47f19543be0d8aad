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

/* The Content-Type for a file name, from its extension. */
const char *static_content_type(const char *file_name);

#endif
