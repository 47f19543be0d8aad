/*
 * allow: the allow-list of /run/fetch targets, the service's guard against
 * server-side request forgery (SSRF).
 *
 * A fetch is checked twice. allow_check_url() checks the URL's text before
 * anything is contacted: only http and https, no user info, and a host:port
 * that is the service itself or an --allow-host entry. allow_address() then
 * checks every address libcurl is about to connect to (from
 * CURLOPT_OPENSOCKETFUNCTION), so that a name that resolves somewhere else
 * than at start-up, or a redirect, cannot reach an address outside the set.
 *
 * The address check holds ports too: a redirect to another port of an
 * allowed address is refused as well. A redirect to a host name that is not
 * allowed is refused at connect time, after libcurl has resolved the name
 * (the name is looked up, the host never contacted).
 *
 * struct allow_list is a plain value owned by the caller: allow_init() fills
 * it once at start-up, and afterwards it is read-only, so any thread may
 * call allow_check_url() and allow_address() on it without a lock.
 */
#ifndef CONLAB_ALLOW_H
#define CONLAB_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

#define ALLOW_ENTRIES_MAX 40   /* the service's 2 + --allow-host entries */
#define ALLOW_ADDRS_MAX   64   /* addresses connections may go to */
#define ALLOW_URL_MAX     2048 /* bytes of a URL, NUL excluded */

/*
 * One allowed host and port. host is in canonical form: a name in lower
 * case without a trailing dot, an IPv4 address in dotted quad, or an IPv6
 * address in brackets as inet_ntop() writes it ("[::1]"); an IPv4-mapped
 * IPv6 address is written as its IPv4 address.
 */
struct allow_entry {
    char host[CONFIG_HOST_MAX];
    int port; /* 0 = any port */
};

/*
 * The allow-list. A value, filled once at start-up by allow_init() and
 * read-only afterwards: any thread may read it.
 */
struct allow_list {
    size_t n_entries;
    struct allow_entry entries[ALLOW_ENTRIES_MAX];
    size_t n_addrs;
    /* IP addresses connections may go to, with the port each allows (0 =
     * any): AF_INET or AF_INET6, IPv4-mapped IPv6 stored as AF_INET, never
     * 0.0.0.0 or ::. */
    struct sockaddr_storage addrs[ALLOW_ADDRS_MAX];
    int addr_ports[ALLOW_ADDRS_MAX];
};

/*
 * Builds *al (caller's memory; nothing to clean up): the service itself,
 * self_host on self_port (1-65535), where self_host is its bind address, an
 * IPv4 or IPv6 literal (0.0.0.0 means 127.0.0.1 and :: means ::1); when that
 * self address is 127.0.0.1 or ::1, the name "localhost" on the same port
 * too; then every hosts[0..n_hosts) entry, each HOST, HOST:PORT, [IPv6] or
 * [IPv6]:PORT with HOST a DNS name or an IPv4 literal (no port = any port).
 * Host names are lower-cased and a single trailing dot removed.
 *
 * The address set holds the self address on self_port and nothing else of
 * the built-in entries (the built-in "localhost" is not resolved: a fetch
 * of http://localhost:PORT/ may connect only to the address the service
 * listens on, whatever else the name resolves to); then every literal IP of
 * the entries, and what each --allow-host name (localhost included)
 * resolves to at this moment (getaddrinfo(), which may block on DNS). A
 * name that does not resolve is kept as an entry but adds no address;
 * nothing is logged: the count of such names is stored in *unresolved when
 * unresolved is not NULL.
 * Addresses beyond ALLOW_ADDRS_MAX are left out, so connections to them are
 * refused.
 *
 * Returns 0; -EINVAL for a malformed self_host, self_port or entry (the
 * unspecified addresses 0.0.0.0 and [::] included) or too many entries,
 * with a one-line reason in err (err_len bytes; err may be NULL); -ENOMEM.
 * On error *al allows nothing. Start-up thread only.
 */
int allow_init(struct allow_list *al, const char *self_host, int self_port,
               const char hosts[][CONFIG_HOST_MAX], int n_hosts,
               int *unresolved, char *err, size_t err_len);

/*
 * Checks a fetch target's text before any connection. The URL is read by
 * libcurl's URL parser, as the fetch will read it (so "127.1" is 127.0.0.1
 * and "%41" in a host is "A").
 *
 * Returns 0 when allowed (err gets ""); -EINVAL when url is NULL or "",
 * has no scheme, is malformed, longer than ALLOW_URL_MAX bytes, has port 0,
 * or carries user info ("user:password@", even empty: refused outright,
 * since "http://127.0.0.1@evil/" is a classic trick); -EPROTONOSUPPORT
 * when the scheme is not http or https (in any case); -EACCES when the
 * host:port is not allowed, or the host is an IPv6 address with a zone ID;
 * -ENOMEM. err (err_len bytes, may be NULL) gets a one-line reason in every
 * failure case that names the URL's host, or quotes the URL when it has no
 * host; user text is echoed as printable ASCII only and capped.
 *
 * Host comparison is case-insensitive (ASCII), ignores one trailing dot,
 * and compares IPv6 literals in canonical form ([0:0:0:0:0:0:0:1] equals
 * [::1]; [::ffff:127.0.0.1] equals 127.0.0.1, as in allow_address()). The
 * port is the URL's port or the scheme's default (80/443). Any thread.
 */
int allow_check_url(const struct allow_list *al, const char *url, char *err,
                    size_t err_len);

/*
 * True when a connection to sa may be opened: sa is AF_INET or AF_INET6 and
 * its address (IPv4-mapped IPv6 compared as IPv4; scope ignored) is in the
 * address set with its port (or with "any port"), so that a redirect from
 * an allowed target to another port of the same host is refused too. False for
 * NULL, any other family, and 0.0.0.0 or
 * ::, which Linux connects to the local host. Meant for
 * CURLOPT_OPENSOCKETFUNCTION, so that redirects and DNS answers are checked
 * at connect time. Any thread.
 */
bool allow_address(const struct allow_list *al, const struct sockaddr *sa);

#endif
