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
 * Threads: any; one mutex guards everything (no callbacks under it).
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
    BUDGET_KINDS
};

/* "tasks", "timers", "transfers", "queue", "bytes" */
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

struct budget;

/* A new budget with those limits, or NULL without memory. */
struct budget *budget_new(const struct budget_limits *limits);

/* Frees it (no claim may still be held); NULL does nothing. */
void budget_free(struct budget *b);

/* The key of a socket address (AF_INET or AF_INET6); 0 or -EAFNOSUPPORT. */
int budget_client_from_sockaddr(const struct sockaddr *sa,
                                struct budget_client *out);

/* The address as text ("127.0.0.1", "::1") into out. */
void budget_client_text(const struct budget_client *c, char *out,
                        size_t out_len);

/*
 * Admits cost for client: on 0, *claim holds it. -EAGAIN when it does not
 * fit now (a global budget or the client's share), -E2BIG when it never
 * can (larger than a budget or a client's share of it); then *which names
 * the first budget that refused, the rejection is counted and *claim holds
 * nothing. A zero cost is always admitted.
 */
int budget_acquire(struct budget *b, const struct budget_client *client,
                   const struct budget_cost *cost, struct budget_claim *claim,
                   enum budget_kind *which);

/* Gives back what claim holds; again, or on a zeroed claim, nothing. */
void budget_release(struct budget_claim *claim);

/* A consistent snapshot. */
void budget_stats(struct budget *b, struct budget_usage *out);

/*
 * Writes conlab_budget_used{budget=...}, conlab_budget_limit{budget=...},
 * conlab_budget_clients and conlab_admission_rejected_total{reason=...}
 * (Prometheus text, with HELP and TYPE lines).
 */
void budget_write_metrics(struct budget *b, FILE *out);

/*
 * Issues a token that charges client: out gets BUDGET_TOKEN_LEN hex
 * characters and a NUL. 0, or -EAGAIN when the token table is full.
 */
int budget_token_issue(struct budget *b, const struct budget_client *client,
                       char out[BUDGET_TOKEN_LEN + 1]);

/* Forgets a token (unknown ones are ignored). */
void budget_token_revoke(struct budget *b, const char *token);

/* True, with the client it charges in *out, for a live token. */
bool budget_token_client(struct budget *b, const char *token,
                         struct budget_client *out);

#endif
