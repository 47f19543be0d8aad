/*
 * static: see static.h and handlers.h.
 *
 * Containment is checked three times: the request path may hold no dot
 * segments at all (so "..", "%2e%2e" and "%2f.." are refused before
 * touching the disk, the http module having already decoded them and
 * refused NUL); the realpath() of the result must lie under the web root
 * (so a symbolic link may point within the root but cannot lead out); and
 * that real path, which has no link left in it, is then opened one
 * component at a time from the root with O_NOFOLLOW (static_open()), so a
 * link swapped in between the check and the open is refused instead of
 * followed. Files are sent from an open descriptor; ETag and Last-Modified
 * let browsers revalidate with a 304.
 *
 * A directory named without its final '/' is redirected to the same path
 * with it. The Location is path-only with single slashes: "//host/" would
 * be read by a browser as another host.
 */
#include "static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../server/uri.h"
#include "handlers.h"

#define INDEX_NAME "index.html"

static bool not_modified(const struct request *req, const char *etag,
                         time_t mtime);
static int open_component(int dir_fd, const char *name, bool last);

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"map", "application/json; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"wasm", "application/wasm"},
};

int static_resolve(const char *root_real, const char *path, char *out,
                   size_t out_len)
{
    char candidate[PATH_MAX];
    size_t n;

    if (path[0] != '/')
        return -EINVAL;
    n = (size_t)snprintf(candidate, sizeof(candidate), "%s", root_real);
    if (n >= sizeof(candidate))
        return -ENAMETOOLONG;

    const char *seg = path;
    while (*seg) {
        while (*seg == '/')
            seg++;
        if (!*seg)
            break;
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return -EINVAL;
        if (memchr(seg, '\\', len))
            return -EINVAL;
        if (seg[0] == '.')
            return -ENOENT;
        if (n + 1 + len >= sizeof(candidate))
            return -ENAMETOOLONG;
        candidate[n++] = '/';
        memcpy(candidate + n, seg, len);
        n += len;
        candidate[n] = '\0';
        seg += len;
    }
    bool wants_dir = path[strlen(path) - 1] == '/';
    if (wants_dir) {
        if (n + 1 + sizeof(INDEX_NAME) > sizeof(candidate))
            return -ENAMETOOLONG;
        snprintf(candidate + n, sizeof(candidate) - n, "/%s", INDEX_NAME);
    }

    char real[PATH_MAX];
    if (!realpath(candidate, real))
        return errno == ENAMETOOLONG ? -ENAMETOOLONG : -ENOENT;
    size_t root_len = strlen(root_real);
    if (strncmp(real, root_real, root_len) != 0 ||
        (real[root_len] != '/' && real[root_len] != '\0' &&
         root_real[root_len - 1] != '/'))
        return -ENOENT;

    struct stat st;
    if (stat(real, &st) != 0)
        return -ENOENT;
    if (S_ISDIR(st.st_mode))
        return wants_dir ? -ENOENT : -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -ENOENT;
    if (strlen(real) >= out_len)
        return -ENAMETOOLONG;
    strcpy(out, real);
    return 0;
}

int static_open(const char *root_real, const char *real)
{
    size_t root_len = strlen(root_real);
    char name[NAME_MAX + 1];
    int fd;

    /* real must be root_real itself plus "/..." (a root of "/" ends in
     * '/' already). */
    if (root_len == 0 || strncmp(real, root_real, root_len) != 0)
        return -EINVAL;
    const char *rest = real + root_len;
    if (root_real[root_len - 1] != '/') {
        if (rest[0] != '/')
            return -EINVAL;
        rest++;
    }
    if (rest[0] == '\0')
        return -EINVAL;

    fd = open(root_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (*rest) {
        const char *end = strchr(rest, '/');
        size_t len = end ? (size_t)(end - rest) : strlen(rest);
        if (len == 0 || len > NAME_MAX || (len == 1 && rest[0] == '.') ||
            (len == 2 && rest[0] == '.' && rest[1] == '.')) {
            close(fd);
            return -EINVAL;
        }
        memcpy(name, rest, len);
        name[len] = '\0';
        rest += len;
        if (*rest == '/')
            rest++;
        int next = open_component(fd, name, *rest == '\0');
        close(fd);
        if (next < 0)
            return next;
        fd = next;
    }

    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

int static_location(char *out, size_t out_len, const char *path)
{
    char collapsed[PATH_MAX];
    size_t n = 0;

    for (const char *c = path; *c; c++) {
        if (*c == '/' && n > 0 && collapsed[n - 1] == '/')
            continue;
        if (n + 1 >= sizeof(collapsed))
            return -ENAMETOOLONG;
        collapsed[n++] = *c;
    }
    collapsed[n] = '\0';
    if (n == 0 || collapsed[0] != '/' || out_len < 2)
        return -EINVAL;
    if (collapsed[n - 1] == '/')
        collapsed[--n] = '\0';
    int rc = uri_encode_path(out, out_len - 1, collapsed);
    if (rc < 0)
        return rc;
    size_t len = strlen(out);
    out[len] = '/';
    out[len + 1] = '\0';
    return 0;
}

const char *static_content_type(const char *file_name)
{
    const char *slash = strrchr(file_name, '/');
    const char *dot = strrchr(slash ? slash : file_name, '.');
    if (dot) {
        for (size_t i = 0; i < sizeof(content_types) / sizeof(*content_types);
             i++) {
            if (strcasecmp(dot + 1, content_types[i].ext) == 0)
                return content_types[i].type;
        }
    }
    return "application/octet-stream";
}

enum handler_result static_handle(struct request *req, struct response *resp,
                                  void *ctx)
{
    const struct app *app = ctx;
    char file[PATH_MAX];
    char q[96];

    int rc = static_resolve(app->web_root, req->path, file, sizeof(file));
    if (rc == -EISDIR) {
        /* Relative links in the directory's index need the final '/'. */
        char location[RESPONSE_HEADER_VALUE_MAX];
        if (static_location(location, sizeof(location), req->path) < 0) {
            response_error(resp, 404, "no such file: %s",
                           uri_quote(q, sizeof(q), req->path));
            return HANDLER_DONE;
        }
        response_json(resp, 301, json_pack("{s:s}", "location", location));
        response_header(resp, "Location", location);
        return HANDLER_DONE;
    }
    if (rc == -EINVAL) {
        response_error(resp, 400,
                       "path must not contain '.' or '..' segments or "
                       "backslashes");
        return HANDLER_DONE;
    }
    if (rc < 0) {
        response_error(resp, 404, "no such file: %s",
                       uri_quote(q, sizeof(q), req->path));
        return HANDLER_DONE;
    }

    int fd = static_open(app->web_root, file);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        response_error(resp, 404, "no such file: %s",
                       uri_quote(q, sizeof(q), req->path));
        return HANDLER_DONE;
    }

    char etag[80];
    char modified[40];
    struct tm tm;
    snprintf(etag, sizeof(etag), "\"%llx-%llx-%lx\"",
             (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
             (long)st.st_mtim.tv_sec ^ st.st_mtim.tv_nsec);
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(modified, sizeof(modified), "%a, %d %b %Y %H:%M:%S GMT", &tm);

    if (not_modified(req, etag, st.st_mtim.tv_sec)) {
        close(fd);
        resp->status = 304;
    } else {
        resp->status = 200;
        resp->fd = fd;
        resp->fd_size = (uint64_t)st.st_size;
        resp->content_type = static_content_type(file);
    }
    response_header(resp, "ETag", etag);
    response_header(resp, "Last-Modified", modified);
    response_header(resp, "Cache-Control", "no-cache");
    response_header(resp, "X-Content-Type-Options", "nosniff");
    return HANDLER_DONE;
}

/*
 * Opens name in dir_fd without following a link: a directory as an O_PATH
 * handle, the last component for reading. O_NONBLOCK: a FIFO swapped in
 * must not block the request thread (it is refused by the fstat() after).
 * Returns the descriptor, -ELOOP for a link, or another -errno.
 */
static int open_component(int dir_fd, const char *name, bool last)
{
    int flags = O_NOFOLLOW | O_CLOEXEC |
                (last ? O_RDONLY | O_NONBLOCK : O_PATH | O_DIRECTORY);
    int fd = openat(dir_fd, name, flags);
    if (fd >= 0)
        return fd;
    /* O_DIRECTORY | O_NOFOLLOW on a link is ENOTDIR: a link all the same. */
    if (errno == ENOTDIR && !last) {
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
            return -ELOOP;
        return -ENOTDIR;
    }
    return -errno;
}

/* RFC 9110 13.1.2/13.1.3: If-None-Match decides when present. */
static bool not_modified(const struct request *req, const char *etag,
                         time_t mtime)
{
    const char *inm = request_header(req, "If-None-Match");
    if (inm) {
        if (strcmp(inm, "*") == 0)
            return true;
        return strstr(inm, etag) != NULL;
    }
    const char *ims = request_header(req, "If-Modified-Since");
    if (ims) {
        struct tm tm = {0};
        const char *end = strptime(ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (end && *end == '\0')
            return mtime <= timegm(&tm);
    }
    return false;
}
