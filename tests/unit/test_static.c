/*
 * Unit tests of handlers/static.c: static_resolve() against a real
 * directory tree, static_content_type(), and static_handle() on a few
 * requests. The group setup builds the tree once under /tmp:
 *
 *   root/                 index.html file.js .secret fifo
 *   root/sub/             index.html page.css
 *   root/emptydir/
 *   root/link-in          -> file.js             (inside: allowed)
 *   root/link-in-abs      -> <root>/sub/page.css (inside: allowed)
 *   root/dirlink-in       -> sub
 *   root/link-out         -> <outside>/secret.txt
 *   root/dirlink-out      -> <outside>
 *   root/link-sibling     -> <root>x/file.txt    (shares root's prefix)
 *   <outside>/secret.txt, <root>x/file.txt
 *
 * and the group teardown removes all three directories.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../handlers/handlers.h"
#include "../../handlers/static.h"

struct tree {
    char root[PATH_MAX];    /* realpath() of the web root */
    char outside[PATH_MAX]; /* realpath() of a directory beside it */
    char sibling[PATH_MAX]; /* root's path plus "x" */
};

static struct tree tree;

/* If-None-Match for fake_header(); NULL when the request has none. */
static const char *if_none_match;

static int build_tree(void);
static int setup_tree(void **state);
static int teardown_tree(void **state);
static int write_file(const char *dir, const char *name, const char *text);
static int link_to(const char *target, const char *dir, const char *name);
static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw);
static void remove_tree(const char *dir);
static void join(char *out, const char *dir, const char *name);
static void expect_resolves(const char *path, const char *relative);
static void expect_refused(const char *path, int error);
static const char *fake_header(const struct request *req, const char *name);
static const char *header_value(const struct response *resp, const char *name);

static int write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    join(path, dir, name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fputs(text, fp);
    return fclose(fp) == 0 ? 0 : -1;
}

static int link_to(const char *target, const char *dir, const char *name)
{
    char path[PATH_MAX];
    join(path, dir, name);
    return symlink(target, path);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tree(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    assert_in_range(n, 1, PATH_MAX - 1);
}

static int build_tree(void)
{
    char made[PATH_MAX] = "/tmp/conlab-test-static-XXXXXX";
    char made_out[PATH_MAX] = "/tmp/conlab-test-static-out-XXXXXX";
    char path[PATH_MAX];

    if (!mkdtemp(made) || !realpath(made, tree.root))
        return -1;
    if (!mkdtemp(made_out) || !realpath(made_out, tree.outside))
        return -1;
    int n = snprintf(tree.sibling, sizeof(tree.sibling), "%sx", tree.root);
    if (n < 0 || (size_t)n >= sizeof(tree.sibling) ||
        mkdir(tree.sibling, 0700) != 0)
        return -1;

    join(path, tree.root, "sub");
    if (mkdir(path, 0700) != 0)
        return -1;
    join(path, tree.root, "emptydir");
    if (mkdir(path, 0700) != 0)
        return -1;
    join(path, tree.root, "fifo");
    if (mkfifo(path, 0600) != 0)
        return -1;
    if (write_file(tree.root, "index.html", "<h1>home</h1>\n") != 0 ||
        write_file(tree.root, "file.js", "console.log(1);\n") != 0 ||
        write_file(tree.root, ".secret", "hidden\n") != 0 ||
        write_file(tree.root, "sub/index.html", "<h1>sub</h1>\n") != 0 ||
        write_file(tree.root, "sub/page.css", "p{}\n") != 0 ||
        write_file(tree.outside, "secret.txt", "outside\n") != 0 ||
        write_file(tree.sibling, "file.txt", "sibling\n") != 0)
        return -1;

    join(path, tree.root, "sub/page.css");
    if (link_to("file.js", tree.root, "link-in") != 0 ||
        link_to(path, tree.root, "link-in-abs") != 0 ||
        link_to("sub", tree.root, "dirlink-in") != 0)
        return -1;
    join(path, tree.outside, "secret.txt");
    if (link_to(path, tree.root, "link-out") != 0 ||
        link_to(tree.outside, tree.root, "dirlink-out") != 0)
        return -1;
    join(path, tree.sibling, "file.txt");
    if (link_to(path, tree.root, "link-sibling") != 0)
        return -1;
    return 0;
}

static int setup_tree(void **state)
{
    if (build_tree() == 0)
        return 0;
    teardown_tree(state);
    return -1;
}

static int teardown_tree(void **state)
{
    (void)state;
    remove_tree(tree.root);
    remove_tree(tree.outside);
    remove_tree(tree.sibling);
    return 0;
}

/* Asserts path resolves to root/relative. */
static void expect_resolves(const char *path, const char *relative)
{
    char want[PATH_MAX];
    char out[PATH_MAX] = "";

    join(want, tree.root, relative);
    int rc = static_resolve(tree.root, path, out, sizeof(out));
    if (rc != 0 || strcmp(out, want) != 0)
        fail_msg("'%s': rc %d, out '%s' (wanted '%s')", path, rc, out, want);
}

static void expect_refused(const char *path, int error)
{
    char out[PATH_MAX] = "";

    int rc = static_resolve(tree.root, path, out, sizeof(out));
    if (rc != error)
        fail_msg("'%s': rc %d (%s), out '%s', wanted %d (%s)", path, rc,
                 strerror(-rc), out, error, strerror(-error));
}

/* ---- static_resolve ---- */

static void resolve_root_is_index(void **state)
{
    (void)state;
    expect_resolves("/", "index.html");
    expect_resolves("/index.html", "index.html");
}

static void resolve_directory_with_slash_is_its_index(void **state)
{
    (void)state;
    expect_resolves("/sub/", "sub/index.html");
    expect_resolves("/sub/index.html", "sub/index.html");
}

static void resolve_directory_without_slash(void **state)
{
    (void)state;
    expect_refused("/sub", -EISDIR);
    expect_refused("/emptydir", -EISDIR);
}

static void resolve_directory_without_index(void **state)
{
    (void)state;
    expect_refused("/emptydir/", -ENOENT);
}

static void resolve_file(void **state)
{
    (void)state;
    expect_resolves("/file.js", "file.js");
    expect_resolves("/sub/page.css", "sub/page.css");
}

static void resolve_repeated_slashes(void **state)
{
    (void)state;
    expect_resolves("//file.js", "file.js");
    expect_resolves("/sub//page.css", "sub/page.css");
    expect_resolves("//", "index.html");
    expect_resolves("/sub//", "sub/index.html");
}

static void resolve_missing(void **state)
{
    (void)state;
    expect_refused("/missing", -ENOENT);
    expect_refused("/missing/", -ENOENT);
    expect_refused("/sub/missing.css", -ENOENT);
    expect_refused("/file.js/", -ENOENT);
    expect_refused("/file.js/x", -ENOENT);
}

static void resolve_dot_segments(void **state)
{
    (void)state;
    expect_refused("/../x", -EINVAL);
    expect_refused("/a/./b", -EINVAL);
    expect_refused("/a/..", -EINVAL);
    expect_refused("/.", -EINVAL);
    expect_refused("/..", -EINVAL);
    expect_refused("/./", -EINVAL);
    expect_refused("/sub/../file.js", -EINVAL);
    expect_refused("/sub/./page.css", -EINVAL);
    expect_refused("//..//file.js", -EINVAL);
}

static void resolve_backslash(void **state)
{
    (void)state;
    expect_refused("/a\\b", -EINVAL);
    expect_refused("/file.js\\", -EINVAL);
    expect_refused("/..\\file.js", -EINVAL);
    expect_refused("/sub\\page.css", -EINVAL);
}

static void resolve_hidden(void **state)
{
    (void)state;
    expect_refused("/.secret", -ENOENT);
    expect_refused("/.git/config", -ENOENT);
    expect_refused("/sub/.hidden", -ENOENT);
    expect_refused("/...", -ENOENT);
}

static void resolve_relative(void **state)
{
    (void)state;
    expect_refused("relative", -EINVAL);
    expect_refused("file.js", -EINVAL);
    expect_refused("", -EINVAL);
    expect_refused("\\file.js", -EINVAL);
}

static void resolve_symlink_inside(void **state)
{
    (void)state;
    /* The real path of the target is returned. */
    expect_resolves("/link-in", "file.js");
    expect_resolves("/link-in-abs", "sub/page.css");
    expect_resolves("/dirlink-in/page.css", "sub/page.css");
    expect_resolves("/dirlink-in/", "sub/index.html");
    expect_refused("/dirlink-in", -EISDIR);
}

static void resolve_symlink_outside(void **state)
{
    (void)state;
    expect_refused("/link-out", -ENOENT);
    expect_refused("/dirlink-out/secret.txt", -ENOENT);
    expect_refused("/dirlink-out/", -ENOENT);
    /* "<root>x" starts with "<root>" but is not under it. */
    expect_refused("/link-sibling", -ENOENT);
}

/* realpath("/") is "/": every absolute file is under that root. */
static void resolve_with_filesystem_root(void **state)
{
    char path[PATH_MAX];
    char want[PATH_MAX];
    char out[PATH_MAX] = "";

    (void)state;
    join(want, tree.root, "file.js");
    snprintf(path, sizeof(path), "%s", want);
    int rc = static_resolve("/", path, out, sizeof(out));
    if (rc != 0 || strcmp(out, want) != 0)
        fail_msg("root '/', path '%s': rc %d (%s), out '%s'", path, rc,
                 strerror(-rc), out);
}

static void resolve_not_a_regular_file(void **state)
{
    (void)state;
    expect_refused("/fifo", -ENOENT);
}

static void resolve_out_too_small(void **state)
{
    char want[PATH_MAX];
    char out[PATH_MAX];

    (void)state;
    join(want, tree.root, "file.js");
    assert_int_equal(static_resolve(tree.root, "/file.js", out, strlen(want)),
                     -ENAMETOOLONG);
    assert_int_equal(
        static_resolve(tree.root, "/file.js", out, strlen(want) + 1), 0);
    assert_string_equal(out, want);
    assert_int_equal(static_resolve(tree.root, "/file.js", out, 1),
                     -ENAMETOOLONG);
}

static void resolve_very_long_path(void **state)
{
    char *path = malloc(2 * PATH_MAX);

    (void)state;
    assert_non_null(path);
    path[0] = '/';
    for (size_t i = 1; i < 2 * PATH_MAX - 1; i++)
        path[i] = i % 100 == 0 ? '/' : 'a';
    path[2 * PATH_MAX - 1] = '\0';
    char out[PATH_MAX];
    int rc = static_resolve(tree.root, path, out, sizeof(out));
    free(path);
    assert_true(rc == -ENAMETOOLONG || rc == -ENOENT);
}

/* ---- static_content_type ---- */

static void content_types(void **state)
{
    (void)state;
    assert_string_equal(static_content_type("/index.html"),
                        "text/html; charset=utf-8");
    assert_string_equal(static_content_type("/app.css"),
                        "text/css; charset=utf-8");
    assert_string_equal(static_content_type("/app.js"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(static_content_type("/x.min.js"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(static_content_type("/data.json"),
                        "application/json; charset=utf-8");
    assert_string_equal(static_content_type("/logo.svg"), "image/svg+xml");
    assert_string_equal(static_content_type("/logo.png"), "image/png");
    assert_string_equal(static_content_type("file.html"),
                        "text/html; charset=utf-8");
}

static void content_type_unknown(void **state)
{
    (void)state;
    assert_string_equal(static_content_type("/archive.xyz"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/archive.tar.gz"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/file."),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/page.html5"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/page.htm"),
                        "application/octet-stream");
}

static void content_type_uppercase(void **state)
{
    (void)state;
    assert_string_equal(static_content_type("/INDEX.HTML"),
                        "text/html; charset=utf-8");
    assert_string_equal(static_content_type("/App.Js"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(static_content_type("/LOGO.PNG"), "image/png");
}

static void content_type_no_extension(void **state)
{
    (void)state;
    assert_string_equal(static_content_type("/README"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("README"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/a.b/file"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/a.html/file"),
                        "application/octet-stream");
    assert_string_equal(static_content_type("/a.b/file.css"),
                        "text/css; charset=utf-8");
}

/* ---- static_open ---- */

static void open_resolved_files(void **state)
{
    char out[PATH_MAX];
    char buf[32];

    (void)state;
    /* Links within the root resolve to their targets, opened as such. */
    static const char *const paths[] = {"/file.js", "/link-in", "/sub/",
                                        "/dirlink-in/page.css"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(static_resolve(tree.root, paths[i], out, sizeof(out)),
                         0);
        int fd = static_open(tree.root, out);
        if (fd < 0)
            fail_msg("'%s' (%s): %s", paths[i], out, strerror(-fd));
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_true(read(fd, buf, sizeof(buf)) > 0);
        close(fd);
    }
    join(out, tree.outside, "secret.txt");
    assert_int_equal(static_open(tree.root, out), -EINVAL);
    join(out, tree.sibling, "file.txt");
    assert_int_equal(static_open(tree.root, out), -EINVAL);
    assert_int_equal(static_open(tree.root, tree.root), -EINVAL);
    join(out, tree.root, "fifo");
    assert_int_equal(static_open(tree.root, out), -ENOENT);
    join(out, tree.root, "sub");
    assert_int_equal(static_open(tree.root, out), -ENOENT);
}

/*
 * A file, then a directory, replaced by a link to the outside after
 * static_resolve() checked the path: open(2) would follow the link (the
 * premise, asserted), static_open() refuses it.
 */
static void open_refuses_swapped_links(void **state)
{
    char checked[PATH_MAX];
    char path[PATH_MAX];
    char moved[PATH_MAX];
    char target[PATH_MAX];
    char buf[32] = "";

    (void)state;
    assert_int_equal(write_file(tree.root, "swap.txt", "inside\n"), 0);
    assert_int_equal(
        static_resolve(tree.root, "/swap.txt", checked, sizeof(checked)), 0);
    join(path, tree.root, "swap.txt");
    join(target, tree.outside, "secret.txt");
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(target, path), 0);
    int fd = open(checked, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    assert_string_equal(buf, "outside\n");
    assert_int_equal(static_open(tree.root, checked), -ELOOP);
    assert_int_equal(unlink(path), 0);

    join(path, tree.root, "swapdir");
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(write_file(tree.root, "swapdir/secret.txt", "in\n"), 0);
    assert_int_equal(static_resolve(tree.root, "/swapdir/secret.txt", checked,
                                    sizeof(checked)),
                     0);
    join(moved, tree.root, "swapdir-moved");
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(symlink(tree.outside, path), 0);
    fd = open(checked, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0); /* open(2) reaches <outside>/secret.txt */
    close(fd);
    assert_int_equal(static_open(tree.root, checked), -ELOOP);
    assert_int_equal(unlink(path), 0);
    remove_tree(moved);
}

/* ---- static_location ---- */

static void location_is_path_only(void **state)
{
    static const struct {
        const char *path;
        const char *location;
    } cases[] = {
        {"/sub", "/sub/"},
        {"//sub", "/sub/"},
        {"///evil.example//x", "/evil.example/x/"},
        {"/a b", "/a%20b/"},
        {"/%2f/x", "/%252f/x/"},
        {"/", "/"},
    };
    char out[RESPONSE_HEADER_VALUE_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = static_location(out, sizeof(out), cases[i].path);
        if (rc != 0 || strcmp(out, cases[i].location) != 0)
            fail_msg("'%s': rc %d, '%s' (wanted '%s')", cases[i].path, rc, out,
                     cases[i].location);
    }
    assert_int_equal(static_location(out, sizeof(out), "sub"), -EINVAL);
    assert_int_equal(static_location(out, 5, "/sub"), -ENAMETOOLONG);
    assert_int_equal(static_location(out, 6, "/sub"), 0);
    assert_string_equal(out, "/sub/");
}

/* ---- static_handle ---- */

static const char *fake_header(const struct request *req, const char *name)
{
    (void)req;
    return strcmp(name, "If-None-Match") == 0 ? if_none_match : NULL;
}

static const char *header_value(const struct response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++) {
        if (strcmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    }
    return NULL;
}

/* Runs static_handle() for GET path into resp (initialised here). */
static void handle(const char *path, struct response *resp)
{
    static struct app app;
    struct request req = {
        .method = HTTP_GET, .path = path, .query = "", .header = fake_header};

    snprintf(app.web_root, sizeof(app.web_root), "%s", tree.root);
    response_init(resp);
    assert_int_equal(static_handle(&req, resp, &app), HANDLER_DONE);
}

static int error_status(const struct response *resp)
{
    json_t *body = json_loadb(resp->body, resp->body_len, 0, NULL);
    int status = (int)json_integer_value(
        json_object_get(json_object_get(body, "error"), "status"));
    json_decref(body);
    return status;
}

static void handle_serves_file(void **state)
{
    struct response resp;
    struct stat st;
    char file[PATH_MAX];

    (void)state;
    if_none_match = NULL;
    join(file, tree.root, "file.js");
    assert_int_equal(stat(file, &st), 0);
    handle("/file.js", &resp);
    assert_int_equal(resp.status, 200);
    assert_true(resp.fd >= 0);
    assert_int_equal(resp.fd_size, (uint64_t)st.st_size);
    assert_string_equal(resp.content_type, "text/javascript; charset=utf-8");
    assert_non_null(header_value(&resp, "ETag"));
    assert_non_null(header_value(&resp, "Last-Modified"));
    assert_true(fcntl(resp.fd, F_GETFD) & FD_CLOEXEC);
    response_cleanup(&resp);
}

static void handle_revalidates_with_etag(void **state)
{
    struct response resp;
    char etag[RESPONSE_HEADER_VALUE_MAX];

    (void)state;
    if_none_match = NULL;
    handle("/index.html", &resp);
    assert_int_equal(resp.status, 200);
    snprintf(etag, sizeof(etag), "%s", header_value(&resp, "ETag"));
    response_cleanup(&resp);

    if_none_match = etag;
    handle("/index.html", &resp);
    if_none_match = NULL;
    assert_int_equal(resp.status, 304);
    assert_int_equal(resp.fd, -1);
    response_cleanup(&resp);
}

static void handle_redirects_directory(void **state)
{
    struct response resp;

    (void)state;
    handle("/sub", &resp);
    assert_int_equal(resp.status, 301);
    assert_string_equal(header_value(&resp, "Location"), "/sub/");
    response_cleanup(&resp);

    /* Not "//sub/": a browser would read "sub" as a host. */
    handle("//sub", &resp);
    assert_int_equal(resp.status, 301);
    assert_string_equal(header_value(&resp, "Location"), "/sub/");
    response_cleanup(&resp);
    handle("//dirlink-in", &resp);
    assert_int_equal(resp.status, 301);
    assert_string_equal(header_value(&resp, "Location"), "/dirlink-in/");
    response_cleanup(&resp);
}

static void handle_refuses_dot_segments(void **state)
{
    struct response resp;

    (void)state;
    handle("/sub/../.secret", &resp);
    assert_int_equal(resp.status, 400);
    assert_int_equal(error_status(&resp), 400);
    assert_int_equal(resp.fd, -1);
    response_cleanup(&resp);
}

static void handle_missing_is_404(void **state)
{
    struct response resp;

    (void)state;
    handle("/link-out", &resp);
    assert_int_equal(resp.status, 404);
    assert_int_equal(error_status(&resp), 404);
    assert_int_equal(resp.fd, -1);
    response_cleanup(&resp);

    handle("/missing-\xff", &resp);
    assert_int_equal(resp.status, 404);
    assert_int_equal(error_status(&resp), 404);
    response_cleanup(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resolve_root_is_index),
        cmocka_unit_test(resolve_directory_with_slash_is_its_index),
        cmocka_unit_test(resolve_directory_without_slash),
        cmocka_unit_test(resolve_directory_without_index),
        cmocka_unit_test(resolve_file),
        cmocka_unit_test(resolve_repeated_slashes),
        cmocka_unit_test(resolve_missing),
        cmocka_unit_test(resolve_dot_segments),
        cmocka_unit_test(resolve_backslash),
        cmocka_unit_test(resolve_hidden),
        cmocka_unit_test(resolve_relative),
        cmocka_unit_test(resolve_symlink_inside),
        cmocka_unit_test(resolve_symlink_outside),
        cmocka_unit_test(resolve_with_filesystem_root),
        cmocka_unit_test(resolve_not_a_regular_file),
        cmocka_unit_test(resolve_out_too_small),
        cmocka_unit_test(resolve_very_long_path),
        cmocka_unit_test(content_types),
        cmocka_unit_test(content_type_unknown),
        cmocka_unit_test(content_type_uppercase),
        cmocka_unit_test(content_type_no_extension),
        cmocka_unit_test(open_resolved_files),
        cmocka_unit_test(open_refuses_swapped_links),
        cmocka_unit_test(location_is_path_only),
        cmocka_unit_test(handle_serves_file),
        cmocka_unit_test(handle_revalidates_with_etag),
        cmocka_unit_test(handle_redirects_directory),
        cmocka_unit_test(handle_refuses_dot_segments),
        cmocka_unit_test(handle_missing_is_404),
    };
    return cmocka_run_group_tests_name("static", tests, setup_tree,
                                       teardown_tree);
}
