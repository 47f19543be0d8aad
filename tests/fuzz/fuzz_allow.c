/*
 * fuzz_allow: libFuzzer target for the fetch allow-list (server/allow.c):
 * allow_check_url(), the check of a /run/fetch URL's text, and
 * allow_address(), the connect-time check of every address libcurl is
 * about to connect to.
 *
 * The list is built once, touching no network: allow_init() for a service
 * on 127.0.0.1:8080 with the entries 127.0.0.2:9000, [::1], 198.51.100.7
 * and [2001:db8::5]:8443 (IP literals only: the built-in "localhost" entry
 * adds no address, whatever it resolves to), then the names example.test
 * (any port) and
 * api.example.test:443 appended as allow_init() stores names, so that no
 * DNS query is ever made. The fuzzer keeps its own copy of that policy,
 * written here from allow.h, as the oracle.
 *
 * An input whose first byte is not NUL is a URL (up to the first NUL, as
 * the query parser hands it over). Invariants (abort() when violated):
 * - the result is 0 or a documented error; the same with err NULL or a
 *   one-byte err; err is NUL-terminated printable ASCII, "" on success;
 * - an accepted URL parses (libcurl's URL API, as the fetch reads it) to
 *   scheme http or https, no user, password, options or zone ID, and a
 *   host and port that the oracle's policy allows, after canonicalizing
 *   the host here (lower case, one trailing dot dropped, IP literals
 *   through inet_pton/inet_ntop, IPv4-mapped IPv6 as IPv4);
 * - the two checks agree on IP literals: a URL naming an IP literal is
 *   accepted exactly when allow_address() accepts that address and port
 *   (so no accepted URL is refused at connect time, and no address the
 *   connect check allows is refused by the text check for want of a
 *   canonical form).
 *
 * An input starting with NUL is a socket address for allow_address():
 * byte 1 picks the family (AF_INET, AF_INET6, or anything else), then 16
 * address bytes, 2 port bytes and 4 scope bytes (missing bytes are zero).
 * Invariant: the answer is the oracle's (the address, IPv4-mapped IPv6 as
 * IPv4, with its port is in the set; never 0.0.0.0 or ::).
 *
 * Run it through scripts/fuzz.sh; seeds are in tests/fuzz/corpus/allow/.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "../../server/allow.h"

#define SELF_PORT  8080
#define ERR_LEN    256
#define ORACLE_MAX 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The oracle's policy: (canonical host, port or 0 for any). */
struct allowed {
    const char *host;
    int port;
};

static const struct allowed policy[] = {
    {"127.0.0.1", SELF_PORT}, {"localhost", SELF_PORT},
    {"127.0.0.2", 9000},      {"[::1]", 0},
    {"198.51.100.7", 0},      {"[2001:db8::5]", 8443},
    {"example.test", 0},      {"api.example.test", 443},
};

/* The oracle's addresses: the literals above, nothing more. */
struct allowed_addr {
    int family;
    uint8_t addr[16];
    int port;
};

static struct allow_list *al;
static struct allowed_addr addrs[ORACLE_MAX];
static size_t n_addrs;

static void check(bool ok, const char *what, const char *text);
static void check_message(const char *err, int rc, const char *url);
static void fuzz_url(const char *url);
static void fuzz_address(const uint8_t *data, size_t size);
static bool canonical(const char *raw, char *out, size_t out_len);
static bool policy_allows(const char *host, int port);
static bool literal_address(const char *host, int *family, uint8_t addr[16]);
static bool oracle_address(int family, const uint8_t addr[16], int port);
static bool connect_check(int family, const uint8_t addr[16], int port);
static void add_oracle_addr(int family, const void *addr, int port);
static char *curl_part(CURLU *u, CURLUPart part, unsigned flags);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char hosts[4][CONFIG_HOST_MAX] = {
        "127.0.0.2:9000", "[::1]", "198.51.100.7", "[2001:db8::5]:8443"};
    static const char *const names[] = {"example.test", "api.example.test"};
    static const int name_ports[] = {0, 443};
    char err[ERR_LEN];
    (void)argc;
    (void)argv;

    al = calloc(1, sizeof(*al));
    if (!al || allow_init(al, "127.0.0.1", SELF_PORT, hosts, 4, NULL, err,
                          sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_allow: allow_init: %s\n", err);
        abort();
    }
    for (size_t i = 0; i < 2; i++) {
        snprintf(al->entries[al->n_entries].host, CONFIG_HOST_MAX, "%s",
                 names[i]);
        al->entries[al->n_entries].port = name_ports[i];
        al->n_entries++;
    }

    struct in_addr v4;
    struct in6_addr v6;
    inet_pton(AF_INET, "127.0.0.1", &v4);
    add_oracle_addr(AF_INET, &v4, SELF_PORT);
    inet_pton(AF_INET, "127.0.0.2", &v4);
    add_oracle_addr(AF_INET, &v4, 9000);
    inet_pton(AF_INET6, "::1", &v6);
    add_oracle_addr(AF_INET6, &v6, 0);
    inet_pton(AF_INET, "198.51.100.7", &v4);
    add_oracle_addr(AF_INET, &v4, 0);
    inet_pton(AF_INET6, "2001:db8::5", &v6);
    add_oracle_addr(AF_INET6, &v6, 8443);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] == 0) {
        fuzz_address(data + 1, size - 1);
        return 0;
    }
    size_t len = strnlen((const char *)data, size);
    char *url = malloc(len + 1);
    if (!url)
        return 0;
    memcpy(url, data, len);
    url[len] = '\0';
    fuzz_url(url);
    free(url);
    return 0;
}

static void fuzz_url(const char *url)
{
    char *err = malloc(ERR_LEN);
    char tiny[1];
    if (!err)
        return;

    int rc = allow_check_url(al, url, err, ERR_LEN);
    check(rc == 0 || rc == -EINVAL || rc == -EPROTONOSUPPORT || rc == -EACCES ||
              rc == -ENOMEM,
          "result is 0 or a documented error", url);
    check_message(err, rc, url);
    if (rc == -ENOMEM)
        goto out;
    check(allow_check_url(al, url, NULL, 0) == rc, "same answer, no err", url);
    tiny[0] = 'x';
    check(allow_check_url(al, url, tiny, sizeof(tiny)) == rc && tiny[0] == '\0',
          "same answer, one-byte err", url);

    /* Read the URL as the fetch will, and canonicalize the host here. */
    CURLU *u = curl_url();
    if (!u)
        goto out;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) !=
        CURLUE_OK) {
        check(rc != 0, "a URL libcurl cannot parse is refused", url);
        goto out_url;
    }
    char *scheme = curl_part(u, CURLUPART_SCHEME, 0);
    char *raw_host = curl_part(u, CURLUPART_HOST, 0);
    char *port_text = curl_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
    char *user = curl_part(u, CURLUPART_USER, 0);
    char *password = curl_part(u, CURLUPART_PASSWORD, 0);
    char *options = curl_part(u, CURLUPART_OPTIONS, 0);
    char *zone = curl_part(u, CURLUPART_ZONEID, 0);
    char host[ALLOW_URL_MAX + 1];
    bool have_host = raw_host && canonical(raw_host, host, sizeof(host));
    int port = port_text ? atoi(port_text) : -1;

    if (rc == 0) {
        check(scheme && (strcasecmp(scheme, "http") == 0 ||
                         strcasecmp(scheme, "https") == 0),
              "an accepted URL is http or https", url);
        check(!user && !password && !options,
              "an accepted URL carries no user info", url);
        check(!zone, "an accepted URL has no zone ID", url);
        check(have_host && port >= 1 && port <= 65535 &&
                  policy_allows(host, port),
              "an accepted URL's host and port are in the policy", url);
    }

    /* The text check and the connect check agree on IP literals. */
    int family;
    uint8_t addr[16];
    bool web = scheme && (strcasecmp(scheme, "http") == 0 ||
                          strcasecmp(scheme, "https") == 0);
    if (have_host && web && !user && !password && !options && !zone &&
        port >= 1 && port <= 65535 && literal_address(host, &family, addr)) {
        bool by_address = connect_check(family, addr, port);
        if (rc == 0)
            check(by_address, "an accepted URL's address passes at connect",
                  url);
        else if (rc == -EACCES)
            check(!by_address,
                  "an address allowed at connect is refused as a URL", url);
    }

    curl_free(scheme);
    curl_free(raw_host);
    curl_free(port_text);
    curl_free(user);
    curl_free(password);
    curl_free(options);
    curl_free(zone);
out_url:
    curl_url_cleanup(u);
out:
    free(err);
}

static void fuzz_address(const uint8_t *data, size_t size)
{
    uint8_t raw[23] = {0};
    memcpy(raw, data, size < sizeof(raw) ? size : sizeof(raw));
    int port = raw[17] << 8 | raw[18];
    uint32_t scope;
    memcpy(&scope, raw + 19, 4);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int family = raw[0] % 3 == 0   ? AF_INET
                 : raw[0] % 3 == 1 ? AF_INET6
                                   : raw[0];
    bool want;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, raw + 1, 4);
        want = oracle_address(AF_INET, raw + 1, port);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_scope_id = scope;
        memcpy(&sin6->sin6_addr, raw + 1, 16);
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
            want = oracle_address(AF_INET, raw + 13, port);
        else
            want = oracle_address(AF_INET6, raw + 1, port);
    } else {
        ss.ss_family = (sa_family_t)family;
        memcpy((uint8_t *)&ss + 2, raw + 1, sizeof(raw) - 1);
        want = false;
    }
    bool got = allow_address(al, (const struct sockaddr *)&ss);
    if (got != want) {
        char hex[2 * sizeof(raw) + 1];
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        check(false, "allow_address() disagrees with the oracle", hex);
    }
    check(!allow_address(al, NULL), "NULL is refused", "(null)");
}

static void check(bool ok, const char *what, const char *text)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_allow: invariant violated: %s (input '%.300s')\n",
            what, text);
    abort();
}

static void check_message(const char *err, int rc, const char *url)
{
    size_t len = strnlen(err, ERR_LEN);
    check(len < ERR_LEN, "err is NUL-terminated", url);
    check((rc == 0) == (len == 0), "err is empty exactly on success", url);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)err[i];
        check(c >= 0x20 && c < 0x7f, "err is printable ASCII", url);
    }
}

/* The canonical form of allow.h, computed here. False when malformed. */
static bool canonical(const char *raw, char *out, size_t out_len)
{
    size_t len = strlen(raw);
    if (len == 0 || len >= out_len)
        return false;
    if (raw[0] == '[') {
        char literal[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (raw[len - 1] != ']' || len - 2 >= sizeof(literal))
            return false;
        memcpy(literal, raw + 1, len - 2);
        literal[len - 2] = '\0';
        if (inet_pton(AF_INET6, literal, &a6) != 1)
            return false;
        char text[INET6_ADDRSTRLEN];
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof(text));
            snprintf(out, out_len, "%s", text);
        } else {
            inet_ntop(AF_INET6, &a6, text, sizeof(text));
            snprintf(out, out_len, "[%s]", text);
        }
        return true;
    }
    if (raw[len - 1] == '.')
        len--;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)raw[i]);
    out[len] = '\0';
    return true;
}

static bool policy_allows(const char *host, int port)
{
    for (size_t i = 0; i < sizeof(policy) / sizeof(policy[0]); i++) {
        if (strcmp(policy[i].host, host) == 0 &&
            (policy[i].port == 0 || policy[i].port == port))
            return true;
    }
    return false;
}

/* A canonical host that is an IP literal: its family and bytes. */
static bool literal_address(const char *host, int *family, uint8_t addr[16])
{
    char literal[INET6_ADDRSTRLEN + 1];
    size_t len = strlen(host);

    memset(addr, 0, 16);
    if (inet_pton(AF_INET, host, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (len < 3 || host[0] != '[' || len - 2 >= sizeof(literal))
        return false;
    memcpy(literal, host + 1, len - 2);
    literal[len - 2] = '\0';
    if (inet_pton(AF_INET6, literal, addr) != 1)
        return false;
    *family = AF_INET6;
    return true;
}

static bool oracle_address(int family, const uint8_t addr[16], int port)
{
    for (size_t i = 0; i < n_addrs; i++) {
        if (addrs[i].family == family &&
            memcmp(addrs[i].addr, addr, family == AF_INET ? 4 : 16) == 0 &&
            (addrs[i].port == 0 || addrs[i].port == port))
            return true;
    }
    return false;
}

/* allow_address() on an address given as bytes. */
static bool connect_check(int family, const uint8_t addr[16], int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        memcpy(&sin6->sin6_addr, addr, 16);
    }
    return allow_address(al, (const struct sockaddr *)&ss);
}

static void add_oracle_addr(int family, const void *addr, int port)
{
    if (n_addrs >= ORACLE_MAX)
        return;
    struct allowed_addr *a = &addrs[n_addrs++];
    a->family = family;
    memset(a->addr, 0, sizeof(a->addr));
    memcpy(a->addr, addr, family == AF_INET ? 4 : 16);
    a->port = port;
    /* Store IPv4-mapped IPv6 as IPv4, as allow.h says connections are
     * compared. */
    if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
        a->family = AF_INET;
        memmove(a->addr, a->addr + 12, 4);
        memset(a->addr + 4, 0, 12);
    }
}

static char *curl_part(CURLU *u, CURLUPart part, unsigned flags)
{
    char *text = NULL;
    if (curl_url_get(u, part, &text, flags) != CURLUE_OK)
        return NULL;
    return text;
}
