/*
 * budget: admission by cost. Every run declares what it will hold (struct
 * budget_cost) and is admitted against global budgets and against a fair
 * share per client address before anything is allocated for it; its claim
 * is released when the run's answer has been built.
 *
 * A client may hold at most client_share_pct percent (rounded up, at least
 * 1) of every budget at once, so one address can never take a whole pool
 * while others wait. A cost larger than a whole budget, or than one
 * client's share of it, can never be admitted (-E2BIG: the caller answers
 * 400 naming the parameter); a cost that does not fit now (-EAGAIN) is a
 * 503 with Retry-After.
 *
 * Work a request causes on this service itself (a /run/fetch of this
 * server's own URLs) is charged to the client that asked for it: the
 * outer run issues a token (sent with its inner requests in a header), and
 * the inner request's admission looks the token up to find whom to charge.
 * Tokens are 128 random bits, so they cannot be guessed.
 *
 * Bounds: client entries live in an open-addressing table of
 * clients_max entries at most (an entry is dropped as soon as its client
 * holds nothing); live tokens are at most BUDGET_TOKENS_MAX.
 *
 * Threads: any; one mutex guards everything (no callbacks under it, no
 * system call under it). A claim is released by one thread at a time.
 */
#ifndef CONLAB_BUDGET_H
#define CONLAB_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

enum budget_kind {
    BUDGET_TASKS,     /* tasks of admitted runs, in flight */
    BUDGET_TIMERS,    /* event-loop timers */
    BUDGET_TRANSFERS, /* outbound transfers (curl handles) */
    BUDGET_QUEUE,     /* pool and demo-thread queue slots */
    BUDGET_BYTES,     /* memory held for runs and their answers */
    BUDGET_SPAWNS,    /* spawn mode: processes alive at once (a run holds
                         min(tasks, --workers) of them) */
    BUDGET_KINDS
};

/* "tasks", "timers", "transfers", "queue", "bytes", "spawns" */
extern const char *const budget_names[BUDGET_KINDS];

enum budget_reject {
    BUDGET_REJECT_BUSY,         /* a global budget is full now */
    BUDGET_REJECT_CLIENT_SHARE, /* the client's share is full now */
    BUDGET_REJECT_TOO_LARGE,    /* can never fit */
    BUDGET_REJECTS
};

/* "busy", "client_share", "too_large" */
extern const char *const budget_reject_names[BUDGET_REJECTS];

struct budget_cost {
    uint64_t amount[BUDGET_KINDS];
};

/* A client address as a key: IPv6, or IPv4 as v4-mapped IPv6. */
struct budget_client {
    uint8_t addr[16];
};

struct budget_limits {
    uint64_t limit[BUDGET_KINDS];
    unsigned client_share_pct; /* 1..100 */
    unsigned clients_max;      /* client entries at most (then -EAGAIN) */
};

/* What one admitted run holds. Caller-allocated; zeroed = holds nothing. */
struct budget_claim {
    struct budget *budget;
    struct budget_client client;
    struct budget_cost cost;
    bool held;
};

struct budget_usage {
    uint64_t used[BUDGET_KINDS];
    uint64_t limit[BUDGET_KINDS];
    uint64_t client_limit[BUDGET_KINDS]; /* one client's share */
    uint64_t clients;                    /* addresses holding anything */
    uint64_t rejected[BUDGET_REJECTS];   /* since start */
};

#define BUDGET_TOKEN_LEN 32 /* hex characters */

/*
 * Live tokens at most. One token serves one outer run that makes
 * self-fetches, and every such run holds at least one transfer, so the
 * transfer budget (default 2000) bounds the tokens in use well below this.
 */
#define BUDGET_TOKENS_MAX 4096

/*
 * Client entries beyond --max-connections (see budget_limits_from_config):
 * a client holding a claim has a request in flight, so distinct holders
 * are at most the open connections, plus runs whose connection has just
 * closed and whose claim is released when they finish cancelling.
 */
#define BUDGET_CLIENTS_MARGIN 256

struct budget;

/*
 * A new budget with those limits (copied), or NULL: errno ENOMEM without
 * memory, EINVAL when client_share_pct is not in 1..100 or clients_max
 * is 0, or getrandom's error (the client table's hash key is random so
 * that remote addresses cannot be chosen to collide).
 */
struct budget *budget_new(const struct budget_limits *limits);

/* Frees it (no claim may still be held); NULL does nothing. */
void budget_free(struct budget *b);

/*
 * The key of a socket address (AF_INET or AF_INET6); 0 or -EAFNOSUPPORT.
 * An IPv4 address becomes ::ffff:a.b.c.d, so 127.0.0.1 over IPv4 and
 * ::ffff:127.0.0.1 on a dual-stack socket are the same client.
 */
int budget_client_from_sockaddr(const struct sockaddr *sa,
                                struct budget_client *out);

/*
 * The address as text ("127.0.0.1", "::1") into out, NUL-terminated and
 * truncated to out_len (INET6_ADDRSTRLEN is always enough); v4-mapped
 * addresses are written as IPv4.
 */
void budget_client_text(const struct budget_client *c, char *out,
                        size_t out_len);

/*
 * Admits cost for client: on 0, *claim holds it. -EAGAIN when it does not
 * fit now (a global budget or the client's share), -E2BIG when it never
 * can (larger than a budget or a client's share of it); then *which names
 * the first budget that refused, the rejection is counted and *claim holds
 * nothing. A zero cost is always admitted.
 *
 * -E2BIG wins over -EAGAIN (a cost that can never fit is refused as such
 * even while a budget is full); within one budget the client's share is
 * checked before the global budget. When the table of clients is full
 * (clients_max other addresses hold something) a new client gets -EAGAIN,
 * counted as busy, and *which names the first budget its cost asks for.
 * which may be NULL. claim->budget is b; the claim is the caller's memory.
 */
int budget_acquire(struct budget *b, const struct budget_client *client,
                   const struct budget_cost *cost, struct budget_claim *claim,
                   enum budget_kind *which);

/*
 * Gives back what claim holds and zeroes it; again, or on a zeroed claim,
 * nothing. Not for two threads on the same claim at once.
 */
void budget_release(struct budget_claim *claim);

/* A consistent snapshot (taken under the lock). */
void budget_stats(struct budget *b, struct budget_usage *out);

/* The change count of budget_stats()'s figures (changes.h): equal counts
 * read before two calls mean equal figures. Any thread; no lock. */
uint64_t budget_changes(struct budget *b);

/*
 * Writes conlab_budget_used{budget=...}, conlab_budget_limit{budget=...},
 * conlab_budget_clients and conlab_admission_rejected_total{reason=...}
 * (Prometheus text, with HELP and TYPE lines), from one snapshot.
 */
void budget_write_metrics(struct budget *b, FILE *out);

/*
 * Issues a token that charges client: out gets BUDGET_TOKEN_LEN hex
 * characters (lowercase) and a NUL. 0, or -EAGAIN when the token table
 * is full (BUDGET_TOKENS_MAX live tokens), or getrandom's -errno (not
 * expected on Linux 3.17+). The token charges client until revoked; the
 * caller revokes it when its run ends.
 */
int budget_token_issue(struct budget *b, const struct budget_client *client,
                       char out[BUDGET_TOKEN_LEN + 1]);

/* Forgets a token (unknown ones are ignored). */
void budget_token_revoke(struct budget *b, const char *token);

/*
 * True, with the client it charges in *out, for a live token; false for
 * anything else (unknown, revoked, not 32 lowercase hex characters, NULL).
 */
bool budget_token_client(struct budget *b, const char *token,
                         struct budget_client *out);

struct config;

/*
 * Fills *out from the options: --budget-tasks, --budget-timers,
 * --budget-transfers, --queue, --budget-bytes, --budget-spawns (0: four
 * times --workers), --client-share, and
 * clients_max = --max-connections + BUDGET_CLIENTS_MARGIN.
 */
void budget_limits_from_config(const struct config *cfg,
                               struct budget_limits *out);

/*
 * Spawned processes alive at once: --budget-spawns, or four times
 * --workers when it is 0 (so that one client's share, 50% by default,
 * still holds a run's --workers lanes). The spawner's own cap.
 */
int budget_spawns_limit(const struct config *cfg);

#endif
