/*
 * allow: see allow.h.
 *
 * URLs are parsed with libcurl's URL API, the parser the fetch itself uses,
 * so the check and the transfer agree on which host a URL names (the
 * "http://127.0.0.1@evil/" and "http://evil#@127.0.0.1/" tricks work by
 * making two parsers disagree). --allow-host entries go through the same
 * parser after a strict syntax check, so an entry and a URL that name the
 * same host ("127.1", "127.0.0.1") meet in one canonical form.
 *
 * Addresses are stored normalized (port and scope zeroed, IPv4-mapped IPv6
 * as AF_INET) so that allow_address() is a family and byte comparison. The
 * unspecified addresses are never stored: connecting to 0.0.0.0 or :: on
 * Linux reaches the local host.
 *
 * User text is echoed in messages only through uri_quote(), which keeps
 * printable ASCII and caps the length.
 */
#include "allow.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "uri.h"

#define QUOTE_MAX    72  /* bytes of user text echoed in a message */
#define DNS_NAME_MAX 253 /* a DNS name, trailing dot excluded */
#define SCHEME_MAX   16

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int add_entry(struct allow_list *al, CURLU *u, const char *text,
                     char *err, size_t err_len);
static int parse_entry(const char *text, char *host, size_t host_len,
                       int *port);
static int url_part(CURLU *u, CURLUPart part, unsigned flags, char *out,
                    size_t out_len);
static int canonical_host(const char *host, char *out, size_t out_len);
static int port_number(const char *text, int *port);
static bool text_scheme(const char *url, char *out, size_t out_len);
static bool web_scheme(const char *scheme);
static bool entry_allows(const struct allow_list *al, const char *host,
                         int port);
static bool parse_literal(const char *host, struct sockaddr_storage *ss);
static bool normalize(const struct sockaddr *sa, struct sockaddr_storage *out);
static bool unspecified(const struct sockaddr_storage *ss);
static bool loopback(const struct sockaddr_storage *ss);
static bool same_address(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b);
static void add_address(struct allow_list *al,
                        const struct sockaddr_storage *ss, int port);
static int resolve_name(struct allow_list *al, const char *name, int port);
static void address_host(const struct sockaddr_storage *ss, char *out,
                         size_t out_len);

int allow_init(struct allow_list *al, const char *self_host, int self_port,
               const char hosts[][CONFIG_HOST_MAX], int n_hosts,
               int *unresolved, char *err, size_t err_len)
{
    char quoted[QUOTE_MAX];
    struct sockaddr_storage self;
    CURLU *u = NULL;
    size_t n_self;
    int n_unresolved = 0;
    int rc;

    memset(al, 0, sizeof(*al));
    fail(err, err_len, 0, "%s", "");
    if (unresolved)
        *unresolved = 0;

    if (!self_host || !parse_literal(self_host, &self)) {
        rc =
            fail(err, err_len, -EINVAL,
                 "bind address '%s' is not an IPv4 or IPv6 address",
                 uri_quote(quoted, sizeof(quoted), self_host ? self_host : ""));
        goto out;
    }
    if (self_port < 1 || self_port > 65535) {
        rc = fail(err, err_len, -EINVAL, "service port %d is not in [1, 65535]",
                  self_port);
        goto out;
    }
    if (n_hosts < 0 || n_hosts > ALLOW_ENTRIES_MAX - 2 ||
        (n_hosts > 0 && !hosts)) {
        rc = fail(err, err_len, -EINVAL,
                  "%d allow-host entries: at most %d are allowed", n_hosts,
                  ALLOW_ENTRIES_MAX - 2);
        goto out;
    }

    /* The service itself: a wildcard bind is reached through loopback. */
    if (unspecified(&self))
        parse_literal(self.ss_family == AF_INET ? "127.0.0.1" : "::1", &self);
    address_host(&self, al->entries[0].host, sizeof(al->entries[0].host));
    al->entries[0].port = self_port;
    al->n_entries = 1;
    /* "localhost" names the service only when it listens on loopback, and
     * it adds no address of its own: what the name resolves to (::1 as well
     * as 127.0.0.1 with Debian's stock /etc/hosts) may be another program's
     * socket on the same port. The connect-time check lets libcurl reach
     * the self address only. */
    if (loopback(&self)) {
        strcpy(al->entries[1].host, "localhost");
        al->entries[1].port = self_port;
        al->n_entries = 2;
    }
    n_self = al->n_entries;
    add_address(al, &self, self_port);

    u = curl_url();
    if (!u) {
        rc = fail(err, err_len, -ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n_hosts; i++) {
        rc = add_entry(al, u, hosts[i], err, err_len);
        if (rc < 0)
            goto out;
    }

    for (size_t i = n_self; i < al->n_entries; i++) {
        const char *host = al->entries[i].host;
        struct sockaddr_storage ss;
        bool seen = false;

        if (parse_literal(host, &ss)) {
            add_address(al, &ss, al->entries[i].port);
            continue;
        }
        for (size_t j = n_self; j < i && !seen; j++)
            seen = strcmp(al->entries[j].host, host) == 0;
        /* Each entry adds its own (address, port) pairs; a name given
         * twice counts once when it does not resolve. */
        if (resolve_name(al, host, al->entries[i].port) < 0 && !seen)
            n_unresolved++;
    }
    if (unresolved)
        *unresolved = n_unresolved;
    rc = 0;

out:
    curl_url_cleanup(u);
    if (rc < 0) {
        al->n_entries = 0;
        al->n_addrs = 0;
    }
    return rc;
}

int allow_check_url(const struct allow_list *al, const char *url, char *err,
                    size_t err_len)
{
    char quoted[QUOTE_MAX];
    char scheme[SCHEME_MAX];
    char raw_host[ALLOW_URL_MAX + 1];
    char host[CONFIG_HOST_MAX];
    char port_text[8];
    char unused[2];
    CURLU *u = NULL;
    CURLUcode uc;
    int port;
    int rc;

    fail(err, err_len, 0, "%s", "");
    if (!url || url[0] == '\0') {
        rc = fail(err, err_len, -EINVAL, "empty URL");
        goto out;
    }
    uri_quote(quoted, sizeof(quoted), url);
    if (strnlen(url, ALLOW_URL_MAX + 1) > ALLOW_URL_MAX) {
        rc = fail(err, err_len, -EINVAL,
                  "URL '%s' is too long (at most %d bytes)", quoted,
                  ALLOW_URL_MAX);
        goto out;
    }

    u = curl_url();
    if (!u) {
        rc = -ENOMEM;
        goto out;
    }
    uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        rc = -ENOMEM;
        goto out;
    }
    if (uc != CURLUE_OK) {
        /* No host to name: the URL itself is quoted. */
        if (!text_scheme(url, scheme, sizeof(scheme)))
            rc = fail(err, err_len, -EINVAL,
                      "URL '%s' has no scheme (only http:// and https:// "
                      "URLs are fetched)",
                      quoted);
        else if (!web_scheme(scheme))
            rc = fail(err, err_len, -EPROTONOSUPPORT,
                      "URL '%s': only http and https are fetched", quoted);
        else
            rc = fail(err, err_len, -EINVAL, "malformed URL '%s': %s", quoted,
                      curl_url_strerror(uc));
        goto out;
    }

    rc = url_part(u, CURLUPART_HOST, 0, raw_host, sizeof(raw_host));
    if (rc == -ENOMEM)
        goto out;
    if (rc < 0)
        raw_host[0] = '\0';
    else
        uri_quote(quoted, sizeof(quoted), raw_host);

    rc = url_part(u, CURLUPART_SCHEME, 0, scheme, sizeof(scheme));
    if (rc == -ENOMEM)
        goto out;
    if (rc < 0 && !text_scheme(url, scheme, sizeof(scheme)))
        scheme[0] = '\0';
    if (rc < 0 || !web_scheme(scheme)) {
        char quoted_scheme[QUOTE_MAX];
        uri_quote(quoted_scheme, sizeof(quoted_scheme), scheme);
        if (raw_host[0])
            rc = fail(err, err_len, -EPROTONOSUPPORT,
                      "scheme '%s' refused for host '%s': only http and "
                      "https are fetched",
                      quoted_scheme, quoted);
        else
            rc = fail(err, err_len, -EPROTONOSUPPORT,
                      "URL '%s': only http and https are fetched", quoted);
        goto out;
    }
    if (!raw_host[0]) {
        rc = fail(err, err_len, -EINVAL, "URL '%s' has no host", quoted);
        goto out;
    }

    /* Any user info, even "@" alone: no fetch needs it. */
    static const CURLUPart login_parts[] = {CURLUPART_USER, CURLUPART_PASSWORD,
                                            CURLUPART_OPTIONS};
    for (size_t i = 0; i < sizeof(login_parts) / sizeof(login_parts[0]); i++) {
        rc = url_part(u, login_parts[i], 0, unused, sizeof(unused));
        if (rc == -ENOMEM)
            goto out;
        if (rc != -ENOENT) {
            rc = fail(err, err_len, -EINVAL,
                      "URL to host '%s' carries user info "
                      "(user:password@): refused",
                      quoted);
            goto out;
        }
    }

    rc = url_part(u, CURLUPART_ZONEID, 0, unused, sizeof(unused));
    if (rc == -ENOMEM)
        goto out;
    if (rc != -ENOENT) {
        rc = fail(err, err_len, -EACCES,
                  "host '%s' has an IPv6 zone ID: not an allowed fetch "
                  "target",
                  quoted);
        goto out;
    }

    rc = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT, port_text,
                  sizeof(port_text));
    if (rc == -ENOMEM)
        goto out;
    if (rc < 0 || port_number(port_text, &port) < 0) {
        rc = fail(err, err_len, -EINVAL,
                  "URL to host '%s' has no valid port (1-65535)", quoted);
        goto out;
    }

    if (canonical_host(raw_host, host, sizeof(host)) < 0) {
        rc = fail(err, err_len, -EINVAL, "malformed host '%s' in URL", quoted);
        goto out;
    }
    if (!entry_allows(al, host, port)) {
        rc = fail(err, err_len, -EACCES,
                  "host '%s' port %d is not an allowed fetch target (see "
                  "--allow-host)",
                  quoted, port);
        goto out;
    }
    rc = 0;

out:
    curl_url_cleanup(u);
    if (rc == -ENOMEM)
        fail(err, err_len, rc, "out of memory");
    return rc;
}

bool allow_address(const struct allow_list *al, const struct sockaddr *sa)
{
    struct sockaddr_storage ss;

    if (!sa || !normalize(sa, &ss) || unspecified(&ss))
        return false;
    int port = ntohs(sa->sa_family == AF_INET
                         ? ((const struct sockaddr_in *)sa)->sin_port
                         : ((const struct sockaddr_in6 *)sa)->sin6_port);
    for (size_t i = 0; i < al->n_addrs; i++) {
        if (same_address(&al->addrs[i], &ss) &&
            (al->addr_ports[i] == 0 || al->addr_ports[i] == port))
            return true;
    }
    return false;
}

/* Writes a message into err when there is room; returns rc. */
static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return rc;
}

/* Appends one HOST[:PORT] entry in canonical form; u is a scratch handle. */
static int add_entry(struct allow_list *al, CURLU *u, const char *text,
                     char *err, size_t err_len)
{
    char quoted[QUOTE_MAX];
    char host[CONFIG_HOST_MAX];
    char url[CONFIG_HOST_MAX + 16];
    char raw_host[CONFIG_HOST_MAX + 16];
    struct allow_entry *e = &al->entries[al->n_entries];
    struct sockaddr_storage ss;
    CURLUcode uc;
    int rc;

    uri_quote(quoted, sizeof(quoted), text);
    if (strnlen(text, CONFIG_HOST_MAX) >= CONFIG_HOST_MAX ||
        parse_entry(text, host, sizeof(host), &e->port) < 0)
        goto out_malformed;

    /* The URL parser's reading of the host, as for a fetched URL. */
    snprintf(url, sizeof(url), "http://%s/", host);
    uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        return fail(err, err_len, -ENOMEM, "out of memory");
    if (uc != CURLUE_OK)
        goto out_malformed;
    rc = url_part(u, CURLUPART_HOST, 0, raw_host, sizeof(raw_host));
    if (rc == -ENOMEM)
        return fail(err, err_len, -ENOMEM, "out of memory");
    if (rc < 0 || canonical_host(raw_host, e->host, sizeof(e->host)) < 0)
        goto out_malformed;

    if (parse_literal(e->host, &ss) && unspecified(&ss))
        return fail(err, err_len, -EINVAL,
                    "'%s' is the unspecified address, not a host", quoted);
    al->n_entries++;
    return 0;

out_malformed:
    return fail(err, err_len, -EINVAL,
                "'%s' is not HOST or HOST:PORT (a name, an IPv4 address or "
                "[IPv6]; port 1-65535)",
                quoted);
}

/*
 * Splits "HOST[:PORT]" (see allow_init()) into host and *port (0 when
 * absent). Returns 0 or -EINVAL.
 */
static int parse_entry(const char *text, char *host, size_t host_len, int *port)
{
    const char *port_text = NULL;
    size_t len;

    *port = 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        char literal[INET6_ADDRSTRLEN];
        struct in6_addr addr;

        if (!close || (size_t)(close - text - 1) >= sizeof(literal))
            return -EINVAL;
        memcpy(literal, text + 1, (size_t)(close - text - 1));
        literal[close - text - 1] = '\0';
        if (inet_pton(AF_INET6, literal, &addr) != 1)
            return -EINVAL;
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != '\0')
            return -EINVAL;
        len = (size_t)(close + 1 - text);
    } else {
        const char *colon = strchr(text, ':');
        len = colon ? (size_t)(colon - text) : strlen(text);
        if (len == 0 || len > DNS_NAME_MAX + 1)
            return -EINVAL;
        for (size_t i = 0; i < len; i++) {
            char c = text[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '.')
                return -EINVAL;
        }
        if (colon)
            port_text = colon + 1;
    }
    if (len >= host_len)
        return -EINVAL;
    memcpy(host, text, len);
    host[len] = '\0';
    if (port_text && port_number(port_text, port) < 0)
        return -EINVAL;
    return 0;
}

/*
 * Copies one part of u into out. Returns 0; -ENOENT when the URL has no
 * such part; -ENAMETOOLONG when out is too small; -ENOMEM.
 */
static int url_part(CURLU *u, CURLUPart part, unsigned flags, char *out,
                    size_t out_len)
{
    char *text = NULL;
    CURLUcode uc = curl_url_get(u, part, &text, flags);
    int rc = 0;

    if (uc == CURLUE_OUT_OF_MEMORY)
        return -ENOMEM;
    if (uc != CURLUE_OK)
        return -ENOENT;
    if (strlen(text) >= out_len) {
        rc = -ENAMETOOLONG;
    } else {
        memcpy(out, text, strlen(text) + 1);
    }
    curl_free(text);
    return rc;
}

/*
 * Writes the canonical form of a host as the URL parser returns it (see
 * struct allow_entry). Returns 0, or -EINVAL for an empty name, a bad IPv6
 * literal or a host longer than out_len - 1.
 */
static int canonical_host(const char *host, char *out, size_t out_len)
{
    size_t len = strlen(host);

    if (host[0] == '[') {
        char literal[INET6_ADDRSTRLEN];
        struct sockaddr_storage ss;

        if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof(literal))
            return -EINVAL;
        memcpy(literal, host + 1, len - 2);
        literal[len - 2] = '\0';
        if (!parse_literal(literal, &ss))
            return -EINVAL;
        address_host(&ss, out, out_len);
        return 0;
    }
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len >= out_len)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)host[i]);
    out[len] = '\0';
    return 0;
}

/* Parses a decimal port in [1, 65535]. Returns 0 or -EINVAL. */
static int port_number(const char *text, int *port)
{
    long v = 0;
    size_t n = 0;

    for (; isdigit((unsigned char)text[n]); n++) {
        if (n >= 5)
            return -EINVAL;
        v = v * 10 + (text[n] - '0');
    }
    if (n == 0 || text[n] != '\0' || v < 1 || v > 65535)
        return -EINVAL;
    *port = (int)v;
    return 0;
}

/*
 * Copies the scheme of url (RFC 3986: a letter, then letters, digits, '+',
 * '-' or '.', before ':'), cut to out_len - 1 bytes. False when it has
 * none.
 */
static bool text_scheme(const char *url, char *out, size_t out_len)
{
    size_t n = 0;

    if (!isalpha((unsigned char)url[0]))
        return false;
    while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' ||
           url[n] == '.')
        n++;
    if (url[n] != ':')
        return false;
    if (n >= out_len)
        n = out_len - 1;
    memcpy(out, url, n);
    out[n] = '\0';
    return true;
}

static bool web_scheme(const char *scheme)
{
    return strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0;
}

static bool entry_allows(const struct allow_list *al, const char *host,
                         int port)
{
    for (size_t i = 0; i < al->n_entries; i++) {
        const struct allow_entry *e = &al->entries[i];
        if (strcmp(e->host, host) == 0 && (e->port == 0 || e->port == port))
            return true;
    }
    return false;
}

/*
 * Parses an IPv4 literal or a bare IPv6 literal (no brackets), or a
 * canonical host ("[::1]"), into a normalized address. False otherwise.
 */
static bool parse_literal(const char *host, struct sockaddr_storage *ss)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    char literal[INET6_ADDRSTRLEN];
    size_t len = strlen(host);

    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        return normalize((const struct sockaddr *)&sin, ss);
    }
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' &&
        len - 2 < sizeof(literal)) {
        memcpy(literal, host + 1, len - 2);
        literal[len - 2] = '\0';
        host = literal;
    }
    if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        return normalize((const struct sockaddr *)&sin6, ss);
    }
    return false;
}

/*
 * Copies the address of sa (AF_INET or AF_INET6) into a zeroed *out, an
 * IPv4-mapped IPv6 address as AF_INET. False for any other family.
 */
static bool normalize(const struct sockaddr *sa, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in in;
        struct sockaddr_in *o = (struct sockaddr_in *)out;
        memcpy(&in, sa, sizeof(in));
        o->sin_family = AF_INET;
        o->sin_addr = in.sin_addr;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof(in6));
        if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
            struct sockaddr_in *o = (struct sockaddr_in *)out;
            o->sin_family = AF_INET;
            memcpy(&o->sin_addr, &in6.sin6_addr.s6_addr[12], 4);
        } else {
            struct sockaddr_in6 *o = (struct sockaddr_in6 *)out;
            o->sin6_family = AF_INET6;
            o->sin6_addr = in6.sin6_addr;
        }
        return true;
    }
    return false;
}

static bool unspecified(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
               htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* 127.0.0.1 or ::1 (normalized): what a wildcard bind is reached as. */
static bool loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
               htonl(INADDR_LOOPBACK);
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Both normalized: same family and address. */
static bool same_address(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* Adds a normalized address unless unspecified, present, or no room. */
static void add_address(struct allow_list *al,
                        const struct sockaddr_storage *ss, int port)
{
    if (unspecified(ss) || al->n_addrs >= ALLOW_ADDRS_MAX)
        return;
    for (size_t i = 0; i < al->n_addrs; i++) {
        if (same_address(&al->addrs[i], ss) && al->addr_ports[i] == port)
            return;
    }
    al->addr_ports[al->n_addrs] = port;
    al->addrs[al->n_addrs++] = *ss;
}

/* Adds what name resolves to now. Returns 0, or -ENOENT when it does not. */
static int resolve_name(struct allow_list *al, const char *name, int port)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(name, NULL, &hints, &res) != 0)
        return -ENOENT;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct sockaddr_storage ss;
        if (normalize(ai->ai_addr, &ss))
            add_address(al, &ss, port);
    }
    freeaddrinfo(res);
    return 0;
}

/* Writes a normalized address as a canonical host: "1.2.3.4" or "[::1]". */
static void address_host(const struct sockaddr_storage *ss, char *out,
                         size_t out_len)
{
    char text[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, text,
                  sizeof(text));
        snprintf(out, out_len, "%s", text);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, text,
                  sizeof(text));
        snprintf(out, out_len, "[%s]", text);
    }
}
