/*
 * budget: see budget.h.
 *
 * Invariants, under b->lock: used[k] is the sum of every held claim's
 * amount[k], and so is the sum of every client entry's used[k]; a client
 * entry exists exactly while its client holds a nonzero amount of some
 * budget; used[k] <= limit[k] and each entry's used[k] <= client_limit[k].
 *
 * Both tables are open addressing with linear probing and at most half
 * full (their capacity is a power of two at least twice their cap), and a
 * removal shifts the following entries back instead of leaving tombstones,
 * so a lookup ends at the first empty slot. Client addresses come from the
 * network, so their hash is SipHash-2-4 with a random key: a remote peer
 * cannot choose IPv6 addresses that pile up in one cluster. Tokens are
 * random already; their first 8 bytes are their hash.
 *
 * getrandom(2) is called outside the lock; nothing else blocks.
 */
#include "changes.h"
#include "budget.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config.h"

#define TOKEN_BYTES 16 /* BUDGET_TOKEN_LEN / 2 */

struct client_entry {
    struct budget_client client;
    uint64_t used[BUDGET_KINDS];
    bool live;
};

struct token_entry {
    uint8_t token[TOKEN_BYTES];
    struct budget_client client;
    bool live;
};

struct budget {
    struct budget_limits limits;
    uint64_t client_limit[BUDGET_KINDS];
    uint64_t hash_key[2]; /* SipHash key of the client table */

    pthread_mutex_t lock; /* guards everything below */
    /* Counted before every release of lock (changes.h). */
    _Atomic uint64_t changes;
    uint64_t used[BUDGET_KINDS];
    uint64_t rejected[BUDGET_REJECTS];
    size_t n_clients;
    size_t client_mask; /* capacity - 1 */
    struct client_entry *clients;
    size_t n_tokens;
    struct token_entry tokens[2 * BUDGET_TOKENS_MAX];
};

/* Releases the lock after counting a possible change of the figures. */
static inline void unlock_changed(struct budget *b)
{
    changes_unlock(&b->changes, &b->lock);
}

#define TOKEN_MASK (2 * BUDGET_TOKENS_MAX - 1)

const char *const budget_names[BUDGET_KINDS] = {"tasks", "timers", "transfers",
                                                "queue", "bytes",  "spawns"};

const char *const budget_reject_names[BUDGET_REJECTS] = {"busy", "client_share",
                                                         "too_large"};

static uint64_t share_of(uint64_t limit, unsigned pct);
static int fill_random(void *buf, size_t len);
static uint64_t client_hash(const struct budget *b,
                            const struct budget_client *c);
static size_t client_find(const struct budget *b,
                          const struct budget_client *c);
static void client_remove(struct budget *b, size_t slot);
static size_t token_find(const struct budget *b,
                         const uint8_t token[TOKEN_BYTES]);
static void token_remove(struct budget *b, size_t slot);
static bool token_parse(const char *text, uint8_t out[TOKEN_BYTES]);
static bool cost_is_zero(const struct budget_cost *cost);

struct budget *budget_new(const struct budget_limits *limits)
{
    if (!limits || limits->client_share_pct < 1 ||
        limits->client_share_pct > 100 || limits->clients_max == 0) {
        errno = EINVAL;
        return NULL;
    }
    struct budget *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->limits = *limits;
    for (int k = 0; k < BUDGET_KINDS; k++)
        b->client_limit[k] =
            share_of(limits->limit[k], limits->client_share_pct);

    size_t cap = 16;
    while (cap < 2 * (size_t)limits->clients_max)
        cap *= 2;
    /* calloc: pages of slots never used are never touched. */
    b->clients = calloc(cap, sizeof(b->clients[0]));
    if (!b->clients)
        goto out_free;
    b->client_mask = cap - 1;
    int rc = fill_random(b->hash_key, sizeof(b->hash_key));
    if (rc < 0) {
        errno = -rc;
        goto out_free_clients;
    }
    rc = pthread_mutex_init(&b->lock, NULL);
    if (rc != 0) {
        errno = rc;
        goto out_free_clients;
    }
    return b;

out_free_clients:
    free(b->clients);
out_free:
    free(b);
    return NULL;
}

void budget_free(struct budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b->clients);
    free(b);
}

int budget_client_from_sockaddr(const struct sockaddr *sa,
                                struct budget_client *out)
{
    if (!sa)
        return -EAFNOSUPPORT;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->addr, &in6->sin6_addr, 16);
        return 0;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memset(out->addr, 0, 10);
        out->addr[10] = 0xff;
        out->addr[11] = 0xff;
        memcpy(out->addr + 12, &in->sin_addr, 4);
        return 0;
    }
    return -EAFNOSUPPORT;
}

void budget_client_text(const struct budget_client *c, char *out,
                        size_t out_len)
{
    static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN];

    if (out_len == 0)
        return;
    const char *ok;
    if (memcmp(c->addr, v4_prefix, sizeof(v4_prefix)) == 0)
        ok = inet_ntop(AF_INET, c->addr + 12, text, sizeof(text));
    else
        ok = inet_ntop(AF_INET6, c->addr, text, sizeof(text));
    if (!ok)
        text[0] = '\0';
    snprintf(out, out_len, "%s", text);
}

int budget_acquire(struct budget *b, const struct budget_client *client,
                   const struct budget_cost *cost, struct budget_claim *claim,
                   enum budget_kind *which)
{
    enum budget_kind refused = BUDGET_TASKS;
    enum budget_reject reason = BUDGET_REJECT_TOO_LARGE;
    int rc = -E2BIG;

    memset(claim, 0, sizeof(*claim));
    if (cost_is_zero(cost)) {
        claim->budget = b;
        claim->client = *client;
        claim->held = true;
        return 0;
    }

    /* Limits never change, so this needs no lock; it wins over -EAGAIN. */
    for (int k = 0; k < BUDGET_KINDS; k++) {
        if (cost->amount[k] > b->limits.limit[k] ||
            cost->amount[k] > b->client_limit[k]) {
            refused = (enum budget_kind)k;
            goto out_reject_unlocked;
        }
    }

    pthread_mutex_lock(&b->lock);
    size_t slot = client_find(b, client);
    const uint64_t *client_used =
        b->clients[slot].live ? b->clients[slot].used : NULL;
    rc = -EAGAIN;
    for (int k = 0; k < BUDGET_KINDS; k++) {
        uint64_t held = client_used ? client_used[k] : 0;
        /* amount <= both limits here, so neither subtraction wraps. */
        if (cost->amount[k] > b->client_limit[k] - held) {
            refused = (enum budget_kind)k;
            reason = BUDGET_REJECT_CLIENT_SHARE;
            goto out_reject;
        }
        if (cost->amount[k] > b->limits.limit[k] - b->used[k]) {
            refused = (enum budget_kind)k;
            reason = BUDGET_REJECT_BUSY;
            goto out_reject;
        }
    }
    if (!client_used) {
        if (b->n_clients >= b->limits.clients_max) {
            while (cost->amount[refused] == 0)
                refused++; /* the cost is not zero */
            reason = BUDGET_REJECT_BUSY;
            goto out_reject;
        }
        b->clients[slot].client = *client;
        b->clients[slot].live = true;
        memset(b->clients[slot].used, 0, sizeof(b->clients[slot].used));
        b->n_clients++;
    }
    for (int k = 0; k < BUDGET_KINDS; k++) {
        b->used[k] += cost->amount[k];
        b->clients[slot].used[k] += cost->amount[k];
    }
    unlock_changed(b);

    claim->budget = b;
    claim->client = *client;
    claim->cost = *cost;
    claim->held = true;
    return 0;

out_reject_unlocked:
    pthread_mutex_lock(&b->lock);
out_reject:
    b->rejected[reason]++;
    unlock_changed(b);
    if (which)
        *which = refused;
    return rc;
}

void budget_release(struct budget_claim *claim)
{
    struct budget *b = claim->budget;

    if (!claim->held || !b || cost_is_zero(&claim->cost)) {
        memset(claim, 0, sizeof(*claim));
        return;
    }
    pthread_mutex_lock(&b->lock);
    size_t slot = client_find(b, &claim->client);
    struct client_entry *e = &b->clients[slot];
    bool empty = true;
    for (int k = 0; k < BUDGET_KINDS; k++) {
        b->used[k] -= claim->cost.amount[k];
        if (e->live) {
            e->used[k] -= claim->cost.amount[k];
            if (e->used[k] != 0)
                empty = false;
        }
    }
    if (e->live && empty)
        client_remove(b, slot);
    unlock_changed(b);
    memset(claim, 0, sizeof(*claim));
}

void budget_stats(struct budget *b, struct budget_usage *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&b->lock);
    memcpy(out->used, b->used, sizeof(out->used));
    out->clients = b->n_clients;
    memcpy(out->rejected, b->rejected, sizeof(out->rejected));
    pthread_mutex_unlock(&b->lock);
    memcpy(out->limit, b->limits.limit, sizeof(out->limit));
    memcpy(out->client_limit, b->client_limit, sizeof(out->client_limit));
}

uint64_t budget_changes(struct budget *b)
{
    return changes_read(&b->changes);
}

void budget_write_metrics(struct budget *b, FILE *out)
{
    struct budget_usage u;

    budget_stats(b, &u);
    fputs("# HELP conlab_budget_used What admitted runs hold now, by "
          "budget.\n"
          "# TYPE conlab_budget_used gauge\n",
          out);
    for (int k = 0; k < BUDGET_KINDS; k++)
        fprintf(out, "conlab_budget_used{budget=\"%s\"} %llu\n",
                budget_names[k], (unsigned long long)u.used[k]);
    fputs("# HELP conlab_budget_limit What admitted runs may hold at most, "
          "by budget.\n"
          "# TYPE conlab_budget_limit gauge\n",
          out);
    for (int k = 0; k < BUDGET_KINDS; k++)
        fprintf(out, "conlab_budget_limit{budget=\"%s\"} %llu\n",
                budget_names[k], (unsigned long long)u.limit[k]);
    fprintf(out,
            "# HELP conlab_budget_clients Client addresses holding part of "
            "a budget.\n"
            "# TYPE conlab_budget_clients gauge\n"
            "conlab_budget_clients %llu\n",
            (unsigned long long)u.clients);
    fputs("# HELP conlab_admission_rejected_total Runs refused admission, "
          "by reason.\n"
          "# TYPE conlab_admission_rejected_total counter\n",
          out);
    for (int r = 0; r < BUDGET_REJECTS; r++)
        fprintf(out, "conlab_admission_rejected_total{reason=\"%s\"} %llu\n",
                budget_reject_names[r], (unsigned long long)u.rejected[r]);
}

int budget_token_issue(struct budget *b, const struct budget_client *client,
                       char out[BUDGET_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t token[TOKEN_BYTES];

    for (;;) {
        int rc = fill_random(token, sizeof(token));
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&b->lock);
        if (b->n_tokens >= BUDGET_TOKENS_MAX) {
            unlock_changed(b);
            return -EAGAIN;
        }
        size_t slot = token_find(b, token);
        /* A repeat of a live token (p ~ 2^-116) draws again. */
        if (!b->tokens[slot].live) {
            memcpy(b->tokens[slot].token, token, sizeof(token));
            b->tokens[slot].client = *client;
            b->tokens[slot].live = true;
            b->n_tokens++;
            unlock_changed(b);
            break;
        }
        unlock_changed(b);
    }
    for (size_t i = 0; i < TOKEN_BYTES; i++) {
        out[2 * i] = hex[token[i] >> 4];
        out[2 * i + 1] = hex[token[i] & 0xf];
    }
    out[BUDGET_TOKEN_LEN] = '\0';
    return 0;
}

void budget_token_revoke(struct budget *b, const char *token)
{
    uint8_t key[TOKEN_BYTES];

    if (!token_parse(token, key))
        return;
    pthread_mutex_lock(&b->lock);
    size_t slot = token_find(b, key);
    if (b->tokens[slot].live)
        token_remove(b, slot);
    unlock_changed(b);
}

bool budget_token_client(struct budget *b, const char *token,
                         struct budget_client *out)
{
    uint8_t key[TOKEN_BYTES];
    bool found;

    if (!token_parse(token, key))
        return false;
    pthread_mutex_lock(&b->lock);
    size_t slot = token_find(b, key);
    found = b->tokens[slot].live;
    if (found)
        *out = b->tokens[slot].client;
    unlock_changed(b);
    return found;
}

void budget_limits_from_config(const struct config *cfg,
                               struct budget_limits *out)
{
    memset(out, 0, sizeof(*out));
    out->limit[BUDGET_TASKS] = (uint64_t)cfg->budget_tasks;
    out->limit[BUDGET_TIMERS] = (uint64_t)cfg->budget_timers;
    out->limit[BUDGET_TRANSFERS] = (uint64_t)cfg->budget_transfers;
    out->limit[BUDGET_QUEUE] = (uint64_t)cfg->queue;
    out->limit[BUDGET_BYTES] = (uint64_t)cfg->budget_bytes;
    out->limit[BUDGET_SPAWNS] = (uint64_t)budget_spawns_limit(cfg);
    out->client_share_pct = (unsigned)cfg->client_share_pct;
    out->clients_max = (unsigned)cfg->max_connections + BUDGET_CLIENTS_MARGIN;
}

int budget_spawns_limit(const struct config *cfg)
{
    return cfg->budget_spawns > 0 ? cfg->budget_spawns : 4 * cfg->workers;
}

/* ceil(limit * pct / 100), at least 1 and at most limit, without overflow. */
static uint64_t share_of(uint64_t limit, unsigned pct)
{
    uint64_t share = limit / 100 * pct + (limit % 100 * pct + 99) / 100;
    if (share < 1)
        share = 1;
    return share < limit ? share : limit;
}

static int fill_random(void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = getrandom((char *)buf + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    return 0;
}

static bool cost_is_zero(const struct budget_cost *cost)
{
    for (int k = 0; k < BUDGET_KINDS; k++) {
        if (cost->amount[k] != 0)
            return false;
    }
    return true;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
    do {                                                                       \
        v0 += v1;                                                              \
        v1 = ROTL(v1, 13);                                                     \
        v1 ^= v0;                                                              \
        v0 = ROTL(v0, 32);                                                     \
        v2 += v3;                                                              \
        v3 = ROTL(v3, 16);                                                     \
        v3 ^= v2;                                                              \
        v0 += v3;                                                              \
        v3 = ROTL(v3, 21);                                                     \
        v3 ^= v0;                                                              \
        v2 += v1;                                                              \
        v1 = ROTL(v1, 17);                                                     \
        v1 ^= v2;                                                              \
        v2 = ROTL(v2, 32);                                                     \
    } while (0)

/* SipHash-2-4 of the 16 address bytes (host byte order: in-process only). */
static uint64_t client_hash(const struct budget *b,
                            const struct budget_client *c)
{
    uint64_t v0 = b->hash_key[0] ^ 0x736f6d6570736575ull;
    uint64_t v1 = b->hash_key[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = b->hash_key[0] ^ 0x6c7967656e657261ull;
    uint64_t v3 = b->hash_key[1] ^ 0x7465646279746573ull;
    uint64_t m[2];

    memcpy(m, c->addr, sizeof(m));
    for (int i = 0; i < 2; i++) {
        v3 ^= m[i];
        SIPROUND;
        SIPROUND;
        v0 ^= m[i];
    }
    uint64_t last = (uint64_t)16 << 56;
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The slot holding c, or the empty slot where it would go. Under lock. */
static size_t client_find(const struct budget *b, const struct budget_client *c)
{
    size_t slot = (size_t)client_hash(b, c) & b->client_mask;
    while (b->clients[slot].live &&
           memcmp(b->clients[slot].client.addr, c->addr, 16) != 0)
        slot = (slot + 1) & b->client_mask;
    return slot;
}

/*
 * Empties slot and moves back every later entry of its cluster that may
 * sit there (its home is not cyclically in (hole, its slot]). Under lock.
 */
static void client_remove(struct budget *b, size_t slot)
{
    size_t hole = slot;
    size_t next = (slot + 1) & b->client_mask;

    while (b->clients[next].live) {
        size_t home =
            (size_t)client_hash(b, &b->clients[next].client) & b->client_mask;
        if (((next - home) & b->client_mask) >=
            ((next - hole) & b->client_mask)) {
            b->clients[hole] = b->clients[next];
            hole = next;
        }
        next = (next + 1) & b->client_mask;
    }
    memset(&b->clients[hole], 0, sizeof(b->clients[hole]));
    b->n_clients--;
}

static size_t token_home(const uint8_t token[TOKEN_BYTES])
{
    uint64_t h;
    memcpy(&h, token, sizeof(h));
    return (size_t)h & TOKEN_MASK;
}

/* The slot holding token, or the empty slot where it would go. */
static size_t token_find(const struct budget *b,
                         const uint8_t token[TOKEN_BYTES])
{
    size_t slot = token_home(token);
    while (b->tokens[slot].live &&
           memcmp(b->tokens[slot].token, token, TOKEN_BYTES) != 0)
        slot = (slot + 1) & TOKEN_MASK;
    return slot;
}

/* As client_remove(), for the token table. */
static void token_remove(struct budget *b, size_t slot)
{
    size_t hole = slot;
    size_t next = (slot + 1) & TOKEN_MASK;

    while (b->tokens[next].live) {
        size_t home = token_home(b->tokens[next].token);
        if (((next - home) & TOKEN_MASK) >= ((next - hole) & TOKEN_MASK)) {
            b->tokens[hole] = b->tokens[next];
            hole = next;
        }
        next = (next + 1) & TOKEN_MASK;
    }
    memset(&b->tokens[hole], 0, sizeof(b->tokens[hole]));
    b->n_tokens--;
}

/* Exactly BUDGET_TOKEN_LEN lowercase hex characters, as issued. */
static bool token_parse(const char *text, uint8_t out[TOKEN_BYTES])
{
    if (!text)
        return false;
    for (size_t i = 0; i < BUDGET_TOKEN_LEN; i++) {
        char c = text[i];
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else
            return false; /* also the NUL of a shorter text */
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return text[BUDGET_TOKEN_LEN] == '\0';
}
