/*
 * Unit tests of server/allow.c: the fetch allow-list (SSRF guard).
 *
 * Nothing here touches the network: allow_init() only sees IP literals and
 * "localhost", which resolves from /etc/hosts. Names that need DNS
 * (example.test) are put into the list's entries directly, as allow_init()
 * would store them, to test allow_check_url() on names that do not
 * resolve. What "localhost" resolves to besides 127.0.0.1 (often ::1)
 * depends on the machine; the built-in self entries must not depend on it,
 * and self_addresses_exact checks that they do not.
 *
 * Each test gets a zeroed struct allow_list on the heap from the fixture
 * (it is about 19 KB); setup_self_v4 and setup_self_v6 also fill it for a
 * service on 127.0.0.1 or ::1, port SELF_PORT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

#include "../../server/allow.h"

#define SELF_PORT 18080
#define ERR_LEN   256

static int setup_empty(void **state);
static int setup_self_v4(void **state);
static int setup_self_v6(void **state);
static int teardown_list(void **state);
static int init_with(struct allow_list *al, const char *self_host,
                     const char *const *hosts, int n_hosts, int *unresolved,
                     char *err);
static void expect_url(const struct allow_list *al, const char *url,
                       int want_rc, const char *fragment);
static bool address_allowed(const struct allow_list *al, const char *ip);
static bool address_allowed_on(const struct allow_list *al, const char *ip,
                               int port);
static void add_entry(struct allow_list *al, const char *host, int port);
static bool all_printable(const char *text);
static char *url_of_length(size_t len);

static int setup_empty(void **state)
{
    struct allow_list *al = calloc(1, sizeof(*al));
    if (!al)
        return -1;
    *state = al;
    return 0;
}

static int setup_self_v4(void **state)
{
    char err[ERR_LEN];
    if (setup_empty(state) < 0)
        return -1;
    return init_with(*state, "127.0.0.1", NULL, 0, NULL, err);
}

static int setup_self_v6(void **state)
{
    char err[ERR_LEN];
    if (setup_empty(state) < 0)
        return -1;
    return init_with(*state, "::1", NULL, 0, NULL, err);
}

static int teardown_list(void **state)
{
    free(*state);
    return 0;
}

/*
 * allow_init() on SELF_PORT with hosts copied into a modifiable array, as
 * struct config holds them (so the call compiles from main.c as it is).
 */
static int init_with(struct allow_list *al, const char *self_host,
                     const char *const *hosts, int n_hosts, int *unresolved,
                     char *err)
{
    static char copies[ALLOW_ENTRIES_MAX + 1][CONFIG_HOST_MAX];

    assert_true(n_hosts <= ALLOW_ENTRIES_MAX + 1);
    for (int i = 0; i < n_hosts; i++)
        snprintf(copies[i], sizeof(copies[i]), "%s", hosts[i]);
    return allow_init(al, self_host, SELF_PORT, copies, n_hosts, unresolved,
                      err, ERR_LEN);
}

/*
 * Asserts allow_check_url(url) == want_rc; on failure the message must be
 * printable ASCII and contain fragment (when not NULL), on success empty.
 */
static void expect_url(const struct allow_list *al, const char *url,
                       int want_rc, const char *fragment)
{
    char err[ERR_LEN];
    int rc;

    memset(err, 'x', sizeof(err));
    rc = allow_check_url(al, url, err, sizeof(err));
    if (rc != want_rc)
        fail_msg("'%.80s': rc %d (%s), wanted %d", url ? url : "(null)", rc,
                 err, want_rc);
    if (rc == 0 && err[0] != '\0')
        fail_msg("'%.80s' allowed with message '%s'", url, err);
    if (rc != 0 && (err[0] == '\0' || !all_printable(err)))
        fail_msg("'%.80s': empty or unprintable message", url);
    if (rc != 0 && fragment && !strstr(err, fragment))
        fail_msg("'%.80s': message '%s' lacks '%s'", url, err, fragment);
}

/* allow_address() on an IPv4 or IPv6 literal, with a non-zero port. */
/* A connection to ip on the service's own port. */
static bool address_allowed(const struct allow_list *al, const char *ip)
{
    return address_allowed_on(al, ip, SELF_PORT);
}

static bool address_allowed_on(const struct allow_list *al, const char *ip,
                               int port)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        return allow_address(al, (const struct sockaddr *)&sin);
    }
    if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) != 1)
        fail_msg("test bug: '%s' is not an IP literal", ip);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)port);
    return allow_address(al, (const struct sockaddr *)&sin6);
}

/* Appends an entry as allow_init() stores a name, without resolving it. */
static void add_entry(struct allow_list *al, const char *host, int port)
{
    assert_true(al->n_entries < ALLOW_ENTRIES_MAX);
    snprintf(al->entries[al->n_entries].host, CONFIG_HOST_MAX, "%s", host);
    al->entries[al->n_entries].port = port;
    al->n_entries++;
}

/* True when every byte of text is printable ASCII. */
static bool all_printable(const char *text)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c < 0x20 || *c >= 0x7f)
            return false;
    }
    return true;
}

/* A new allowed-looking URL of exactly len bytes (self, long path). */
static char *url_of_length(size_t len)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d/", SELF_PORT);
    char *url = malloc(len + 1);

    assert_non_null(url);
    assert_true((size_t)n < len);
    memcpy(url, prefix, (size_t)n);
    memset(url + n, 'a', len - (size_t)n);
    url[len] = '\0';
    return url;
}

/* ---- allow_check_url: the service itself ---- */

static void self_urls_allowed(void **state)
{
    const struct allow_list *al = *state;
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/delay?ms=1", SELF_PORT);
    expect_url(al, url, 0, NULL);
    snprintf(url, sizeof(url), "http://localhost:%d/", SELF_PORT);
    expect_url(al, url, 0, NULL);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", SELF_PORT);
    expect_url(al, url, 0, NULL);
    snprintf(url, sizeof(url), "https://localhost:%d", SELF_PORT);
    expect_url(al, url, 0, NULL);
    /* A leading zero is the same port to the URL parser. */
    snprintf(url, sizeof(url), "http://127.0.0.1:0%d/", SELF_PORT);
    expect_url(al, url, 0, NULL);
    /* Another spelling of 127.0.0.1, as libcurl reads it. */
    snprintf(url, sizeof(url), "http://127.1:%d/", SELF_PORT);
    expect_url(al, url, 0, NULL);
    assert_int_equal(al->n_entries, 2);
    assert_string_equal(al->entries[0].host, "127.0.0.1");
    assert_int_equal(al->entries[0].port, SELF_PORT);
    assert_string_equal(al->entries[1].host, "localhost");
    assert_int_equal(al->entries[1].port, SELF_PORT);
}

static void self_other_ports_refused(void **state)
{
    const struct allow_list *al = *state;
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", SELF_PORT + 1);
    expect_url(al, url, -EACCES, "'127.0.0.1' port 18081");
    expect_url(al, "http://127.0.0.1/", -EACCES, "'127.0.0.1' port 80");
    expect_url(al, "https://127.0.0.1/", -EACCES, "'127.0.0.1' port 443");
    snprintf(url, sizeof(url), "http://localhost:%d/", SELF_PORT - 1);
    expect_url(al, url, -EACCES, "'localhost' port 18079");
    snprintf(url, sizeof(url), "http://10.0.0.1:%d/", SELF_PORT);
    expect_url(al, url, -EACCES, "'10.0.0.1'");
    snprintf(url, sizeof(url), "http://0.0.0.0:%d/", SELF_PORT);
    expect_url(al, url, -EACCES, "'0.0.0.0'");
    snprintf(url, sizeof(url), "http://127.0.0.2:%d/", SELF_PORT);
    expect_url(al, url, -EACCES, "'127.0.0.2'");
}

/*
 * The built-in entries allow exactly the address the service listens on,
 * whatever "localhost" resolves to: allow_address() is also the check of a
 * redirect's target, so a redirect to the other loopback address on the
 * service's port is refused too.
 */
static void self_addresses_exact(void **state)
{
    char err[ERR_LEN];
    struct allow_list *al = *state;

    assert_int_equal(init_with(al, "::1", NULL, 0, NULL, err), 0);
    assert_int_equal(al->n_addrs, 1);
    assert_true(address_allowed(al, "::1"));
    assert_false(address_allowed(al, "127.0.0.1"));
    assert_false(address_allowed(al, "::ffff:127.0.0.1"));
    expect_url(al, "http://127.0.0.1:18080/", -EACCES, "'127.0.0.1'");
    /* The name passes the text check; libcurl may then connect to ::1
     * only. */
    expect_url(al, "http://localhost:18080/", 0, NULL);

    assert_int_equal(init_with(al, "127.0.0.1", NULL, 0, NULL, err), 0);
    assert_int_equal(al->n_addrs, 1);
    assert_true(address_allowed(al, "127.0.0.1"));
    assert_false(address_allowed(al, "::1"));
    expect_url(al, "http://[::1]:18080/", -EACCES, "'[::1]'");
    expect_url(al, "http://localhost:18080/", 0, NULL);

    /* A wildcard bind: the loopback address of its family only. */
    assert_int_equal(init_with(al, "0.0.0.0", NULL, 0, NULL, err), 0);
    assert_int_equal(al->n_addrs, 1);
    assert_false(address_allowed(al, "::1"));
    assert_int_equal(init_with(al, "::", NULL, 0, NULL, err), 0);
    assert_int_equal(al->n_addrs, 1);
    assert_false(address_allowed(al, "127.0.0.1"));

    /* Bound to another address, the service is not "localhost". */
    assert_int_equal(init_with(al, "192.0.2.7", NULL, 0, NULL, err), 0);
    assert_int_equal(al->n_entries, 1);
    assert_string_equal(al->entries[0].host, "192.0.2.7");
    assert_int_equal(al->n_addrs, 1);
    assert_true(address_allowed(al, "192.0.2.7"));
    assert_false(address_allowed(al, "127.0.0.1"));
    assert_false(address_allowed(al, "::1"));
    expect_url(al, "http://localhost:18080/", -EACCES, "'localhost'");
    expect_url(al, "http://192.0.2.7:18080/", 0, NULL);
}

/* ---- schemes ---- */

static void other_schemes_refused(void **state)
{
    const struct allow_list *al = *state;
    static const char *const urls[] = {
        "ftp://127.0.0.1:18080/",    "gopher://127.0.0.1:18080/",
        "dict://127.0.0.1:18080/",   "ldap://127.0.0.1:18080/",
        "ws://127.0.0.1:18080/",     "foo://127.0.0.1:18080/",
        "HTTPX://127.0.0.1:18080/",  "httpss://127.0.0.1:18080/",
        "telnet://127.0.0.1:18080/",
    };

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        expect_url(al, urls[i], -EPROTONOSUPPORT, "127.0.0.1");
    expect_url(al, "file:///etc/passwd", -EPROTONOSUPPORT, "/etc/passwd");
    expect_url(al, "file://127.0.0.1/etc/passwd", -EPROTONOSUPPORT,
               "127.0.0.1");
    expect_url(al, "javascript:alert(1)", -EPROTONOSUPPORT, "alert");
    expect_url(al, "data:text/plain,x", -EPROTONOSUPPORT, "data:");
}

static void scheme_case_ignored(void **state)
{
    const struct allow_list *al = *state;

    expect_url(al, "HTTP://127.0.0.1:18080/", 0, NULL);
    expect_url(al, "HtTpS://localhost:18080/", 0, NULL);
    expect_url(al, "FTP://127.0.0.1:18080/", -EPROTONOSUPPORT, "127.0.0.1");
}

static void missing_scheme_refused(void **state)
{
    const struct allow_list *al = *state;

    /* Not an absolute URL at all: malformed (400), not a refused scheme. */
    expect_url(al, "127.0.0.1:18080/", -EINVAL, "127.0.0.1");
    expect_url(al, "//127.0.0.1:18080/", -EINVAL, "127.0.0.1");
    expect_url(al, "/delay?ms=1", -EINVAL, "/delay");
    /* "localhost:" reads as a scheme, and not an allowed one. */
    expect_url(al, "localhost:18080/", -EPROTONOSUPPORT, "localhost");
    expect_url(al, " http://127.0.0.1:18080/", -EINVAL, "127.0.0.1");
}

/* ---- user info and other parser tricks ---- */

static void userinfo_refused(void **state)
{
    const struct allow_list *al = *state;

    expect_url(al, "http://127.0.0.1@evil.example/", -EINVAL,
               "'evil.example' carries user info");
    expect_url(al, "http://user:pw@127.0.0.1:18080/", -EINVAL,
               "'127.0.0.1' carries user info");
    expect_url(al, "http://127.0.0.1:18080@evil.example/", -EINVAL,
               "'evil.example' carries user info");
    expect_url(al, "http://@127.0.0.1:18080/", -EINVAL, "user info");
    expect_url(al, "http://:@127.0.0.1:18080/", -EINVAL, "user info");
    expect_url(al, "http://x;opt@127.0.0.1:18080/", -EINVAL, "user info");
    expect_url(al, "http://127.0.0.1%2f@evil.example/", -EINVAL,
               "'evil.example'");
    expect_url(al, "http://evil.example\\@127.0.0.1:18080/", -EINVAL,
               "user info");
}

static void fragment_and_query_tricks_refused(void **state)
{
    const struct allow_list *al = *state;

    /* The host is evil.example for libcurl, whatever follows '#' or '?'. */
    expect_url(al, "http://evil.example#@127.0.0.1:18080/", -EACCES,
               "'evil.example' port 80");
    expect_url(al, "http://evil.example?@127.0.0.1:18080/", -EACCES,
               "'evil.example'");
    expect_url(al, "http://evil.example/@127.0.0.1:18080/", -EACCES,
               "'evil.example'");
    /* The reverse is harmless: the host is 127.0.0.1. */
    expect_url(al, "http://127.0.0.1:18080/#@evil.example/", 0, NULL);
    expect_url(al, "http://127.0.0.1:18080/?u=http://evil.example@x/", 0, NULL);
}

static void percent_encoded_host_decoded(void **state)
{
    const struct allow_list *al = *state;

    /* libcurl decodes the host before connecting: so does the check. */
    expect_url(al, "http://127.0.0.%31:18080/", 0, NULL);
    expect_url(al, "http://loc%41lhost:18080/", 0, NULL);
    expect_url(al, "http://127.0.0.%32:18080/", -EACCES, "'127.0.0.2'");
}

/* ---- IPv6 ---- */

static void ipv6_self(void **state)
{
    const struct allow_list *al = *state;

    assert_string_equal(al->entries[0].host, "[::1]");
    expect_url(al, "http://[::1]:18080/delay?ms=1", 0, NULL);
    expect_url(al, "http://[0:0::1]:18080/", 0, NULL);
    expect_url(al, "https://[0:0:0:0:0:0:0:1]:18080/", 0, NULL);
    expect_url(al, "http://[0000:0000:0000:0000:0000:0000:0000:0001]:18080/", 0,
               NULL);
    expect_url(al, "http://localhost:18080/", 0, NULL);
    expect_url(al, "http://[::1]:18081/", -EACCES, "'[::1]' port 18081");
    expect_url(al, "http://[::1]/", -EACCES, "port 80");
    expect_url(al, "http://[::2]:18080/", -EACCES, "'[::2]'");
    expect_url(al, "http://[::]:18080/", -EACCES, "'[::]'");
    /* 127.0.0.1 is not the service's address when it is bound to ::1. */
    expect_url(al, "http://127.0.0.1:18080/", -EACCES, "'127.0.0.1'");
}

static void ipv6_zone_refused(void **state)
{
    char err[ERR_LEN];
    struct allow_list *al = *state;
    static const char *const hosts[] = {"[fe80::1]"};

    assert_int_equal(init_with(al, "127.0.0.1", hosts, 1, NULL, err), 0);
    expect_url(al, "http://[fe80::1]:8000/", 0, NULL);
    expect_url(al, "http://[fe80::1%25eth0]:8000/", -EACCES, "zone ID");
}

static void wildcard_binds_mean_loopback(void **state)
{
    char err[ERR_LEN];
    struct allow_list *al = *state;

    assert_int_equal(init_with(al, "0.0.0.0", NULL, 0, NULL, err), 0);
    assert_string_equal(al->entries[0].host, "127.0.0.1");
    expect_url(al, "http://127.0.0.1:18080/", 0, NULL);
    expect_url(al, "http://0.0.0.0:18080/", -EACCES, "'0.0.0.0'");
    assert_true(address_allowed(al, "127.0.0.1"));
    assert_false(address_allowed(al, "0.0.0.0"));

    assert_int_equal(init_with(al, "::", NULL, 0, NULL, err), 0);
    assert_string_equal(al->entries[0].host, "[::1]");
    expect_url(al, "http://[::1]:18080/", 0, NULL);
    expect_url(al, "http://[::]:18080/", -EACCES, "'[::]'");
    assert_true(address_allowed(al, "::1"));
    assert_false(address_allowed(al, "::"));
}

/* [::ffff:a.b.c.d] is a.b.c.d for both checks. */
static void ipv4_mapped_consistent(void **state)
{
    const struct allow_list *al = *state;
    static const struct {
        const char *url;
        const char *address;
        bool allowed;
    } cases[] = {
        {"http://[::ffff:127.0.0.1]:18080/", "::ffff:127.0.0.1", true},
        {"http://[::FFFF:7f00:1]:18080/", "::ffff:7f00:1", true},
        {"http://[0:0:0:0:0:ffff:127.0.0.1]:18080/", "::ffff:127.0.0.1", true},
        {"http://[::ffff:10.0.0.1]:18080/", "::ffff:10.0.0.1", false},
        {"http://[::ffff:0.0.0.0]:18080/", "::ffff:0.0.0.0", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_url(al, cases[i].url, cases[i].allowed ? 0 : -EACCES, NULL);
        if (address_allowed(al, cases[i].address) != cases[i].allowed)
            fail_msg("allow_address(%s) is not %d", cases[i].address,
                     cases[i].allowed);
    }
}

/* ---- host spelling ---- */

static void host_case_ignored(void **state)
{
    const struct allow_list *al = *state;

    expect_url(al, "http://LOCALHOST:18080/", 0, NULL);
    expect_url(al, "https://LocalHost:18080/x", 0, NULL);
    expect_url(al, "http://LOCALHOSTS:18080/", -EACCES, "'LOCALHOSTS'");
}

static void one_trailing_dot_ignored(void **state)
{
    const struct allow_list *al = *state;
    char err[ERR_LEN];

    expect_url(al, "http://localhost.:18080/", 0, NULL);
    expect_url(al, "http://LOCALHOST.:18080/", 0, NULL);
    expect_url(al, "http://127.0.0.1.:18080/", 0, NULL);
    assert_int_not_equal(
        allow_check_url(al, "http://localhost..:18080/", err, sizeof(err)), 0);
    assert_int_not_equal(
        allow_check_url(al, "http://.:18080/", err, sizeof(err)), 0);
}

/* ---- --allow-host entries ---- */

static void allow_host_literals_and_ports(void **state)
{
    char err[ERR_LEN];
    struct allow_list *al = *state;
    static const char *const hosts[] = {
        "10.0.0.1:8000",        "[FD00::1]", "LOCALHOST.:9000", "127.1:7000",
        "[::ffff:10.9.9.9]:81",
    };
    int unresolved = -1;

    assert_int_equal(init_with(al, "127.0.0.1", hosts, 5, &unresolved, err), 0);
    assert_string_equal(err, "");
    assert_int_equal(unresolved, 0);
    assert_int_equal(al->n_entries, 7);
    assert_string_equal(al->entries[2].host, "10.0.0.1");
    assert_int_equal(al->entries[2].port, 8000);
    assert_string_equal(al->entries[3].host, "[fd00::1]");
    assert_int_equal(al->entries[3].port, 0);
    assert_string_equal(al->entries[4].host, "localhost");
    assert_int_equal(al->entries[4].port, 9000);
    assert_string_equal(al->entries[5].host, "127.0.0.1");
    assert_int_equal(al->entries[5].port, 7000);
    assert_string_equal(al->entries[6].host, "10.9.9.9");
    assert_int_equal(al->entries[6].port, 81);

    expect_url(al, "http://10.0.0.1:8000/", 0, NULL);
    expect_url(al, "http://10.0.0.1:8001/", -EACCES, "'10.0.0.1' port 8001");
    expect_url(al, "http://10.0.0.1/", -EACCES, "'10.0.0.1' port 80");
    expect_url(al, "http://[fd00::1]:1/", 0, NULL);
    expect_url(al, "http://[fd00::1]/", 0, NULL);
    expect_url(al, "https://[fd00:0::1]:65535/", 0, NULL);
    expect_url(al, "http://localhost:9000/", 0, NULL);
    expect_url(al, "http://localhost:9001/", -EACCES, "'localhost'");
    expect_url(al, "http://127.0.0.1:7000/", 0, NULL);
    expect_url(al, "http://10.9.9.9:81/", 0, NULL);
    expect_url(al, "http://[::ffff:10.9.9.9]:81/", 0, NULL);

    /* Connect-time checks hold the port too: a redirect from an allowed
     * target to another port of the same host is refused. */
    assert_true(address_allowed_on(al, "10.0.0.1", 8000));
    assert_false(address_allowed_on(al, "10.0.0.1", 8001));
    assert_true(address_allowed_on(al, "fd00::1", 1));
    assert_true(address_allowed_on(al, "fd00::1", 65535));
    assert_true(address_allowed_on(al, "10.9.9.9", 81));
    assert_true(address_allowed_on(al, "::ffff:10.9.9.9", 81));
    assert_false(address_allowed_on(al, "10.9.9.9", 6379));
    assert_true(address_allowed_on(al, "127.0.0.1", 7000));
    assert_false(address_allowed_on(al, "127.0.0.1", 6379));
    assert_false(address_allowed(al, "10.0.0.2"));
    assert_false(address_allowed(al, "fd00::2"));
}

/* Names that do not resolve still allow their URLs (not their addresses). */
static void allow_host_names(void **state)
{
    struct allow_list *al = *state;

    add_entry(al, "example.test", 8000);
    add_entry(al, "any.example.test", 0);

    expect_url(al, "http://example.test:8000/", 0, NULL);
    expect_url(al, "https://example.test:8000/", 0, NULL);
    expect_url(al, "http://EXAMPLE.test.:8000/x", 0, NULL);
    expect_url(al, "http://example.test/", -EACCES, "'example.test' port 80");
    expect_url(al, "http://example.test:8001/", -EACCES, "'example.test'");
    expect_url(al, "http://any.example.test/", 0, NULL);
    expect_url(al, "http://any.example.test:1/", 0, NULL);
    expect_url(al, "https://any.example.test:65535/", 0, NULL);
    expect_url(al, "http://other.example.test/", -EACCES,
               "'other.example.test'");
    expect_url(al, "http://example.test.evil.example:8000/", -EACCES,
               "'example.test.evil.example'");
    expect_url(al, "http://xexample.test:8000/", -EACCES, "'xexample.test'");
    assert_false(address_allowed(al, "10.0.0.1"));
}

/* ---- malformed URLs and messages ---- */

static void malformed_urls_refused(void **state)
{
    const struct allow_list *al = *state;
    static const char *const urls[] = {
        "",
        "http://",
        "http:",
        "http://[::1",
        "http://[::1]x/",
        "http://[]/",
        "http://[::g]/",
        "http://a b/",
        "http://127.0.0.1:18080/a b",
        "http://127.0.0.1:18080/\n",
        "http://127.0.0.1:18080/\t",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:65536/",
        "http://127.0.0.1:-1/",
        "http://127.0.0.1:18080:18080/",
        "http:////127.0.0.1:18080/",
        "http://%00127.0.0.1:18080/",
    };

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        expect_url(al, urls[i], -EINVAL, NULL);
    expect_url(al, NULL, -EINVAL, NULL);
    expect_url(al, "http://127.0.0.1:0/", -EINVAL, "'127.0.0.1'");
    expect_url(al, "http://[::1", -EINVAL, "[::1");
}

static void long_urls_refused(void **state)
{
    const struct allow_list *al = *state;
    char err[ERR_LEN];
    char *url;

    url = url_of_length(ALLOW_URL_MAX);
    expect_url(al, url, 0, NULL);
    free(url);

    url = url_of_length(ALLOW_URL_MAX + 1);
    expect_url(al, url, -EINVAL, "too long");
    free(url);

    url = url_of_length(3000);
    expect_url(al, url, -EINVAL, "'http://127.0.0.1:18080/aaa");
    assert_int_equal(allow_check_url(al, url, err, sizeof(err)), -EINVAL);
    assert_true(strlen(err) < 160);
    free(url);
}

static void messages_printable_and_capped(void **state)
{
    const struct allow_list *al = *state;
    char err[ERR_LEN];
    char url[400];
    char small[24];

    /* UTF-8 and escapes in a host are echoed as \xHH. */
    expect_url(al, "http://\xc3\xa9vil.example/", -EACCES, "\\xc3\\xa9vil");
    expect_url(al, "ftp://\xc3\xa9vil.example/", -EPROTONOSUPPORT,
               "\\xc3\\xa9vil");
    expect_url(al, "http://u@\xc3\xa9vil.example/", -EINVAL, "\\xc3\\xa9vil");
    expect_url(al, "\x1b[31mhttp://x/", -EINVAL, "\\x1b[31m");

    /* A long host is cut. */
    memset(url, 0, sizeof(url));
    memcpy(url, "http://", 7);
    memset(url + 7, 'h', 250);
    memcpy(url + 257, ".example/", 9);
    expect_url(al, url, -EACCES, "hhhh");
    assert_int_equal(allow_check_url(al, url, err, sizeof(err)), -EACCES);
    assert_true(strlen(err) < 160);

    /* Small or absent buffers. */
    assert_int_equal(allow_check_url(al, "ftp://x/", NULL, 0),
                     -EPROTONOSUPPORT);
    assert_int_equal(allow_check_url(al, "http://x/", small, sizeof(small)),
                     -EACCES);
    assert_true(strlen(small) == sizeof(small) - 1);
    assert_int_equal(allow_check_url(al, "http://x/", err, 0), -EACCES);
}

/* ---- allow_address ---- */

static void addresses_v4(void **state)
{
    const struct allow_list *al = *state;
    struct sockaddr_un sun;

    assert_true(address_allowed(al, "127.0.0.1"));
    assert_true(address_allowed(al, "::ffff:127.0.0.1"));
    assert_false(address_allowed(al, "10.0.0.1"));
    assert_false(address_allowed(al, "127.0.0.2"));
    assert_false(address_allowed(al, "0.0.0.0"));
    assert_false(address_allowed(al, "::"));
    assert_false(address_allowed(al, "::ffff:0.0.0.0"));
    assert_false(address_allowed(al, "::ffff:10.0.0.1"));
    /* IPv4-compatible (not mapped) is a different address. */
    assert_false(address_allowed(al, "::127.0.0.1"));
    assert_false(allow_address(al, NULL));
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(allow_address(al, (const struct sockaddr *)&sun));
}

/* Never the unspecified addresses, even when the set holds them. */
static void addresses_never_unspecified(void **state)
{
    struct allow_list *al = *state;
    struct sockaddr_in *sin = (struct sockaddr_in *)&al->addrs[al->n_addrs];
    struct sockaddr_in6 *sin6;

    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    al->n_addrs++;
    sin6 = (struct sockaddr_in6 *)&al->addrs[al->n_addrs];
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_any;
    al->n_addrs++;
    assert_false(address_allowed(al, "0.0.0.0"));
    assert_false(address_allowed(al, "::ffff:0.0.0.0"));
    assert_false(address_allowed(al, "::"));
    assert_true(address_allowed(al, "127.0.0.1"));
}

static void addresses_v6(void **state)
{
    const struct allow_list *al = *state;

    assert_true(address_allowed(al, "::1"));
    assert_true(address_allowed(al, "0:0:0:0:0:0:0:1"));
    assert_false(address_allowed(al, "::2"));
    assert_false(address_allowed(al, "fe80::1"));
    assert_false(address_allowed(al, "::"));
    assert_false(address_allowed(al, "10.0.0.1"));

    /* The family is checked, not only the bytes where an address would be:
     * this AF_UNIX address holds ::1 at the offset of sin6_addr. */
    unsigned char raw[sizeof(struct sockaddr_storage)];
    struct sockaddr_un sun;
    memset(raw, 0, sizeof(raw));
    memcpy(raw + offsetof(struct sockaddr_in6, sin6_addr), &in6addr_loopback,
           sizeof(in6addr_loopback));
    memcpy(&sun, raw, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(allow_address(al, (const struct sockaddr *)&sun));
}

static void addresses_unique(void **state)
{
    char err[ERR_LEN];
    struct allow_list *al = *state;
    static const char *const hosts[] = {
        "127.0.0.1", "127.0.0.1:80", "localhost",  "[::ffff:127.0.0.1]",
        "10.0.0.1",  "10.0.0.1:1",   "LOCALHOST.",
    };

    assert_int_equal(init_with(al, "127.0.0.1", hosts, 7, NULL, err), 0);
    assert_int_equal(al->n_entries, 9);
    assert_true(al->n_addrs >= 2);
    for (size_t i = 0; i < al->n_addrs; i++) {
        for (size_t j = i + 1; j < al->n_addrs; j++) {
            if (memcmp(&al->addrs[i], &al->addrs[j], sizeof(al->addrs[i])) ==
                    0 &&
                al->addr_ports[i] == al->addr_ports[j])
                fail_msg("addresses %zu and %zu are the same", i, j);
        }
    }
    assert_true(address_allowed_on(al, "10.0.0.1", 1));
    assert_true(address_allowed_on(al, "10.0.0.1", 4444)); /* "10.0.0.1" */
    assert_true(address_allowed_on(al, "127.0.0.1", 80));
}

/* ---- allow_init errors ---- */

static void bad_entries_refused(void **state)
{
    struct allow_list *al = *state;
    static const struct {
        const char *entry;
        const char *fragment;
    } cases[] = {
        {"a b", "'a b'"},
        {"[::1", "'[::1'"},
        {"host:0", "'host:0'"},
        {"host:", "'host:'"},
        {"host:65536", "'host:65536'"},
        {"host:80x", "'host:80x'"},
        {"host:-80", "'host:-80'"},
        {"host:+80", "'host:+80'"},
        {"", "''"},
        {"::1", "'::1'"},
        {"[::1]x", "'[::1]x'"},
        {"[::1]:", "'[::1]:'"},
        {"[fe80::1%eth0]", "'[fe80::1%eth0]'"},
        {"[not-v6]", "'[not-v6]'"},
        {"a_b", "'a_b'"},
        {"user@host", "'user@host'"},
        {"http://host", "'http://host'"},
        {"host/path", "'host/path'"},
        {".", "'.'"},
        {"0.0.0.0", "unspecified"},
        {"0.0.0.0:80", "unspecified"},
        {"[::]", "unspecified"},
        {"[::ffff:0.0.0.0]", "unspecified"},
        {"\x1b[31mred", "'\\x1b[31mred'"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[ERR_LEN] = "";
        const char *hosts[] = {"10.0.0.1", cases[i].entry};
        int rc = init_with(al, "127.0.0.1", hosts, 2, NULL, err);
        if (rc != -EINVAL || !strstr(err, cases[i].fragment) ||
            !all_printable(err))
            fail_msg("entry '%s': rc %d, message '%s'", cases[i].entry, rc,
                     err);
        /* A failed list allows nothing, not even the service itself. */
        assert_int_equal(al->n_entries, 0);
        assert_int_equal(al->n_addrs, 0);
        expect_url(al, "http://127.0.0.1:18080/", -EACCES, NULL);
        assert_false(address_allowed(al, "127.0.0.1"));
    }
}

static void bad_self_refused(void **state)
{
    struct allow_list *al = *state;
    char err[ERR_LEN];
    static const char *const selves[] = {"localhost", "", "1.2.3.4.5",
                                         "::1::", "127.0.0.1:80"};

    for (size_t i = 0; i < sizeof(selves) / sizeof(selves[0]); i++) {
        if (init_with(al, selves[i], NULL, 0, NULL, err) != -EINVAL)
            fail_msg("self '%s' accepted", selves[i]);
        assert_non_null(strstr(err, "bind address"));
    }
    assert_int_equal(
        allow_init(al, NULL, SELF_PORT, NULL, 0, NULL, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        allow_init(al, "127.0.0.1", 0, NULL, 0, NULL, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "port 0"));
    assert_int_equal(
        allow_init(al, "127.0.0.1", 65536, NULL, 0, NULL, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        allow_init(al, "127.0.0.1", -1, NULL, 0, NULL, err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        allow_init(al, "127.0.0.1", SELF_PORT, NULL, -1, NULL, err, 0),
        -EINVAL);
    assert_int_equal(
        allow_init(al, "127.0.0.1", SELF_PORT, NULL, 0, NULL, NULL, 0), 0);
    assert_int_equal(al->n_entries, 2);
}

static void entry_count_capped(void **state)
{
    struct allow_list *al = *state;
    char err[ERR_LEN];
    char names[ALLOW_ENTRIES_MAX - 1][INET_ADDRSTRLEN + 8];
    const char *hosts[ALLOW_ENTRIES_MAX - 1];
    int unresolved = -1;

    for (int i = 0; i < ALLOW_ENTRIES_MAX - 1; i++) {
        snprintf(names[i], sizeof(names[i]), "10.1.0.%d", i + 1);
        hosts[i] = names[i];
    }
    assert_int_equal(init_with(al, "127.0.0.1", hosts, ALLOW_ENTRIES_MAX - 2,
                               &unresolved, err),
                     0);
    assert_int_equal(unresolved, 0);
    assert_int_equal(al->n_entries, ALLOW_ENTRIES_MAX);
    assert_true(address_allowed(al, "10.1.0.38"));
    expect_url(al, "http://10.1.0.38:1/", 0, NULL);

    assert_int_equal(
        init_with(al, "127.0.0.1", hosts, ALLOW_ENTRIES_MAX - 1, NULL, err),
        -EINVAL);
    assert_non_null(strstr(err, "at most 38"));
    assert_int_equal(al->n_entries, 0);
}

int main(void)
{
#define V4(test)                                                               \
    cmocka_unit_test_setup_teardown(test, setup_self_v4, teardown_list)
#define V6(test)                                                               \
    cmocka_unit_test_setup_teardown(test, setup_self_v6, teardown_list)
#define EMPTY(test)                                                            \
    cmocka_unit_test_setup_teardown(test, setup_empty, teardown_list)
    const struct CMUnitTest tests[] = {
        V4(self_urls_allowed),
        V4(self_other_ports_refused),
        EMPTY(self_addresses_exact),
        V4(other_schemes_refused),
        V4(scheme_case_ignored),
        V4(missing_scheme_refused),
        V4(userinfo_refused),
        V4(fragment_and_query_tricks_refused),
        V4(percent_encoded_host_decoded),
        V6(ipv6_self),
        EMPTY(ipv6_zone_refused),
        EMPTY(wildcard_binds_mean_loopback),
        V4(ipv4_mapped_consistent),
        V4(host_case_ignored),
        V4(one_trailing_dot_ignored),
        EMPTY(allow_host_literals_and_ports),
        V4(allow_host_names),
        V4(malformed_urls_refused),
        V4(long_urls_refused),
        V4(messages_printable_and_capped),
        V4(addresses_v4),
        V4(addresses_never_unspecified),
        V6(addresses_v6),
        EMPTY(addresses_unique),
        EMPTY(bad_entries_refused),
        EMPTY(bad_self_refused),
        EMPTY(entry_count_capped),
    };
#undef V4
#undef V6
#undef EMPTY
    return cmocka_run_group_tests(tests, NULL, NULL);
}
