/*
 * fuzz_static: libFuzzer target for the static-path resolver,
 * static_resolve() in handlers/static.c, the function static_handle()
 * calls with the decoded request path.
 *
 * The input is a decoded request path (the http module has already
 * percent-decoded it and refused NUL, so bytes from the first NUL on are
 * ignored). It is resolved against a real tree built once under $TMPDIR
 * (scripts/fuzz.sh points it into build/fuzz/tmp):
 *
 *   root/           index.html file.js .secret .git/config fifo
 *   root/sub/       index.html page.css deeper/x.txt
 *   root/emptydir/
 *   root/link-in -> file.js          root/link-in-abs -> <root>/sub/page.css
 *   root/dirlink-in -> sub           root/up -> ..
 *   root/link-out -> <outside>/secret.txt
 *   root/link-rel-out -> ../<outside name>/secret.txt
 *   root/dirlink-out -> <outside>    (which holds index.html too)
 *   root/link-sibling -> <root>x/file.txt   (shares the root's prefix)
 *   root/loop -> loop                root/dangling -> nowhere
 *
 * Invariants (abort() when violated):
 * - the result is 0 or one of the documented refusals;
 * - a resolved file is a regular file strictly inside the root (its path
 *   starts with "<root>/"), is its own realpath(), and is what the request
 *   path names (realpath of root + path, plus index.html after a '/');
 * - it is never reached through a '.', '..', backslash or hidden segment,
 *   and a path not starting with '/' is -EINVAL;
 * - conversely, a clean path that does name a regular file inside the
 *   root resolves to it (the resolver refuses nothing it should serve),
 *   and one naming a directory without a trailing '/' gives -EISDIR;
 * - out is written within out_len: an exact-size buffer works, one byte
 *   less gives -ENAMETOOLONG (ASan watches the heap copies);
 * - static_open() opens every resolved file, as a regular file (nothing in
 *   the tree changes while it runs, so it must refuse nothing resolved);
 * - for -EISDIR, the redirect target static_location() writes is
 *   path-only: one '/', then no '/' or a backslash (never "//host"), only
 *   unreserved characters, '/' and %HH, and it ends in '/'.
 *
 * Run it through scripts/fuzz.sh; seeds are in tests/fuzz/corpus/static/.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../handlers/static.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[PATH_MAX];    /* realpath() of the web root */
static char outside[PATH_MAX]; /* a directory beside it */
static char sibling[PATH_MAX]; /* root's path plus "x" */
static char base[PATH_MAX];    /* the directory holding all three */

static void check(bool ok, const char *what, const char *path);
static void check_location(const char *path);
static void make_tree(void);
static void remove_tree(void);
static void must(bool ok, const char *what);
static void put_file(const char *dir, const char *name, const char *text);
static void put_link(const char *target, const char *dir, const char *name);
static bool clean_segments(const char *path);
static int expected(const char *path, char *want, size_t want_len);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    make_tree();
    atexit(remove_tree);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = strnlen((const char *)data, size);
    char *path = malloc(len + 1);
    char *out = malloc(PATH_MAX);
    if (!path || !out)
        goto out_free;
    memcpy(path, data, len);
    path[len] = '\0';

    int rc = static_resolve(root, path, out, PATH_MAX);
    check(rc == 0 || rc == -EINVAL || rc == -ENOENT || rc == -EISDIR ||
              rc == -ENAMETOOLONG,
          "result is 0 or a documented refusal", path);
    if (path[0] != '/')
        check(rc == -EINVAL, "a relative path is -EINVAL", path);

    char want[PATH_MAX];
    int want_rc =
        clean_segments(path) ? expected(path, want, sizeof(want)) : -EINVAL;
    if (want_rc == 0)
        check(rc == 0 && strcmp(out, want) == 0,
              "a clean path naming a file inside the root resolves to it",
              path);
    if (want_rc == -EISDIR)
        check(rc == -EISDIR, "a directory without '/' is -EISDIR", path);
    if (rc == -EISDIR)
        check_location(path);
    if (rc != 0)
        goto out_free;

    size_t root_len = strlen(root);
    size_t out_len = strnlen(out, PATH_MAX);
    check(out_len < PATH_MAX, "out is NUL-terminated", path);
    check(clean_segments(path), "resolved through a refused segment", path);
    check(strncmp(out, root, root_len) == 0 && out[root_len] == '/',
          "the resolved path lies inside the root", path);
    check(want_rc == 0 && strcmp(out, want) == 0,
          "the resolved file is the one the path names", path);
    struct stat st;
    check(lstat(out, &st) == 0 && S_ISREG(st.st_mode),
          "the resolved path is a regular file, not a link", path);
    char again[PATH_MAX];
    check(realpath(out, again) && strcmp(again, out) == 0,
          "the resolved path is canonical", path);
    int fd = static_open(root, out);
    check(fd >= 0, "static_open() opens what static_resolve() resolved", path);
    if (fd >= 0) {
        check(fstat(fd, &st) == 0 && S_ISREG(st.st_mode),
              "static_open() gives a regular file", path);
        close(fd);
    }

    /* Exactly the room it needs, then one byte less. */
    char *exact = malloc(out_len + 1);
    if (exact) {
        check(static_resolve(root, path, exact, out_len + 1) == 0 &&
                  strcmp(exact, out) == 0,
              "an exact-size buffer is enough", path);
        check(static_resolve(root, path, exact, out_len) == -ENAMETOOLONG,
              "a buffer one byte short is -ENAMETOOLONG", path);
        free(exact);
    }

out_free:
    free(path);
    free(out);
    return 0;
}

/* The redirect of a directory named without its final '/'. */
static void check_location(const char *path)
{
    char location[4096];
    int rc = static_location(location, sizeof(location), path);

    check(rc == 0 || rc == -ENAMETOOLONG,
          "static_location() is 0 or -ENAMETOOLONG for an -EISDIR path", path);
    if (rc != 0)
        return;
    size_t len = strlen(location);
    check(location[0] == '/' && location[1] != '/' && location[1] != '\\',
          "the Location starts with exactly one '/'", path);
    check(location[len - 1] == '/', "the Location ends in '/'", path);
    for (size_t i = 0; i < len; i++) {
        char c = location[i];
        bool ok = isalnum((unsigned char)c) || strchr("-._~/%", c) != NULL;
        check(ok, "the Location holds only unreserved, '/' and %HH", path);
        check(!(c == '/' && i > 0 && location[i - 1] == '/'),
              "the Location has no '//'", path);
    }
}

static void check(bool ok, const char *what, const char *path)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_static: invariant violated: %s (path '%.300s')\n",
            what, path);
    abort();
}

/*
 * True when path is absolute and no segment is ".", "..", hidden
 * (starts with '.') or holds a backslash: what static.h lets through.
 */
static bool clean_segments(const char *path)
{
    if (path[0] != '/')
        return false;
    if (strchr(path, '\\'))
        return false;
    for (const char *c = path; *c; c++) {
        if (c[0] == '/' && c[1] == '.')
            return false;
    }
    return true;
}

/*
 * What a clean path should give, found differently from the resolver:
 * realpath() of the whole root + path text. Returns 0 with the file in
 * want, -EISDIR, or -ENOENT (anything else, including names too long).
 */
static int expected(const char *path, char *want, size_t want_len)
{
    char candidate[PATH_MAX + 32];
    bool dir = path[strlen(path) - 1] == '/';
    int n = snprintf(candidate, sizeof(candidate), "%s%s%s", root, path,
                     dir ? "index.html" : "");
    if (n < 0 || (size_t)n >= PATH_MAX - 1)
        return -ENOENT;
    char real[PATH_MAX];
    if (!realpath(candidate, real))
        return -ENOENT;
    size_t root_len = strlen(root);
    if (strncmp(real, root, root_len) != 0 || real[root_len] != '/')
        return -ENOENT;
    struct stat st;
    if (stat(real, &st) != 0)
        return -ENOENT;
    if (S_ISDIR(st.st_mode))
        return dir ? -ENOENT : -EISDIR;
    if (!S_ISREG(st.st_mode) || strlen(real) >= want_len)
        return -ENOENT;
    memcpy(want, real, strlen(real) + 1);
    return 0;
}

static void make_tree(void)
{
    const char *tmp = getenv("TMPDIR");
    char made[PATH_MAX];
    char path[PATH_MAX];
    char target[PATH_MAX * 2];

    snprintf(made, sizeof(made), "%s/conlab-fuzz-static-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    must(mkdtemp(made) && realpath(made, base), "mkdtemp");
    snprintf(root, sizeof(root), "%s/web", base);
    snprintf(outside, sizeof(outside), "%s/out", base);
    snprintf(sibling, sizeof(sibling), "%s/webx", base);
    must(mkdir(root, 0700) == 0 && mkdir(outside, 0700) == 0 &&
             mkdir(sibling, 0700) == 0,
         "mkdir");
    snprintf(path, sizeof(path), "%s/sub", root);
    must(mkdir(path, 0700) == 0, "mkdir sub");
    snprintf(path, sizeof(path), "%s/sub/deeper", root);
    must(mkdir(path, 0700) == 0, "mkdir sub/deeper");
    snprintf(path, sizeof(path), "%s/emptydir", root);
    must(mkdir(path, 0700) == 0, "mkdir emptydir");
    snprintf(path, sizeof(path), "%s/.git", root);
    must(mkdir(path, 0700) == 0, "mkdir .git");
    snprintf(path, sizeof(path), "%s/fifo", root);
    must(mkfifo(path, 0600) == 0, "mkfifo");

    put_file(root, "index.html", "<h1>home</h1>\n");
    put_file(root, "file.js", "console.log(1);\n");
    put_file(root, ".secret", "hidden\n");
    put_file(root, ".git/config", "hidden\n");
    put_file(root, "sub/index.html", "<h1>sub</h1>\n");
    put_file(root, "sub/page.css", "p{}\n");
    put_file(root, "sub/deeper/x.txt", "x\n");
    put_file(outside, "secret.txt", "outside\n");
    put_file(outside, "index.html", "outside\n");
    put_file(sibling, "file.txt", "sibling\n");

    put_link("file.js", root, "link-in");
    snprintf(target, sizeof(target), "%s/sub/page.css", root);
    put_link(target, root, "link-in-abs");
    put_link("sub", root, "dirlink-in");
    put_link("..", root, "up");
    snprintf(target, sizeof(target), "%s/secret.txt", outside);
    put_link(target, root, "link-out");
    put_link("../out/secret.txt", root, "link-rel-out");
    put_link(outside, root, "dirlink-out");
    snprintf(target, sizeof(target), "%s/file.txt", sibling);
    put_link(target, root, "link-sibling");
    put_link("loop", root, "loop");
    put_link("nowhere", root, "dangling");
}

static void must(bool ok, const char *what)
{
    if (ok)
        return;
    perror(what);
    abort();
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    must(fp != NULL, path);
    fputs(text, fp);
    must(fclose(fp) == 0, path);
}

static void put_link(const char *target, const char *dir, const char *name)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    must(symlink(target, path) == 0, path);
}

static void remove_tree(void)
{
    /* The names are fixed: no recursive walk needed. */
    static const char *const names[] = {
        "web/sub/deeper/x.txt",
        "web/sub/deeper",
        "web/sub/index.html",
        "web/sub/page.css",
        "web/sub",
        "web/emptydir",
        "web/.git/config",
        "web/.git",
        "web/fifo",
        "web/index.html",
        "web/file.js",
        "web/.secret",
        "web/link-in",
        "web/link-in-abs",
        "web/dirlink-in",
        "web/up",
        "web/link-out",
        "web/link-rel-out",
        "web/dirlink-out",
        "web/link-sibling",
        "web/loop",
        "web/dangling",
        "web",
        "out/secret.txt",
        "out/index.html",
        "out",
        "webx/file.txt",
        "webx",
        "",
    };
    char path[PATH_MAX * 2];

    if (!base[0])
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", base, names[i]);
        if (unlink(path) != 0)
            rmdir(path);
    }
}
