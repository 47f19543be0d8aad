/*
 * metrics: see metrics.h.
 */
#include "metrics.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "router.h"

#define N_METHODS HTTP_METHODS
#define N_BUCKETS 18

/* Statuses the service answers; anything else counts as "other". */
static const int statuses[] = {200, 301, 304, 400, 403, 404, 405, 411, 413,
                               414, 415, 431, 499, 500, 502, 503, 504};
#define N_STATUSES (sizeof(statuses) / sizeof(statuses[0]) + 1)

/* Upper bounds of the duration buckets, in ns and as written. */
static const uint64_t bucket_ns[N_BUCKETS - 1] = {
    100000,     250000,     500000,     1000000,     2500000,    5000000,
    10000000,   25000000,   50000000,   100000000,   250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000, 30000000000};
static const char *const bucket_le[N_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
    "1",      "2.5",     "5",      "10",    "30",     "+Inf"};

struct shard {
    alignas(
        64) _Atomic uint64_t requests[METRICS_ROUTES][N_METHODS][N_STATUSES];
    _Atomic uint64_t buckets[METRICS_ROUTES][N_BUCKETS]; /* not cumulative */
    _Atomic uint64_t sum_ns[METRICS_ROUTES];
};

static struct shard shards[METRICS_SHARDS];
static atomic_uint next_shard;
static _Thread_local struct shard *mine;

static size_t method_index(enum http_method m)
{
    unsigned bits = (unsigned)m;
    if (bits == 0 || (bits & (bits - 1)) != 0 || bits >= 1u << N_METHODS)
        return N_METHODS - 1;
    return (size_t)__builtin_ctz(bits);
}

/* The label of method index i: the router's name of that flag. */
static const char *method_label(size_t i)
{
    return http_method_name((enum http_method)(1u << i));
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < N_STATUSES - 1; i++) {
        if (statuses[i] == status)
            return i;
    }
    return N_STATUSES - 1;
}

/* Route slot: 0 is "no route", route id i is slot i + 1. */
static size_t route_slot(int route)
{
    return route >= 0 && route < METRICS_ROUTES - 1 ? (size_t)route + 1 : 0;
}

void metrics_request(int route, enum http_method method, int status,
                     uint64_t ns)
{
    if (!mine)
        mine = &shards[atomic_fetch_add_explicit(&next_shard, 1,
                                                 memory_order_relaxed) %
                       METRICS_SHARDS];
    size_t r = route_slot(route), b = 0;
    while (b < N_BUCKETS - 1 && ns > bucket_ns[b])
        b++;
    atomic_fetch_add_explicit(
        &mine->requests[r][method_index(method)][status_index(status)], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&mine->buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mine->sum_ns[r], ns, memory_order_relaxed);
}

static uint64_t sum(const _Atomic uint64_t *first, size_t stride_bytes)
{
    uint64_t total = 0;
    for (size_t s = 0; s < METRICS_SHARDS; s++) {
        const _Atomic uint64_t *v =
            (const _Atomic uint64_t *)((const char *)first + s * stride_bytes);
        total += atomic_load_explicit(v, memory_order_relaxed);
    }
    return total;
}

#define SUM(field) sum(&shards[0].field, sizeof(struct shard))

/*
 * The route label of a slot, or NULL for a slot the router has no route
 * for: such counts are left out rather than written as "none", which
 * would repeat slot 0's samples (a duplicate series is an invalid scrape).
 */
static const char *route_label(const struct router *router, size_t slot)
{
    return slot ? router_route_path(router, (int)slot - 1) : "none";
}

void metrics_write_http(FILE *out, const struct router *router)
{
    fputs("# HELP conlab_http_requests_total HTTP requests answered, by "
          "route, method and status.\n"
          "# TYPE conlab_http_requests_total counter\n",
          out);
    for (size_t r = 0; r < METRICS_ROUTES; r++) {
        const char *label = route_label(router, r);
        if (!label)
            continue;
        for (size_t m = 0; m < N_METHODS; m++) {
            for (size_t s = 0; s < N_STATUSES; s++) {
                uint64_t n = SUM(requests[r][m][s]);
                if (n == 0)
                    continue;
                char status[16] = "other";
                if (s < N_STATUSES - 1)
                    snprintf(status, sizeof(status), "%d", statuses[s]);
                fprintf(out,
                        "conlab_http_requests_total{route=\"%s\","
                        "method=\"%s\",status=\"%s\"} %llu\n",
                        label, method_label(m), status, (unsigned long long)n);
            }
        }
    }

    fputs("# HELP conlab_http_request_duration_seconds Time from a "
          "request's arrival to its completion, by route.\n"
          "# TYPE conlab_http_request_duration_seconds histogram\n",
          out);
    for (size_t r = 0; r < METRICS_ROUTES; r++) {
        const char *label = route_label(router, r);
        if (!label)
            continue;
        uint64_t cumulative = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cumulative += SUM(buckets[r][b]);
            fprintf(out,
                    "conlab_http_request_duration_seconds_bucket{route=\"%s\","
                    "le=\"%s\"} %llu\n",
                    label, bucket_le[b], (unsigned long long)cumulative);
        }
        fprintf(out,
                "conlab_http_request_duration_seconds_sum{route=\"%s\"} "
                "%.9f\n"
                "conlab_http_request_duration_seconds_count{route=\"%s\"} "
                "%llu\n",
                label, (double)SUM(sum_ns[r]) / 1e9, label,
                (unsigned long long)cumulative);
    }
}
